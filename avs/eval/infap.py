"""Run evaluation for TRECVID teams: NIST's xinfAP (via ``trec_eval_compat``), several runs side by side, and
the per-category breakdown (object / person / action / location) of the LAFF supplement's Table 14."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from avs.errors import InputError
from avs.formats.topics import LABELS, read_labels, read_topics, shipped_dir, shipped_labels_path
from trec_eval_compat.evaluate import Evaluation, Qrels, evaluate, format_sample_eval, load_run, parse_cutoffs
from trec_eval_compat.ids import DEFAULT_PREFIX, nist_topic_num
from trec_eval_compat.xinfap import AVS_CUTOFFS

MARK_DIFF = 0.1  # Table 14 of the LAFF supplement highlights per-topic differences above 0.1


def run_name(path: str | os.PathLike) -> str:
    name = Path(path).name
    for suffix in (".gz", ".xml", ".trec", ".txt", ".run"):
        name = name.removesuffix(suffix)
    return name


def evaluate_runs(
    runs: list[str | os.PathLike],
    qrels: str | os.PathLike | Qrels,
    strict: bool = False,
    prefix: str = DEFAULT_PREFIX,
    cutoffs: tuple[int, ...] = AVS_CUTOFFS,
) -> dict[str, Evaluation]:
    """Evaluate each run file (TREC or NIST XML) against the same qrels; keys are unique run names."""
    q = qrels if isinstance(qrels, Qrels) else Qrels.read(qrels)
    out: dict[str, Evaluation] = {}
    for path in runs:
        name = run_name(path)
        if name in out:
            name = os.fspath(path)
        out[name] = evaluate(q, load_run(path, prefix), strict=strict, run_path=os.fspath(path), cutoffs=cutoffs)
    return out


def topic_number(topic: str, prefix: str = DEFAULT_PREFIX) -> int | None:
    """NIST topic number of an evaluation topic id, or None when it does not carry the prefix."""
    try:
        return nist_topic_num(topic, prefix)
    except ValueError:
        return None


def shipped_topic_texts() -> dict[int, str]:
    """Topic number -> text over every topic file shipped with avs."""
    texts: dict[int, str] = {}
    for f in sorted(shipped_dir().glob("*.xml")):
        texts.update({t.num: t.text for t in read_topics(f, labels=False)})
    return texts


def infap_table(evals: dict[str, Evaluation], prefix: str = DEFAULT_PREFIX) -> pd.DataFrame:
    """Per-topic infAP, one column per run (topics of any run, numeric order) plus the ``all`` row.

    With several runs, ``mark:<run>`` columns hold ``+``/``-`` where that run is more than 0.1 above/below
    the first run on the topic (the highlighting rule of Table 14 in the LAFF supplement).
    """
    cols = {name: ev.per_topic["infAP"] for name, ev in evals.items()}
    df = pd.DataFrame(cols)
    df = df.loc[sorted(df.index, key=lambda t: (topic_number(t, prefix) or 0, t))]
    texts = shipped_topic_texts()
    df.insert(0, "text", [texts.get(topic_number(t, prefix), "") for t in df.index])
    names = list(evals)
    for name in names[1:]:
        diff = df[name] - df[names[0]]
        df[f"mark:{name}"] = ["+" if d > MARK_DIFF else "-" if d < -MARK_DIFF else "" for d in diff.fillna(0)]
    df.loc["all"] = {"text": "", **{n: ev.aggregate["infAP"] for n, ev in evals.items()}}
    df.index.name = "topic"
    return df


def label_means(
    evals: dict[str, Evaluation], labels: dict[int, frozenset[str]], prefix: str = DEFAULT_PREFIX
) -> pd.DataFrame:
    """Mean infAP over each run's evaluated topics carrying each label, with that topic count per run.

    Index: the four labels, plus ``unlabelled`` when some evaluated topic is not in the label table (its
    count only). Columns: ``<run>`` (mean infAP) and ``<run> topics`` (count) for each run.
    """
    table: dict[str, list] = {}
    index = list(LABELS)
    for name, ev in evals.items():
        nums = {t: topic_number(t, prefix) for t in ev.per_topic.index}
        means, counts = [], []
        for lab in LABELS:
            topics = [t for t, n in nums.items() if n in labels and lab in labels[n]]
            means.append(float(ev.per_topic.loc[topics, "infAP"].mean()) if topics else float("nan"))
            counts.append(len(topics))
        means.append(float("nan"))
        counts.append(sum(n not in labels for n in nums.values()))
        table[name], table[f"{name} topics"] = means, counts
    df = pd.DataFrame(table, index=pd.Index([*index, "unlabelled"], name="label"))
    if not any(df.loc["unlabelled", f"{n} topics"] for n in evals):
        df = df.drop(index="unlabelled")
    return df


def tidy(
    evals: dict[str, Evaluation], labels: dict[int, frozenset[str]] | None = None, prefix: str = DEFAULT_PREFIX
) -> pd.DataFrame:
    """Everything in one long table: run, topic (or ``all`` / ``label:<name>``), measure, value."""
    parts = []
    for name, ev in evals.items():
        pt = ev.per_topic.reset_index().melt(id_vars="topic", var_name="measure", value_name="value")
        agg = pd.DataFrame({"topic": "all", "measure": list(ev.aggregate), "value": list(ev.aggregate.values())})
        parts += [pt.assign(run=name), agg.assign(run=name)]
    if labels is not None:
        lm = label_means(evals, labels, prefix).drop(index="unlabelled", errors="ignore")
        for name in evals:
            parts.append(
                pd.DataFrame(
                    {
                        "run": name,
                        "topic": [f"label:{lab}" for lab in lm.index],
                        "measure": "infAP",
                        "value": lm[name].to_numpy(),
                    }
                )
            )
    return pd.concat(parts, ignore_index=True)[["run", "topic", "measure", "value"]]


def load_labels(path: str | os.PathLike | None) -> dict[int, frozenset[str]]:
    """The label table at ``path``, or the shipped ``topics/labels.tsv``."""
    return read_labels(path if path is not None else shipped_labels_path())


__all__ = [
    "format_sample_eval",
    "parse_cutoffs",
    "evaluate_runs",
    "infap_table",
    "label_means",
    "tidy",
    "load_labels",
    "InputError",
]
