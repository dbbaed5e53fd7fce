"""Comparing runs as a TRECVID notebook paper does: per-topic infAP side by side with the topic labels (the
LAFF supplement's Tab. 14), mean infAP per label, and paired significance tests of each run against a baseline.

Everything here returns plain DataFrames and dataclasses; files are written by :func:`write_comparison`.
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from avs.errors import InputError
from avs.eval.infap import evaluate_runs, infap_table, label_means, load_labels, run_name, topic_number
from avs.formats.fileio import atomic_write_all, check_writable
from avs.formats.topics import LABELS
from trec_eval_compat.evaluate import Evaluation, Qrels
from trec_eval_compat.ids import DEFAULT_PREFIX

PERMUTATIONS = 10_000
SEED = 0
CHECK = "✓"
# Sign vectors are drawn / enumerated this many at a time, so memory stays small for any number of topics.
_BLOCK = 1 << 14
# Sign-flipped means equal to the observed one can differ from it in the last bits (another summation order);
# they must count as "at least as extreme".
_TIE_TOLERANCE = 1e-12


# ----------------------------------------------------------------------------------------------------------
# Paired tests


@dataclass(frozen=True)
class RandomizationResult:
    p_value: float
    permutations: int  # sign vectors looked at (2**n when exact)
    exact: bool


def randomization_test(a, b, permutations: int = PERMUTATIONS, seed: int = SEED) -> RandomizationResult:
    """Two-sided paired randomization (sign-flip) test of mean(a - b) = 0.

    Under the null each topic's difference is as likely to have either sign. When 2**n <= ``permutations``
    all 2**n sign vectors are enumerated and p = (vectors with |mean| >= observed) / 2**n exactly; otherwise
    ``permutations`` random vectors are drawn with ``seed`` and p = (1 + count) / (1 + permutations), the
    estimate that is never 0 (Phipson & Smyth 2010).
    """
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if d.ndim != 1 or d.size == 0:
        raise ValueError("need at least one paired value")
    if permutations < 1:
        raise ValueError("permutations must be >= 1")
    n = d.size
    observed = abs(d.mean()) - _TIE_TOLERANCE
    if n < 63 and 2**n <= permutations:
        total, count = 2**n, 0
        bits = np.arange(n, dtype=np.int64)
        for start in range(0, total, _BLOCK):
            codes = np.arange(start, min(start + _BLOCK, total), dtype=np.int64)
            signs = 1.0 - 2.0 * ((codes[:, None] >> bits) & 1)
            count += int((np.abs(signs @ d / n) >= observed).sum())
        return RandomizationResult(count / total, total, True)
    rng = np.random.default_rng(seed)
    count = 0
    for start in range(0, permutations, _BLOCK):
        m = min(_BLOCK, permutations - start)
        signs = rng.choice(np.array([-1.0, 1.0]), size=(m, n))
        count += int((np.abs(signs @ d / n) >= observed).sum())
    return RandomizationResult((1 + count) / (1 + permutations), permutations, False)


def paired_tests(a, b, permutations: int = PERMUTATIONS, seed: int = SEED) -> dict[str, float]:
    """Randomization, paired t and Wilcoxon signed-rank p-values (two-sided) of a against b.

    With all differences zero there is no evidence of a difference: every p-value is 1 (scipy would give
    nan or refuse). A test scipy cannot compute (e.g. t with one topic) gives nan.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    rand = randomization_test(a, b, permutations, seed)
    if np.all(a == b):
        p_t = p_w = 1.0
    else:
        p_t = float(stats.ttest_rel(a, b).pvalue) if a.size > 1 else math.nan
        try:
            p_w = float(stats.wilcoxon(a, b).pvalue)
        except ValueError:
            p_w = math.nan
    return {
        "p_randomization": rand.p_value,
        "p_ttest": p_t,
        "p_wilcoxon": p_w,
        "permutations": rand.permutations,
        "exact": rand.exact,
    }


# ----------------------------------------------------------------------------------------------------------
# Comparison


@dataclass
class Comparison:
    """``per_topic``: Tab. 14 form (topic, text, the four labels, infAP per run with the baseline first,
    ``mark:<run>`` = +/- where the run is more than 0.1 above/below the baseline; last row ``all``).
    ``label_means``: mean infAP per label and run (with topic counts). ``tests``: one row per run against
    the baseline over the topics both have."""

    runs: list[str]
    baseline: str
    per_topic: pd.DataFrame
    label_means: pd.DataFrame
    tests: pd.DataFrame


def compare_evaluations(
    evals: dict[str, Evaluation],
    labels: dict[int, frozenset[str]],
    baseline: str | None = None,
    permutations: int = PERMUTATIONS,
    seed: int = SEED,
    prefix: str = DEFAULT_PREFIX,
) -> Comparison:
    """Compare evaluated runs (``avs.eval.infap.evaluate_runs``); ``baseline`` (a key, default the first) is
    the column the others are marked and tested against."""
    baseline = baseline if baseline is not None else next(iter(evals))
    if baseline not in evals:
        raise InputError(None, f"baseline {baseline!r} is not one of the runs ({', '.join(evals)})")
    ordered = {baseline: evals[baseline], **{k: v for k, v in evals.items() if k != baseline}}
    table = infap_table(ordered, prefix)
    nums = [topic_number(t, prefix) for t in table.index]
    for i, lab in enumerate(LABELS):
        table.insert(1 + i, lab, [CHECK if n in labels and lab in labels[n] else "" for n in nums])
    base = ordered[baseline].per_topic["infAP"]
    rows = []
    for name, ev in ordered.items():
        if name == baseline:
            continue
        run = ev.per_topic["infAP"]
        common = [t for t in base.index if t in run.index]
        if not common:
            raise InputError(name, f"shares no evaluated topic with the baseline {baseline!r}")
        a, b = run.loc[common].to_numpy(), base.loc[common].to_numpy()
        rows.append(
            {
                "run": name,
                "baseline": baseline,
                "topics": len(common),
                "mean": a.mean(),
                "baseline mean": b.mean(),
                "difference": a.mean() - b.mean(),
                **paired_tests(a, b, permutations, seed),
            }
        )
    columns = [
        "run",
        "baseline",
        "topics",
        "mean",
        "baseline mean",
        "difference",
        "p_randomization",
        "p_ttest",
        "p_wilcoxon",
        "permutations",
        "exact",
    ]
    return Comparison(
        list(ordered), baseline, table, label_means(ordered, labels, prefix), pd.DataFrame(rows, columns=columns)
    )


def compare_runs(
    runs: list[str | os.PathLike],
    qrels: str | os.PathLike | Qrels,
    labels: str | os.PathLike | None = None,
    baseline: str | os.PathLike | None = None,
    permutations: int = PERMUTATIONS,
    seed: int = SEED,
    strict: bool = False,
    prefix: str = DEFAULT_PREFIX,
) -> Comparison:
    """Evaluate run files and compare them. ``baseline``: one of ``runs`` (its path or run name), or another
    run file, evaluated too and shown first; default the first run. ``labels``: default topics/labels.tsv."""
    paths = [os.fspath(r) for r in runs]
    base_key = None
    if baseline is not None:
        b = os.fspath(baseline)
        match = next((p for p in paths if p == b or run_name(p) == b), None)
        if match is None:
            if not Path(b).is_file():
                raise InputError(b, "the baseline is neither one of the runs nor a run file")
            paths.insert(0, b)
            match = b
        paths.remove(match)
        paths.insert(0, match)
        base_key = run_name(match)
    if permutations < 1:
        raise InputError(None, f"--permutations {permutations}: must be at least 1")
    for p in paths:
        if not Path(p).is_file():
            raise InputError(p, "no such run file")
    evals = evaluate_runs(paths, qrels, strict=strict, prefix=prefix)
    return compare_evaluations(evals, load_labels(labels), base_key, permutations, seed, prefix)


# ----------------------------------------------------------------------------------------------------------
# Files


def markdown_table(df: pd.DataFrame, digits: int = 4) -> str:
    """A GitHub-flavoured Markdown table; floats to ``digits`` decimals, missing values blank."""

    def cell(v) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return ""
        if isinstance(v, (float, np.floating)):
            return f"{v:.{digits}f}"
        return str(v).replace("|", "\\|")

    head = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def comparison_markdown(c: Comparison) -> str:
    return (
        f"# Run comparison (baseline: {c.baseline})\n\n## infAP per topic\n\n"
        f"Marks: + / - where a run is more than 0.1 above / below the baseline.\n\n"
        f"{markdown_table(c.per_topic.reset_index())}\n## Mean infAP per topic label\n\n"
        f"{markdown_table(c.label_means.reset_index())}\n## Paired tests against {c.baseline}\n\n"
        f"{markdown_table(c.tests)}"
    )


COMPARISON_FILES = ("per_topic.csv", "labels.csv", "tests.csv", "compare.md", "per_topic.png", "labels.png")


def check_outputs(out_dir: str | os.PathLike, names, force: bool = False) -> dict[str, Path]:
    """Refuse, before any work, an output folder that is a file or holds any of ``names`` (without ``force``)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(out, "exists and is not a directory")
    return {name: check_writable(out / name, force) for name in names}


def write_outputs(out_dir: str | os.PathLike, files: dict[str, str | bytes], force: bool = False) -> list[Path]:
    """Write each named file into ``out_dir`` atomically, after checking that none would be overwritten
    without ``force`` (so a refusal leaves nothing half-written)."""
    targets = check_outputs(out_dir, files, force)
    created = not Path(out_dir).exists()
    try:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(out_dir, f"cannot write here: {e.strerror or e}") from None
    try:
        return atomic_write_all({targets[name]: data for name, data in files.items()}, force=force)
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                Path(out_dir).rmdir()
        raise


def comparison_files(c: Comparison) -> dict[str, str | bytes]:
    """File name -> contents: the three tables as CSV, all of them as Markdown, and the two plots."""
    from avs.eval.plots import label_bars, per_topic_bars

    topics = c.per_topic.drop(index="all")
    return dict(
        zip(
            COMPARISON_FILES,
            (
                c.per_topic.reset_index().to_csv(index=False),
                c.label_means.reset_index().to_csv(index=False),
                c.tests.to_csv(index=False),
                comparison_markdown(c),
                per_topic_bars(topics[c.runs], "infAP per topic"),
                label_bars(c.label_means[c.runs], "mean infAP per topic label"),
            ),
        )
    )


def write_comparison(c: Comparison, out_dir: str | os.PathLike, force: bool = False) -> list[Path]:
    return write_outputs(out_dir, comparison_files(c), force)


__all__ = [
    "PERMUTATIONS",
    "SEED",
    "RandomizationResult",
    "randomization_test",
    "paired_tests",
    "Comparison",
    "compare_evaluations",
    "compare_runs",
    "markdown_table",
    "comparison_markdown",
    "write_outputs",
    "check_outputs",
    "COMPARISON_FILES",
    "comparison_files",
    "write_comparison",
]
