"""Exact top-k search over an index: every shot scored for every topic, the best k kept.

The scan scores float16 rows in bfloat16 (where the CPU multiplies it natively), then in float32 the rows
whose bfloat16 score is within a proven error bound of reaching the k-th best; the final ranking is exact:
candidates are every shot whose float32 score is within a proven error bound of the k-th best, and those are
re-scored in float64 and ordered by score descending, ties by shot id descending (the order NIST's
sample_eval.pl evaluates in).
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
BF16_PIECE_ROWS = 512
BF16_U = 2.0**-8  # unit roundoff of bfloat16
BF16_U1 = BF16_U / (1 - BF16_U)  # |x − bf16(x)| ≤ u·|x| ≤ u'·|bf16(x)|
FALLBACK_SHARE = 0.5  # a block with more of its rows in reach than this is scored in float32 outright


def _fp32_bound(dim: int, weight_sum: float) -> float:
    """Bound on |float32 score − exact score|: a D-term dot product whose |products| sum to at most Σ|w_s|
    (unit vectors per space) errs by less than D·2^-24 of that in any summation order; doubled for safety."""
    return 2.0 * (dim + 2) * 2.0**-24 * max(1.0, weight_sum)


def _bf16_slack(queries: np.ndarray, spaces: int) -> np.ndarray:
    """Per query, c with |bfloat16 score a − exact score| ≤ u'·|a| + c, from the query as rounded.

    With q_b, v_b the bfloat16 roundings of query q and row v: q·v − q_b·v_b = q_b·(v − v_b) + (q − q_b)·v, at
    most u·Σ_s ‖q_b,s‖·‖v_s‖ + Σ_s ‖q_s − q_b,s‖·‖v_s‖ (Cauchy–Schwarz per space, the query's own rounding
    measured, not bounded); products of bfloat16 values are exact in float32 and their float32 sum errs by at
    most γ = 2D·2^-24 of Σ|q_b,i·v_b,i| ≤ (1 + u)·Σ_s ‖q_b,s‖·‖v_s‖ (any order, pairs fused or not); rows are
    unit per space up to float16 rounding (allowed 2^-9); rounding the result to bfloat16 adds u'·|a|. A
    quarter on top for safety."""
    u, (nq, dim) = BF16_U, queries.shape
    gamma = 2 * dim * 2.0**-24
    q = queries.astype(np.float64).reshape(nq, spaces, -1)
    qb = torch.from_numpy(queries).bfloat16().double().numpy().reshape(nq, spaces, -1)
    rounded = np.linalg.norm(qb, axis=2).sum(axis=1)
    residual = np.linalg.norm(q - qb, axis=2).sum(axis=1)
    return 1.25 * (1 + 2.0**-9) * ((u + gamma * (1 + u)) * rounded + residual)


@dataclass
class Hits:
    """Top-k of one query: shot ids, exact (float64) scores, best first."""

    shots: list[str]
    scores: np.ndarray


def exact_scores(rows: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """float64 scores (rows × queries). Each row's sum is taken on its own, so a row scores the same bits
    however many rows come with it; rows are widened in small groups that stay in cache."""
    rows = np.asarray(rows)
    qs = np.asarray(queries, dtype=np.float64)
    out = np.empty((len(rows), len(qs)))
    for p in range(0, len(rows), 64):
        group = np.ascontiguousarray(rows[p : p + 64])
        if group.dtype in (np.float16, np.float32):  # exact widening; torch does it far faster than numpy
            group = torch.from_numpy(group).float().double().numpy()
        group = group.astype(np.float64, copy=False)
        for j, q in enumerate(qs):
            out[p : p + 64, j] = (group * q).sum(axis=1)
    return out


def _gather(index: Index, rows: np.ndarray) -> np.ndarray:
    """The float16 rows ``rows`` (sorted), each run of consecutive rows read in one call, no memory map, so
    resident memory stays small."""
    out = np.empty((len(rows), index.dim), np.float16)
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    runs = zip(np.r_[0, breaks], np.r_[breaks, len(rows)]) if len(rows) else ()  # [a, b) of out, one run each
    offset = index.offset
    if offset is None:
        for a, b in runs:
            index.embeddings.read_direct(out, source_sel=np.s_[rows[a] : rows[a] + b - a], dest_sel=np.s_[a:b])
        return out
    size = index.dim * 2
    with open(index.path, "rb", buffering=0) as fh:
        for a, b in runs:
            view = memoryview(out[a:b]).cast("B")
            at, pos = offset + int(rows[a]) * size, 0
            while pos < len(view):  # a read may stop short of the run
                got = os.preadv(fh.fileno(), [view[pos:]], at + pos)
                if got <= 0:
                    raise OSError(f"{index.path}: index file ends before row {int(rows[b - 1])}")
                pos += got
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
    first_pass: str = "auto",
) -> list[Hits]:
    """Top-``k`` shots per query. ``queries``: (Q, S·d) weighted query rows (``avs.engine.encode.weighted_queries``).

    ``first_pass``: "bfloat16" scores every row in bfloat16 first and re-scores in float32 only the rows whose
    bfloat16 score, plus its error bound, reaches a proven lower bound on the final k-th best exact score;
    "float32" scores every row in float32; "auto" (default) is bfloat16 where the CPU multiplies it natively.
    Blocks where most rows would need float32 anyway (scores packed too tightly for the bfloat16 bound) are
    scored in float32 outright. The ranking is the same whichever pass runs: it is decided by float64 scores.
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if queries.ndim != 2 or queries.shape[1] != index.dim:
        raise ValueError(f"queries of shape {queries.shape}, index rows have {index.dim} dims")
    if first_pass not in ("auto", "bfloat16", "float32"):
        raise ValueError(f"first_pass {first_pass!r}: expected auto, bfloat16 or float32")
    n = len(index)
    k = min(k, n)
    excluded = np.zeros(n, dtype=bool)
    if exclude:
        pos = {s: i for i, s in enumerate(index.ids)}
        excluded[[pos[s] for s in exclude if s in pos]] = True
    k_eff = min(k, n - int(excluded.sum()))
    bf16 = first_pass == "bfloat16" or (first_pass == "auto" and _bf16_native())
    scan = _Scan(queries, k_eff, index.spaces, float(np.abs(index.space_weights).sum()), bf16, min(block_rows, n))
    from tqdm import tqdm

    bar = tqdm(total=n, unit="shot", desc="search", disable=None if progress else True)
    for start, block in _blocks(index, block_rows):
        bar.update(len(block))
        with warnings.catch_warnings():  # the mapped rows are read-only and only ever read
            warnings.simplefilter("ignore", UserWarning)
            scan.block(start, torch.from_numpy(block), excluded[start : start + len(block)])
    bar.close()
    return [_rerank(index, rows, queries[j], k) for j, rows in enumerate(scan.candidates())]


def _bf16_native() -> bool:
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(check and check())


class _Scan:
    """The running state of one scan: per query a lower bound on the final k-th best exact score, and a pool
    of (row, float32 score) kept while their float32 score could still reach it.

    Every lower bound is k rows' worst-case exact score: the k-th best bfloat16 score a_k of a block gives
    a_k − u·|a_k| − c, the k-th best float32 score s_k of any rows gives s_k − b. A row is dropped only when
    its best-case exact score (a + u·|a| + c, or s + b) is below the bound, so every row of the exact top k
    survives to the float64 re-ranking.
    """

    def __init__(self, queries: np.ndarray, k: int, spaces: int, weight_sum: float, bf16: bool, block_rows: int):
        nq, dim = queries.shape
        self.k, self.bf16, self.bf16_allowed = k, bf16, bf16
        self.q32 = torch.from_numpy(queries)
        self.qt = self.q32.T.contiguous()
        self.qb = self.q32.bfloat16()
        self.b32 = _fp32_bound(dim, weight_sum)
        self.slack = torch.from_numpy(_bf16_slack(queries, spaces).astype(np.float32))[:, None]
        self.lower = np.full(nq, -np.inf)
        self.pool_rows: list[list[np.ndarray]] = [[] for _ in range(nq)]
        self.pool_scores: list[list[np.ndarray]] = [[] for _ in range(nq)]
        self.pool_size = np.zeros(nq, dtype=np.int64)
        self.block_rows = block_rows
        # float16 -> float32 (-> bfloat16) in cache-sized pieces, multiplied while still in cache: memory
        # traffic is the float16 bytes alone
        self.piece16 = torch.empty(PIECE_ROWS, dim, dtype=torch.float16)
        self.piece32 = torch.empty(PIECE_ROWS, dim)
        self.pieceb = torch.empty(BF16_PIECE_ROWS, dim, dtype=torch.bfloat16)
        self.out32 = torch.empty(block_rows, nq)
        self.outb = torch.empty(nq, block_rows, dtype=torch.bfloat16)

    def block(self, start: int, half: torch.Tensor, skip: np.ndarray) -> None:
        rows = None  # all of the block
        if self.bf16:
            keep = self._bf16_keep(half, torch.from_numpy(skip))
            need = keep.any(dim=0).nonzero().squeeze(1)
            if len(need) <= FALLBACK_SHARE * len(half):
                rows = need
            self.bf16 = rows is not None
        scores = self._fp32(half, rows)
        if rows is None:
            rows = torch.arange(len(half))
            if self.bf16_allowed:  # would the next block gain from the bfloat16 pass?
                self.bf16 = self._upper(scores).ge(self._lower()).any(dim=0).float().mean() <= FALLBACK_SHARE
        self._add(start, rows.numpy(), scores, skip)

    def _lower(self) -> torch.Tensor:
        return torch.from_numpy(self.lower.astype(np.float32))[:, None]

    def _upper(self, a: torch.Tensor) -> torch.Tensor:
        return a + BF16_U1 * a.abs() + self.slack

    def _bf16_keep(self, half: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """(Q, B) mask of the rows whose bfloat16 score leaves them in reach of each query's lower bound."""
        b = len(half)
        out = self.outb[:, :b]
        for p in range(0, b, BF16_PIECE_ROWS):
            m = min(BF16_PIECE_ROWS, b - p)
            x = self.piece32[:m]
            x.copy_(half[p : p + m])  # float16 -> bfloat16 goes through float32: torch's direct cast is slow
            self.pieceb[:m].copy_(x)
            out[:, p : p + m] = torch.mm(self.qb, self.pieceb[:m].T)
        a = out.float()
        if skip.any():
            a[:, skip] = -np.inf
        if b >= self.k > 0:
            ak = torch.topk(a, self.k, dim=1, sorted=False).values.min(dim=1).values.double().numpy()
            self.lower = np.maximum(self.lower, ak - BF16_U1 * np.abs(ak) - self.slack[:, 0].double().numpy())
        keep = self._upper(a).ge(self._lower())
        keep[:, skip] = False
        return keep

    def _fp32(self, half: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
        """(Q, R) float32 scores of the block's rows ``rows`` (all when None)."""
        count = len(half) if rows is None else len(rows)
        out = self.out32[:count]
        for p in range(0, count, PIECE_ROWS):
            m = min(PIECE_ROWS, count - p)
            x = self.piece32[:m]
            if rows is None:
                x.copy_(half[p : p + m])
            else:
                x.copy_(torch.index_select(half, 0, rows[p : p + m], out=self.piece16[:m]))
            torch.mm(x, self.qt, out=out[p : p + m])
        return out.T.contiguous()

    def _add(self, start: int, rows: np.ndarray, scores: torch.Tensor, skip: np.ndarray) -> None:
        """Pool the rows whose float32 score is within reach of the lower bound, after raising the bound."""
        sk = skip[rows]
        if sk.any():
            scores[:, torch.from_numpy(sk)] = -np.inf
        if len(rows) >= self.k > 0:
            kth = torch.topk(scores, self.k, dim=1, sorted=False).values.min(dim=1).values.double().numpy()
            self.lower = np.maximum(self.lower, kth - self.b32)
        s = scores.numpy()
        qi, ri = np.nonzero((s >= (self.lower - self.b32)[:, None]) & (s > -np.inf))
        bounds = np.searchsorted(qi, np.arange(len(s) + 1))
        for j in range(len(s)):
            sel = ri[bounds[j] : bounds[j + 1]]
            if len(sel):
                self.pool_rows[j].append(rows[sel] + start)
                self.pool_scores[j].append(s[j, sel])
                self.pool_size[j] += len(sel)
            if len(sel):  # the pool's k-th best raises the bound for the blocks to come
                self._prune(j)

    def _prune(self, j: int) -> None:
        """Raise query j's bound by its pool's k-th best and drop the rows that can no longer reach it."""
        if not self.pool_rows[j] or self.pool_size[j] <= self.k:
            return
        r, v = np.concatenate(self.pool_rows[j]), np.concatenate(self.pool_scores[j])
        kth = float(np.partition(v, len(v) - self.k)[len(v) - self.k])
        self.lower[j] = max(self.lower[j], kth - self.b32)
        keep = v >= self.lower[j] - self.b32
        self.pool_rows[j], self.pool_scores[j], self.pool_size[j] = [r[keep]], [v[keep]], int(keep.sum())

    def candidates(self) -> list[np.ndarray]:
        """Per query, the pooled rows: a superset of its exact top k."""
        out = []
        for j in range(len(self.pool_rows)):
            self._prune(j)
            out.append(np.concatenate(self.pool_rows[j]) if self.pool_rows[j] else np.empty(0, np.int64))
        return out


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
