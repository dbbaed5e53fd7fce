"""Per-topic estimators of sample_eval.pl (NIST's TRECVID evaluation: the AVS script distributed since TV16,
which differs from the generic script of 5 Sep 2012 only in the precision cutoffs it prints).

Every arithmetic step is done in the script's order so that results agree to the last bit, not only to
the printed four decimals: per-stratum terms are added in string order of the stratum labels, sums over
ranks are sequential (``np.cumsum``, never pairwise), and logarithms come from C's ``log`` via ``math``.

Notation (trecvid-formats.md §1.5): at rank k, over the shots ranked strictly above k, D = pooled shots,
and per stratum c: D_c pooled, s_c sampled (judgment ≥ 0), ρ_c sampled relevant (judgment > 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .qrels import TopicQrels

MAX_RESULTS = 1000
AVS_CUTOFFS = (5, 10, 15, 20, 30, 100, 200, 500, 1000)  # the AVS script (TV16 on)
CUTOFFS_2012 = (10, 100, 1000, 1000)  # the generic 2012 script lists 1000 twice and prints it twice
CUTOFFS = AVS_CUTOFFS
RECALL_POINTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
_EPS_REL, _EPS_SAMPLED = 0.00001, 0.00003
_LOG2 = math.log(2)
# log2(k+1) for k = 1..MAX_RESULTS, from C's log() as the Perl script computes it
_DISCOUNT = np.array([math.log(k + 1) / _LOG2 for k in range(1, MAX_RESULTS + 1)])
_RANKS = np.arange(1, MAX_RESULTS + 1, dtype=np.float64)


@dataclass
class TopicMeasures:
    """Measures of one topic, named as sample_eval.pl prints them, plus N̂(k) for the recall points."""

    infAP: float
    infNDCG: float
    iP: tuple[float, ...]  # one per cutoff asked for
    inum_rel_ret: float
    inum_rel: float
    num_ret: int  # run lines for the topic, duplicates and lines past 1000 included
    num_evaluated: int  # distinct shots evaluated (at most 1000)
    inferred_rel_at: np.ndarray  # N̂(k), k = 1..num_evaluated


def _seqsum(a: np.ndarray) -> float:
    return float(np.cumsum(a)[-1]) if len(a) else 0.0


def ideal_dcg(q: TopicQrels) -> float:
    """IDCG: grades in descending string order fill ranks start+1.. (start may be fractional); a grade stops
    once its rank reaches MAX_RESULTS, and a later grade still adds its first term past it."""
    per_grade = q.num_rel_per_grade()
    total, start = 0.0, 0.0
    for g in sorted(per_grade, key=str, reverse=True):
        r = start + 1
        while r <= start + per_grade[g]:
            total += g / (math.log(r + 1) / _LOG2)
            if r >= MAX_RESULTS:
                break
            r += 1
        start += per_grade[g]
    return total


def evaluate_topic(
    q: TopicQrels, ranked: list[str], num_ret: int, idcg: float | None = None, cutoffs: tuple[int, ...] = CUTOFFS
) -> TopicMeasures:
    """All per-topic measures for the ranked shot list (already ordered and cut to 1000); iP at ``cutoffs``."""
    n = len(ranked)
    lookup = q.shots.get
    strata = q.strata
    index = {c: i for i, c in enumerate(strata)}
    cat = np.full(n, -1, dtype=np.int64)
    rel = np.zeros(n, dtype=np.int64)
    for k, shot in enumerate(ranked):
        hit = lookup(shot)
        if hit is not None:
            cat[k] = index[hit[0]]
            rel[k] = hit[1]
    pooled = cat >= 0
    is_rel = rel > 0
    depth_after = np.cumsum(pooled)
    depth_before = (depth_after - pooled).astype(np.float64)
    ranks = _RANKS[:n]

    prec_above = np.zeros(n)
    inferred_rel = np.zeros(n)  # N̂(k), counts including rank k
    sap, gain, docs_final, sampled_final = {}, {}, {}, {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for i, c in enumerate(strata):
            in_c = cat == i
            docs_after = np.cumsum(in_c)
            rel_after = np.cumsum(in_c & is_rel)
            samp_after = np.cumsum(in_c & (rel >= 0))
            docs_before = docs_after - in_c
            prob = docs_before / depth_before
            term = (
                prob * ((rel_after - (in_c & is_rel)) + _EPS_REL) / ((samp_after - (in_c & (rel >= 0))) + _EPS_SAMPLED)
            )
            prec_above = prec_above + np.where((depth_before != 0) & (prob != 0), term, 0.0)
            inferred_rel = inferred_rel + docs_after * (rel_after + _EPS_REL) / (samp_after + _EPS_SAMPLED)
            docs_final[c] = int(docs_after[-1]) if n else 0
            sampled_final[c] = int(samp_after[-1]) if n else 0
        prec = 1.0 / ranks + (depth_before / ranks) * prec_above
    for i, c in enumerate(strata):
        hits = (cat == i) & is_rel
        sap[c] = _seqsum(prec[hits])
        gain[c] = _seqsum(rel[hits] / _DISCOUNT[:n][hits])

    num_rel = q.num_rel
    ap = 0.0
    for c in strata:
        if q.sampled.get(c, 0) != 0 and num_rel != 0:
            r_c = q.relevant.get(c, 0)
            p_c = r_c * q.pooled[c] / q.sampled[c] / num_rel
            ap += p_c * (sap[c] / r_c if r_c != 0 else 0.0)
    if num_rel > MAX_RESULTS:
        ap = ap * num_rel / MAX_RESULTS

    depth = int(depth_after[-1]) if n else 0
    dcg = 0.0
    if depth != 0:
        for c in strata:
            if sampled_final[c] != 0:
                dcg += docs_final[c] / depth * gain[c] / sampled_final[c]
    idcg = ideal_dcg(q) if idcg is None else idcg
    ndcg = depth * dcg / idcg if idcg != 0 else 0.0

    last = float(inferred_rel[-1]) if n else 0.0
    ip = tuple(float(inferred_rel[k - 1]) / k if n >= k else last / k for k in cutoffs)
    return TopicMeasures(ap, ndcg, ip, last, num_rel, num_ret, n, inferred_rel)


def interpolated_precision(res: TopicMeasures) -> list[float]:
    """sample_eval.pl's 11-point interpolated precision of one topic (its own interpolation, see
    trecvid-formats.md §1.5): walking ranks upward from the last, the running maximum of N̂(k)/k is given to
    the current recall point when the point's target exceeds N̂(k), one point per rank; points whose target
    exceeds N̂(last) get 0; points left after the walk get the final maximum."""
    out = [0.0] * len(RECALL_POINTS)
    targets = [x * res.inum_rel for x in RECALL_POINTS]
    cur = len(targets) - 1
    while cur >= 0 and targets[cur] > res.inum_rel_ret:
        cur -= 1
    nrk = res.inferred_rel_at
    n = len(nrk)
    if n == 0:
        return out
    running_max = np.maximum.accumulate((nrk / _RANKS[:n])[::-1])[::-1]  # max over ranks >= k
    pos = n - 1
    while cur >= 0 and pos >= 0:
        below = np.flatnonzero(nrk[: pos + 1] < targets[cur])
        if not len(below):
            break
        pos = int(below[-1])
        out[cur] = max(0.0, float(running_max[pos]))
        cur -= 1
        pos -= 1
    final = max(0.0, float(running_max[0]))
    while cur >= 0:
        out[cur] = final
        cur -= 1
    return out
