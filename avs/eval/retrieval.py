"""Retrieval metrics of caption datasets, as the official LAFF evaluation defines them (laff-method.md §11.1).

For every query the items are ranked by descending score. With ``p_1 < p_2 < ...`` the 1-based positions of
the query's relevant (ground-truth) items:

* rank = p_1, the position of the first relevant item;
* R@K = 100 · fraction of queries with rank <= K (K = 1, 5, 10);
* MedR = floor(median rank); MeanR = mean rank; mIR = mean of 1/rank;
* AP = mean over k of k / p_k; mAP = mean AP (equals mIR when every query has one relevant item).

Ties: the official code orders equal scores however numpy's argsort happens to. Here an item with the same
score as another is ranked after it when its index is larger (a stable sort by descending score), so the same
scores always give the same metrics. Text→video queries are captions (one relevant video each); video→text
queries are the videos that have captions (all their captions are relevant).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch

METRICS = ("r1", "r5", "r10", "medr", "meanr", "mir", "map")
LABELS = {"r1": "R@1", "r5": "R@5", "r10": "R@10", "medr": "MedR", "meanr": "MeanR", "mir": "mIR", "map": "mAP"}
# Upper bound on the booleans compared at once (queries x relevant items x items), to bound memory.
_BLOCK_ELEMENTS = 1 << 25
# Up to this many relevant items per query, positions are counted rather than sorted (3·G vs log2 N work).
_COUNT_MAX_RELEVANT = 4


def relevant_positions(scores: np.ndarray | torch.Tensor, relevant: Sequence[Sequence[int]]) -> list[np.ndarray]:
    """Per query, the sorted 1-based positions its relevant items take in the ranking (ties as documented)."""
    s = torch.as_tensor(np.asarray(scores) if not isinstance(scores, torch.Tensor) else scores).float().cpu()
    if s.ndim != 2 or s.shape[0] != len(relevant):
        raise ValueError(f"scores of shape {tuple(s.shape)} for {len(relevant)} queries")
    n_items = s.shape[1]
    rel = [np.asarray(r, dtype=np.int64).reshape(-1) for r in relevant]
    for q, r in enumerate(rel):
        if r.size == 0:
            raise ValueError(f"query {q} has no relevant item")
        if r.min() < 0 or r.max() >= n_items or np.unique(r).size != r.size:
            raise ValueError(f"query {q}: relevant items must be distinct indices in 0..{n_items - 1}")
    width = max(r.size for r in rel)
    step = max(1, _BLOCK_ELEMENTS // (min(width, _COUNT_MAX_RELEVANT) * max(n_items, 1)))
    item_index = torch.arange(n_items)
    out: list[np.ndarray] = []
    for start in range(0, len(rel), step):
        block = rel[start : start + step]
        gt = torch.zeros(len(block), width, dtype=torch.long)
        valid = torch.zeros(len(block), width, dtype=torch.bool)
        for row, r in enumerate(block):
            gt[row, : r.size] = torch.from_numpy(r)
            valid[row, : r.size] = True
        rows = s[start : start + len(block)]  # (b, N)
        if width <= _COUNT_MAX_RELEVANT:
            # position = 1 + items scored higher + equal-scored items of smaller index: O(G·N), no sort
            gt_scores = rows.gather(1, gt).unsqueeze(-1)  # (b, G, 1)
            ahead = (rows.unsqueeze(1) > gt_scores).sum(-1)
            ahead += ((rows.unsqueeze(1) == gt_scores) & (item_index < gt.unsqueeze(-1))).sum(-1)
            pos = (ahead + 1).numpy()
        else:
            # many relevant items (video→text): one stable sort per row is cheaper than G comparisons
            order = torch.sort(rows, dim=1, descending=True, stable=True).indices
            place = torch.empty_like(order).scatter_(1, order, (item_index + 1).expand_as(order))
            pos = place.gather(1, gt).numpy()
        out.extend(np.sort(pos[row, : r.size]) for row, r in enumerate(block))
    return out


def summarize(positions: Sequence[np.ndarray]) -> dict[str, float]:
    """The metrics of §11.1 from each query's sorted relevant positions; also the number of queries."""
    ranks = np.array([p[0] for p in positions], dtype=np.float64)
    aps = np.array([np.mean(np.arange(1, p.size + 1) / p) for p in positions], dtype=np.float64)
    out = {f"r{k}": float(100.0 * np.mean(ranks <= k)) for k in (1, 5, 10)}
    out.update(
        medr=float(np.floor(np.median(ranks))),
        meanr=float(ranks.mean()),
        mir=float(np.mean(1.0 / ranks)),
        map=float(aps.mean()),
        queries=len(ranks),
    )
    return out


def retrieval_metrics(scores: np.ndarray | torch.Tensor, relevant: Sequence[Sequence[int]]) -> dict[str, float]:
    """R@1/5/10, MedR, MeanR, mIR, mAP (and ``queries``) of a queries x items score matrix."""
    return summarize(relevant_positions(scores, relevant))


def caption_relevance(caption_videos: Sequence[int], n_videos: int) -> tuple[list[list[int]], list[int]]:
    """Video→text ground truth: per video with captions, its caption indices; and those videos' indices."""
    captions_of: list[list[int]] = [[] for _ in range(n_videos)]
    for c, v in enumerate(caption_videos):
        captions_of[int(v)].append(c)
    videos = [v for v in range(n_videos) if captions_of[v]]
    return [captions_of[v] for v in videos], videos


def text_video_metrics(
    scores: np.ndarray | torch.Tensor, caption_videos: Sequence[int], directions: Sequence[str] = ("t2v", "v2t")
) -> dict[str, dict[str, float]]:
    """Metrics of a captions x videos score matrix; ``caption_videos[i]`` is the video index of caption i."""
    s = torch.as_tensor(np.asarray(scores) if not isinstance(scores, torch.Tensor) else scores)
    out = {}
    if "t2v" in directions:
        out["t2v"] = retrieval_metrics(s, [[int(v)] for v in caption_videos])
    if "v2t" in directions:
        rel, videos = caption_relevance(caption_videos, s.shape[1])
        out["v2t"] = retrieval_metrics(s.T[videos], rel)
    return out


def metrics_table(results: dict[str, dict[str, float]]) -> pd.DataFrame:
    """One row per direction: direction, queries, R@1 ... mAP."""
    rows = [
        {"direction": d, "queries": int(m["queries"]), **{LABELS[k]: float(m[k]) for k in METRICS}}
        for d, m in results.items()
    ]
    return pd.DataFrame(rows, columns=["direction", "queries", *LABELS.values()])


__all__ = [
    "METRICS",
    "relevant_positions",
    "summarize",
    "retrieval_metrics",
    "caption_relevance",
    "text_video_metrics",
    "metrics_table",
]
