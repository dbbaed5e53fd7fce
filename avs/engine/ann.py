"""Approximate search for interactive use: a FAISS index beside each index file (``INDEX.faiss``), asked for a
few thousand candidates, which are then scored exactly (float64, as :mod:`avs.engine.search` does) and ranked by
score, ties by shot id descending. The scores of what comes back are exact; what may be missed is a shot FAISS
did not propose. Submission runs stay exact: ``avs search`` uses this only with ``--ann``.

The FAISS index is an inverted file over the index rows (``IVF<nlist>,SQfp16``: float16 rows, the index's own
precision, so no accuracy is lost to compression; inner product), ``nlist`` ≈ √N lists, trained on 40 rows a list.
A query visits ``nprobe`` lists. Needs the ``ann`` extra (``pip install 'avs[ann]'``, faiss-cpu).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from avs.engine.index import Index, open_index
from avs.engine.search import Hits, best_k, exact_scores
from avs.errors import InputError
from avs.formats.fileio import atomic_open, check_writable

TRAIN_PER_LIST = 40  # training rows per list: FAISS warns below 39
DEFAULT_NPROBE = 32
DEFAULT_CANDIDATES = 4000


def import_faiss():
    try:
        import faiss
    except ImportError:
        raise InputError(None, "approximate search needs FAISS: pip install 'avs[ann]'") from None
    return faiss


def ann_path(index_path: str | os.PathLike) -> Path:
    p = Path(index_path)
    return p.with_name(p.name + ".faiss")


def default_nlist(n: int) -> int:
    return max(1, min(n // TRAIN_PER_LIST, int(math.sqrt(n))))


def build_ann(
    index_path: str | os.PathLike,
    nlist: int | None = None,
    force: bool = False,
    seed: int = 0,
    block_rows: int = 65536,
) -> Path:
    """Write the FAISS index of the index file ``index_path`` beside it (``INDEX.faiss``)."""
    faiss = import_faiss()
    index = open_index(index_path)
    out = check_writable(ann_path(index_path), force)
    n = len(index)
    nlist = nlist or default_nlist(n)
    if not 1 <= nlist <= n:
        raise InputError(index.path, f"--nlist {nlist}: give 1 to {n} (its shots)")
    quantizer = faiss.IndexFlatIP(index.dim)
    ivf = faiss.IndexIVFScalarQuantizer(
        quantizer, index.dim, nlist, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
    )
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, size=min(n, nlist * TRAIN_PER_LIST), replace=False))
    ivf.train(np.ascontiguousarray(index.embeddings[sample], dtype=np.float32))
    for start in range(0, n, block_rows):
        ivf.add(np.ascontiguousarray(index.embeddings[start : start + block_rows], dtype=np.float32))
    with atomic_open(out, "wb", force=force) as f:
        f.write(faiss.serialize_index(ivf).tobytes())
    return out


def build_ann_all(path: str | os.PathLike, nlist: int | None = None, force: bool = False) -> list[Path]:
    """:func:`build_ann` of an index file, or of every shard of a sharded index's manifest."""
    from avs.engine.shards import is_manifest, open_sharded

    files = [s.path for s in open_sharded(path).shards] if is_manifest(path) else [path]
    return [build_ann(f, nlist=nlist, force=force) for f in files]


class AnnIndex:
    """The FAISS index of one index file, loaded, with the index it proposes rows of."""

    def __init__(self, index: Index, nprobe: int = DEFAULT_NPROBE):
        faiss = import_faiss()
        path = ann_path(index.path)
        if not path.is_file():
            raise InputError(index.path, f"no approximate index beside it ({path.name}): build it with avs index-ann")
        try:
            ivf = faiss.deserialize_index(np.fromfile(path, dtype=np.uint8))
        except RuntimeError as e:
            raise InputError(path, f"not a FAISS index ({str(e).splitlines()[0][:120]})") from None
        if ivf.ntotal != len(index) or ivf.d != index.dim:
            raise InputError(path, f"holds {ivf.ntotal} rows of {ivf.d} dims, its index {len(index)} of {index.dim}")
        faiss.extract_index_ivf(ivf).nprobe = nprobe
        self.index, self.ivf = index, ivf
        mapped = index.memmap()  # candidates read from the page cache, not through HDF5's selection machinery
        self.rows = mapped if mapped is not None else index.embeddings

    def search(self, queries: np.ndarray, k: int, candidates: int, exclude: Sequence[str] = ()) -> list[Hits]:
        """Per query, the exact top ``k`` of FAISS's ``candidates`` best rows."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        _, rows = self.ivf.search(queries, max(k, candidates))
        skip = set(exclude)
        ids = self.index.ids
        out = []
        for j, cand in enumerate(rows):
            cand = np.unique(cand[cand >= 0])
            cand = np.array([r for r in cand if ids[r] not in skip], dtype=np.int64) if skip else cand
            block = self.rows[cand] if len(cand) else np.empty((0, self.index.dim), np.float16)
            exact = exact_scores(block, queries[j : j + 1])[:, 0]
            out.append(best_k([ids[r] for r in cand], exact, k))
        return out
