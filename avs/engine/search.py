"""Exact top-k search over an index: every shot scored for every topic, the best k kept.

The scan runs in float32 over float16 rows; the final ranking is exact: candidates are every shot whose
float32 score is within a proven error bound of the k-th best, and those are re-scored in float64 and ordered
by score descending, ties by shot id descending (the order NIST's sample_eval.pl evaluates in).
"""

from __future__ import annotations

import mmap
import os
import queue
import threading
import warnings
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch

from avs.engine.index import Index

PIECE_ROWS = 1024


def _error_bound(dim: int, weight_sum: float) -> float:
    """Bound on |float32 score − exact score|: a D-term dot product whose |products| sum to at most Σ|w_s|
    (unit vectors per space) errs by less than D·2^-24 of that in any summation order; doubled for safety."""
    return 2.0 * (dim + 2) * 2.0**-24 * max(1.0, weight_sum)


@dataclass
class Hits:
    """Top-k of one query: shot ids, exact (float64) scores, best first."""

    shots: list[str]
    scores: np.ndarray


def exact_scores(rows: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """float64 scores (rows × queries); per-row sums are independent of how many rows are passed."""
    rows = np.asarray(rows)
    if rows.dtype == np.float16:  # exact widening; torch does it far faster than numpy
        rows = torch.from_numpy(np.ascontiguousarray(rows)).float().numpy()
    r = rows.astype(np.float64)
    return np.stack([(r * q).sum(axis=1) for q in np.asarray(queries, dtype=np.float64)], axis=1)


def _gather(index: Index, rows: np.ndarray) -> np.ndarray:
    """The float16 rows ``rows`` (sorted), read one by one: no memory map, so resident memory stays small."""
    out = np.empty((len(rows), index.dim), np.float16)
    offset = index.offset
    if offset is None:
        for i, r in enumerate(rows):
            out[i] = index.embeddings[int(r)]
        return out
    size = index.dim * 2
    with open(index.path, "rb", buffering=0) as fh:
        fd = fh.fileno()
        for i, r in enumerate(rows):
            out[i] = np.frombuffer(os.pread(fd, size, offset + int(r) * size), np.float16)
    return out


def _mapped_block(index: Index, fd: int, offset: int, start: int, stop: int):
    """Rows [start, stop) as a read-only view of a fresh mapping, pre-faulted in one call where the OS can
    (MAP_POPULATE): no copy out of the page cache, and unmapped again once the view is dropped."""
    row_bytes = index.dim * 2
    first = (offset + start * row_bytes) // mmap.ALLOCATIONGRANULARITY * mmap.ALLOCATIONGRANULARITY
    length = offset + stop * row_bytes - first
    flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
    m = mmap.mmap(fd, length, flags=flags, prot=mmap.PROT_READ, offset=first)
    view = np.frombuffer(m, np.float16, (stop - start) * index.dim, offset + start * row_bytes - first)
    return view.reshape(stop - start, index.dim), m


def _blocks(index: Index, block_rows: int) -> Iterator[tuple[int, np.ndarray]]:
    """(start, float16 rows) blocks prepared by a thread two blocks ahead, so that I/O overlaps the matrix
    products and memory stays at a few blocks whatever the index size. A contiguous index is memory-mapped
    block by block; a chunked one is read into reused buffers."""
    n = len(index)
    offset = index.offset
    free: queue.Queue = queue.Queue()
    for _ in range(3 if offset is None else 0):
        free.put(np.empty((min(block_rows, n), index.dim), np.float16))
    full: queue.Queue = queue.Queue(maxsize=2)

    def read() -> None:
        try:
            with open(index.path, "rb", buffering=0) as fh:
                for start in range(0, n, block_rows):
                    stop = min(start + block_rows, n)
                    if offset is None:
                        buf = free.get()
                        index.embeddings.read_direct(buf, source_sel=np.s_[start:stop], dest_sel=np.s_[: stop - start])
                        full.put((start, buf[: stop - start], buf))
                    else:
                        full.put((start, *_mapped_block(index, fh.fileno(), offset, start, stop)))
            full.put(None)
        except BaseException as e:  # handed to the consumer, which re-raises it
            full.put(e)

    threading.Thread(target=read, daemon=True).start()
    while True:
        item = full.get()
        if item is None:
            return
        if isinstance(item, BaseException):
            raise item
        start, view, owner = item
        yield start, view
        if isinstance(owner, np.ndarray):
            free.put(owner)  # the consumer is done with it once it asks for the next block
        elif hasattr(mmap, "MADV_DONTNEED"):
            owner.madvise(mmap.MADV_DONTNEED)  # leave the pages to the page cache, out of our resident set
        del view, owner, item


def search(
    index: Index,
    queries: np.ndarray,
    k: int = 1000,
    exclude: Sequence[str] = (),
    block_rows: int = 16384,
    progress: bool = False,
) -> list[Hits]:
    """Top-``k`` shots per query. ``queries``: (Q, S·d) weighted query rows (``avs.engine.encode.weighted_queries``).

    Candidate pools keep every row whose float32 score is at least floor_q = (k-th best float32 score seen)
    − 2·bound; since the floor only rises and the final k-th best float32 score is within ``bound`` of the
    exact k-th best, every row of the exact top k is in the pool when the scan ends.
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if queries.ndim != 2 or queries.shape[1] != index.dim:
        raise ValueError(f"queries of shape {queries.shape}, index rows have {index.dim} dims")
    nq, n = len(queries), len(index)
    k = min(k, n)
    excluded = np.zeros(n, dtype=bool)
    if exclude:
        pos = {s: i for i, s in enumerate(index.ids)}
        excluded[[pos[s] for s in exclude if s in pos]] = True
    k_eff = min(k, n - int(excluded.sum()))
    bound = _error_bound(index.dim, float(np.abs(index.space_weights).sum()))
    qt = torch.from_numpy(queries).T.contiguous()
    # float16 -> float32 in cache-sized pieces: the converted rows are multiplied while still in cache, so
    # memory traffic is the float16 bytes alone (faster than a float32 product over data in memory)
    piece = torch.empty(min(PIECE_ROWS, n), index.dim)
    out = torch.empty(min(block_rows, n), nq)
    pool_rows: list[list[np.ndarray]] = [[] for _ in range(nq)]
    pool_scores: list[list[np.ndarray]] = [[] for _ in range(nq)]
    pool_size = np.zeros(nq, dtype=np.int64)
    floor = np.full(nq, -np.inf, dtype=np.float32)
    from tqdm import tqdm

    bar = tqdm(total=n, unit="shot", desc="search", disable=None if progress else True)
    for start, block in _blocks(index, block_rows):
        rows = len(block)
        bar.update(rows)
        with warnings.catch_warnings():  # the mapped rows are read-only and only ever read
            warnings.simplefilter("ignore", UserWarning)
            half = torch.from_numpy(block)
        for p in range(0, rows, PIECE_ROWS):
            x = piece[: min(PIECE_ROWS, rows - p)]
            x.copy_(half[p : p + len(x)])
            torch.mm(x, qt, out=out[p : p + len(x)])
        scores = out[:rows].T.contiguous()  # (Q, B)
        skip = excluded[start : start + rows]
        if skip.any():
            scores[:, torch.from_numpy(skip)] = -np.inf
        if rows >= k_eff > 0:  # this block's k-th best can only be below the final k-th best
            kth = torch.topk(scores, k_eff, dim=1, sorted=False).values.min(dim=1).values.numpy()
            floor = np.maximum(floor, kth - 2 * bound)
        s = scores.numpy()
        qi, ri = np.nonzero((s >= floor[:, None]) & (s > -np.inf))
        bounds = np.searchsorted(qi, np.arange(nq + 1))
        for j in range(nq):
            sel = ri[bounds[j] : bounds[j + 1]]
            if len(sel):
                pool_rows[j].append(sel + start)
                pool_scores[j].append(s[j, sel])
                pool_size[j] += len(sel)
            if pool_size[j] > 4 * k_eff + block_rows:  # the floor rose since these rows came in
                floor[j] = _prune(pool_rows, pool_scores, pool_size, j, k_eff, bound, floor[j])
    bar.close()
    for j in range(nq):
        floor[j] = _prune(pool_rows, pool_scores, pool_size, j, k_eff, bound, floor[j])
    return [
        _rerank(index, np.concatenate(pool_rows[j]) if pool_rows[j] else np.empty(0, np.int64), queries[j], k)
        for j in range(nq)
    ]


def _prune(pool_rows, pool_scores, pool_size, j: int, k: int, bound: float, floor: float) -> float:
    """Raise query j's floor to its pool's k-th best score − 2·bound and drop the rows below it."""
    if not pool_rows[j] or pool_size[j] <= k:
        return floor
    r, v = np.concatenate(pool_rows[j]), np.concatenate(pool_scores[j])
    floor = max(floor, float(np.partition(v, len(v) - k)[len(v) - k]) - 2 * bound)
    keep = v >= floor
    pool_rows[j], pool_scores[j], pool_size[j] = [r[keep]], [v[keep]], int(keep.sum())
    return floor


def _rerank(index: Index, rows: np.ndarray, query: np.ndarray, k: int) -> Hits:
    ids = index.ids
    rows = np.sort(rows)
    exact = exact_scores(_gather(index, rows), query[None])[:, 0] if len(rows) else np.empty(0)
    return best_k([ids[i] for i in rows], exact, k)


def best_k(shots: Sequence[str], scores: np.ndarray, k: int) -> Hits:
    """The ``k`` best of shots with exact scores, in the order NIST's evaluator ranks them: score descending,
    ties by shot id descending. Every exact ranking (one index, merged shards, approximate candidates) ends here."""
    order = sorted(range(len(shots)), key=lambda i: (scores[i], shots[i]), reverse=True)[:k]
    return Hits([shots[i] for i in order], np.asarray(scores)[order])


def brute_force(index: Index, queries: np.ndarray, k: int = 1000, exclude: Sequence[str] = ()) -> list[Hits]:
    """Reference ranking: float64 scores of every shot (for tests and checks; slow and memory-hungry)."""
    rows = np.asarray(index.embeddings[()])
    scores = exact_scores(rows, queries)
    skip = set(exclude)
    out = []
    for j in range(len(queries)):
        cand = [i for i in range(len(rows)) if index.ids[i] not in skip]
        order = sorted(cand, key=lambda i: (scores[i, j], index.ids[i]), reverse=True)[:k]
        out.append(Hits([index.ids[i] for i in order], scores[order, j]))
    return out
