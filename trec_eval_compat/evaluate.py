"""Evaluate a run against qrels: per-topic measures and the ``all`` aggregate, as sample_eval.pl does.

``compat`` mode (default) gives sample_eval.pl's numbers on every well-formed input. ``strict`` mode refuses
what is almost always a mistake (duplicate shots, more than 1000 shots for a topic, run topics the qrels do not
know) and averages over ALL qrels topics, a topic missing from the run scoring 0.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Iterable

import numpy as np

from .errors import InputError
from .io import RunColumns, RunLine, iter_qrels, looks_like_xml, read_run_columns
from .qrels import TopicQrels, build_qrels
from .xinfap import (
    AVS_CUTOFFS,
    CUTOFFS_2012,
    MAX_RESULTS,
    RECALL_POINTS,
    TopicMeasures,
    evaluate_topic,
    ideal_dcg,
    interpolated_precision,
)

RECALL_LABELS = tuple(f"iprec@rec{x:4.2f}" for x in RECALL_POINTS)
CUTOFF_SETS = {"avs": AVS_CUTOFFS, "2012": CUTOFFS_2012}

if TYPE_CHECKING:
    import pandas as pd


def parse_cutoffs(spec: str) -> tuple[int, ...]:
    """``avs`` (the AVS script's 5, 10, 15, 20, 30, 100, 200, 500, 1000), ``2012`` (the generic script's
    10, 100, 1000, 1000) or a comma-separated list of ranks, printed in the order given."""
    if spec.strip().lower() in CUTOFF_SETS:
        return CUTOFF_SETS[spec.strip().lower()]
    try:
        ranks = tuple(int(tok) for tok in spec.split(","))
    except ValueError:
        ranks = ()
    if not ranks or any(k < 1 for k in ranks):
        raise InputError(None, f"cutoffs {spec!r}: give avs, 2012 or ranks >= 1 separated by commas (5,10,100)")
    return ranks


def per_topic_measures(cutoffs: tuple[int, ...]) -> list[str]:
    return ["infAP", "infNDCG", *dict.fromkeys(f"iP{k}" for k in cutoffs), "inum_rel_ret", "inum_rel", "num_ret"]


@dataclass
class Evaluation:
    """Result of one run: ``topic_rows`` (topic id -> its measures, in ``columns`` order, topics in numeric
    order), also as the DataFrame ``per_topic`` (index = topic id, one column per measure), and ``aggregate``
    (sample_eval.pl's ``all`` values, keyed by the printed measure names).

    ``per_topic`` is built on first use: the command-line evaluator prints from ``topic_rows`` and never imports
    pandas, which alone takes longer to import than sample_eval.pl takes to score a run."""

    topic_rows: dict[str, list[float]]
    aggregate: dict[str, float]
    mode: str = "compat"
    missing_topics: list[str] = field(default_factory=list)  # qrels topics absent from the run
    ignored_topics: list[str] = field(default_factory=list)  # run topics absent from the qrels
    run_name: str | None = None
    cutoffs: tuple[int, ...] = AVS_CUTOFFS  # the iP ranks, as sample_eval prints them

    @property
    def columns(self) -> list[str]:
        return per_topic_measures(self.cutoffs)

    @cached_property
    def per_topic(self) -> "pd.DataFrame":
        import pandas as pd

        df = pd.DataFrame(
            list(self.topic_rows.values()),
            index=pd.Index(list(self.topic_rows), name="topic"),
            columns=self.columns,
        )
        df["num_ret"] = df["num_ret"].astype(int)
        return df


class Qrels:
    """Qrels prepared for repeated evaluation (per-topic statistics and ideal DCG computed once)."""

    def __init__(self, rows: Iterable[tuple[str, str, str, int]], path: str | None = None):
        self.path = path
        self.topics: dict[str, TopicQrels] = build_qrels(rows)
        self._idcg: dict[str, float] = {}

    def idcg(self, topic: str) -> float:
        if topic not in self._idcg:
            self._idcg[topic] = ideal_dcg(self.topics[topic])
        return self._idcg[topic]

    @classmethod
    def read(cls, path: str | os.PathLike) -> "Qrels":
        return cls(iter_qrels(path), os.fspath(path))


def load_run(path: str | os.PathLike, prefix: str = "1") -> RunColumns:
    """Read a TREC 6-column run or a NIST run XML (recognised by content; topic ids become prefix+tNum)."""
    if looks_like_xml(path):
        from .runxml import xml_run_lines

        return _columns(xml_run_lines(path, prefix), path)
    return read_run_columns(path)


def _columns(lines: list[RunLine], path) -> RunColumns:
    return RunColumns.from_records(((ln.topic, ln.shot, ln.score, ln.line) for ln in lines), path)


# The number Perl reads from the head of a string: '12abc' is 12, '1_0' is 1, '１２' (not ASCII) is 0
_PERL_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _numeric_key(topic: str) -> tuple[float, str]:
    # Perl's `<=>` on topic ids: numeric value, so '1661' < '10000'; ids without a leading number count as 0.
    # Perl reads 'nan' and 'inf' as NaN and Inf: read_qrels refuses those ids, so they are never evaluated and
    # count as 0 here among the ignored run topics. Equal values (1, 01) keep string order (Perl's follows its
    # randomised hash order).
    m = _PERL_NUMBER.match(topic)
    return (float(m.group()) if m else 0.0), topic


def group_run(run: RunColumns, strict: bool = False) -> dict[str, tuple[list[str], int]]:
    """topic -> (its shots in sample_eval.pl's order, at most 1000; its number of lines), topics in order of
    first appearance. Order: score descending, ties by shot id descending (string order); a shot listed twice
    takes the score of its last line, as the script's hash assignment does."""
    last, first = _last_rows(run)
    if strict and len(last) < len(run):
        repeat = np.ones(len(run), bool)
        repeat[first] = False
        row = int(np.flatnonzero(repeat)[0])
        raise InputError(
            run.path,
            f"topic {run.topics[run.topic[row]]}: shot {run.shots([row])[0]} appears twice (strict mode)",
            line=int(run.line[row]),
        )
    n_lines = np.bincount(run.topic, minlength=len(run.topics))
    if strict:
        for code, t in enumerate(run.topics):
            if n_lines[code] > MAX_RESULTS:
                raise InputError(run.path, f"topic {t}: {n_lines[code]} results, more than {MAX_RESULTS} (strict mode)")
    out = {}
    for code, (t, rows) in enumerate(zip(run.topics, run.rows_by_topic(last))):
        scores = run.score[rows]
        if len(rows) > MAX_RESULTS:  # only shots scoring at least the 1000th best can be ranked
            rows = rows[scores >= np.partition(scores, len(rows) - MAX_RESULTS)[len(rows) - MAX_RESULTS]]
        ranked = sorted(zip(run.score[rows].tolist(), run.shot[rows].tolist()), reverse=True)[:MAX_RESULTS]
        out[t] = ([shot.decode() for _, shot in ranked], int(n_lines[code]))
    return out


def _last_rows(run: RunColumns) -> tuple[np.ndarray, np.ndarray]:
    """Rows holding each distinct (topic, shot) for the last and for the first time."""
    key = run.key
    order = np.argsort(key)
    sorted_key = key[order]
    starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
    if len(starts) < len(run):  # equal keys: make sure their rows name the same pair
        a, b = order[:-1][sorted_key[1:] == sorted_key[:-1]], order[1:][sorted_key[1:] == sorted_key[:-1]]
        if ((run.shot[a] != run.shot[b]) | (run.topic[a] != run.topic[b])).any():
            pairs: dict[tuple, int] = {}
            key = np.fromiter(
                (pairs.setdefault(p, len(pairs)) for p in zip(run.topic.tolist(), run.shot.tolist())),
                np.int64,
                len(run),
            )
            order = np.argsort(key)
            sorted_key = key[order]
            starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
    # rows are in file order, so the largest row of a group is its last line
    return np.maximum.reduceat(order, starts), np.minimum.reduceat(order, starts)


def evaluate(
    qrels: Qrels | str | os.PathLike,
    run: RunColumns | list[RunLine] | str | os.PathLike,
    strict: bool = False,
    run_path: str | None = None,
    cutoffs: tuple[int, ...] = AVS_CUTOFFS,
) -> Evaluation:
    """Evaluate ``run`` (columns, lines or a TREC run file) against ``qrels`` (prepared or a path); iP at
    ``cutoffs``."""
    if not isinstance(qrels, Qrels):
        qrels = Qrels.read(qrels)
    if isinstance(run, list):
        run = _columns(run, run_path)
    elif not isinstance(run, RunColumns):
        run = read_run_columns(run)
    run_path = run_path or run.path
    grouped = group_run(run, strict)
    ignored = sorted((t for t in grouped if t not in qrels.topics), key=_numeric_key)
    if strict and ignored:
        raise InputError(
            run_path,
            f"{len(ignored)} run topic(s) not in the qrels {qrels.path or ''}: {', '.join(ignored[:5])} (strict mode)",
        )
    evaluated = sorted((t for t in grouped if t in qrels.topics), key=_numeric_key)
    if not evaluated:
        raise InputError(
            run_path,
            f"no run topic is in the qrels {qrels.path or ''}".rstrip()
            + f" (run topics: {', '.join(sorted(grouped, key=_numeric_key)[:5])})",
        )
    results: dict[str, TopicMeasures] = {}
    for t in evaluated:
        ranked, n_lines = grouped[t]
        results[t] = evaluate_topic(qrels.topics[t], ranked, n_lines, qrels.idcg(t), cutoffs)
    missing = sorted((t for t in qrels.topics if t not in grouped), key=_numeric_key)
    n_ip = len(per_topic_measures(cutoffs)) - 5
    rows = {
        t: [r.infAP, r.infNDCG, *dict(zip(cutoffs, r.iP)).values(), r.inum_rel_ret, r.inum_rel, r.num_ret]
        for t, r in results.items()
    }
    if strict:
        for t in missing:
            rows[t] = [0.0, 0.0, *[0.0] * n_ip, 0.0, qrels.topics[t].num_rel, 0]
        rows = {t: rows[t] for t in sorted(rows, key=_numeric_key)}
    return Evaluation(
        rows,
        _aggregate(qrels, results, len(rows), cutoffs),
        "strict" if strict else "compat",
        missing,
        ignored,
        run_name=run_path,
        cutoffs=tuple(cutoffs),
    )


def _aggregate(
    qrels: Qrels, results: dict[str, TopicMeasures], n_topics: int, cutoffs: tuple[int, ...]
) -> dict[str, float]:
    """The ``all`` lines, summed in the script's orders (numeric topic order for most sums, string order
    for the recall points and for ``inum_rel``) and divided by ``n_topics``."""
    sum_ap = sum_ndcg = sum_rel_ret = 0.0
    sum_p = [0.0] * len(cutoffs)
    num_ret = 0
    for r in results.values():  # numeric topic order
        sum_ap += r.infAP
        sum_ndcg += r.infNDCG
        sum_rel_ret += r.inum_rel_ret
        sum_p = [s + p for s, p in zip(sum_p, r.iP)]
        num_ret += r.num_evaluated
    sum_rec = [0.0] * len(RECALL_POINTS)
    for t in sorted(results):
        sum_rec = [s + p for s, p in zip(sum_rec, interpolated_precision(results[t]))]
    sum_num_rel = 0.0
    for t in sorted(qrels.topics):
        sum_num_rel += qrels.topics[t].num_rel
    agg = {"infAP": sum_ap / n_topics, "infNDCG": sum_ndcg / n_topics}
    agg.update({label: s / n_topics for label, s in zip(RECALL_LABELS, sum_rec)})
    agg.update({f"iP{k}": p / n_topics for k, p in zip(cutoffs, sum_p)})
    agg.update({"inum_rel_ret": sum_rel_ret, "inum_rel": sum_num_rel, "num_ret": num_ret})
    return agg


def format_sample_eval(ev: Evaluation, per_query: bool = False) -> str:
    """The exact text sample_eval.pl prints (``-q`` adds the per-topic lines)."""
    out = []
    if per_query:
        for t, values in ev.topic_rows.items():
            row = dict(zip(ev.columns, values))
            out.append(f"infAP\t\t{t}\t\t{row['infAP']:6.4f}\n")
            out.append(f"infNDCG\t\t{t}\t\t{row['infNDCG']:6.4f}\n")
            for k in ev.cutoffs:
                out.append(f"iP{k}\t\t{t}\t\t{row[f'iP{k}']:6.4f}\n")
            out.append(f"inum_rel_ret\t{t}\t{row['inum_rel_ret']:14.4f}\n")
            out.append(f"inum_rel\t{t}\t{row['inum_rel']:14.4f}\n")
            out.append(f"num_ret\t\t{t}\t{int(row['num_ret']):9d}\n")
    a = ev.aggregate
    out.append(f"infAP\t\tall\t\t{a['infAP']:6.4f}\n")
    out.append(f"infNDCG\t\tall\t\t{a['infNDCG']:6.4f}\n")
    for label in RECALL_LABELS:
        out.append(f"{label}\tall\t\t{a[label]:6.4f}\n")
    for k in ev.cutoffs:
        out.append(f"iP{k}\t\tall\t\t{a[f'iP{k}']:6.4f}\n")
    out.append(f"inum_rel_ret\tall\t{a['inum_rel_ret']:14.4f}\n")
    out.append(f"inum_rel\tall\t{a['inum_rel']:14.4f}\n")
    out.append(f"num_ret\t\tall\t{int(a['num_ret']):9d}\n")
    return "".join(out)
