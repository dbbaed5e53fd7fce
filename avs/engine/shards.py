"""Sharded indexes: one index split over several files, searched as one.

A sharded index is a small JSON manifest (``OUT``) naming its shard files (ordinary indexes, built by
:func:`avs.engine.index.build_index`, beside it or anywhere, paths relative to the manifest)::

    {"format": "avs-index-shards", "format_version": 1, "shards": ["v3c1.laff.shard1of4.h5", ...]}

Shards come from splitting one store into row ranges (:func:`build_sharded_index`) or from indexes built
independently, of other stores, and gathered later (:func:`write_manifest`). Every shard must come from the same
model; no shot may be in two shards.

Search runs per shard and merges: each shard's exact top k (float64 scores, which do not depend on what else is
scored) gathered and ordered by score, ties by shot id descending — the same ranking, to the last bit, as one
index of all the shots would give (tested).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from avs.engine.executor import Executor
from avs.engine.index import Index, build_index, open_index
from avs.engine.search import Hits, best_k, search
from avs.errors import InputError, first_few, first_line
from avs.formats.fileio import atomic_write, check_writable
from avs.formats.store import open_store
from avs.models import LoadedModel

MANIFEST_FORMAT = "avs-index-shards"
MANIFEST_VERSION = 1


@dataclass
class ShardedIndex:
    """The shards of a manifest, opened; it answers what a Searcher asks of an index."""

    path: Path
    shards: list[Index]
    _ids: list[str] | None = field(default=None, repr=False)

    @property
    def ids(self) -> list[str]:
        if self._ids is None:
            self._ids = [i for s in self.shards for i in s.ids]
        return self._ids

    def __len__(self) -> int:
        return sum(len(s) for s in self.shards)

    def __getattr__(self, name: str):
        # what every shard shares (spaces, space_size, space_weights, dim, model_fingerprint, model_name)
        if name in ("spaces", "space_size", "space_weights", "dim", "model_fingerprint", "model_name"):
            return getattr(self.shards[0], name)
        raise AttributeError(name)

    @property
    def collection_name(self) -> str:
        return "+".join(dict.fromkeys(s.collection_name for s in self.shards))

    def check_model(self, loaded: LoadedModel) -> None:
        for s in self.shards:
            s.check_model(loaded)

    def check_store(self, store: str | os.PathLike) -> None:
        with open_store(store) as st:
            fingerprint = st.fingerprint
        if fingerprint not in {s.collection_fingerprint for s in self.shards}:
            raise InputError(store, f"is not a collection any shard of {self.path} was built from")


def is_manifest(path: str | os.PathLike) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(64).lstrip().startswith(b"{")
    except OSError:
        return False


def open_searchable(path: str | os.PathLike) -> Index | ShardedIndex:
    """An index file or a shard manifest, whichever ``path`` is."""
    return open_sharded(path) if is_manifest(path) else open_index(path)


def open_sharded(path: str | os.PathLike) -> ShardedIndex:
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise InputError(p, f"not a shard manifest ({first_line(e)})") from None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise InputError(p, f"not a shard manifest (format is not {MANIFEST_FORMAT!r})")
    if data.get("format_version") != MANIFEST_VERSION:
        raise InputError(p, f"shard manifest version {data.get('format_version')!r}, this avs reads {MANIFEST_VERSION}")
    names = data.get("shards")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise InputError(p, "'shards' is not a list of file names")
    shards = [open_index(p.parent / n) for n in names]
    _check_shards(p, shards)
    return ShardedIndex(p, shards)


def _check_shards(where: Path, shards: Sequence[Index]) -> None:
    first = shards[0]
    for s in shards[1:]:
        if s.model_fingerprint != first.model_fingerprint:
            raise InputError(
                s.path, f"built with another model than {first.path} ({s.model_name!r}): one model a manifest"
            )
        if (s.spaces, s.space_size) != (first.spaces, first.space_size) or not np.array_equal(
            s.space_weights, first.space_weights
        ):
            raise InputError(s.path, f"its spaces or space weights differ from {first.path}'s")
    seen: dict[str, int] = {}
    twice = []
    for n, s in enumerate(shards):
        for i in s.ids:
            if seen.setdefault(i, n) != n:
                twice.append(i)
    if twice:
        raise InputError(where, f"{len(twice)} shots are in two shards (first: {first_few(twice)})")


def write_manifest(out: str | os.PathLike, shards: Sequence[str | os.PathLike], force: bool = False) -> Path:
    """Gather index files into the sharded index ``out`` (a manifest beside them or above them); they are
    checked to hold together first."""
    out = check_writable(out, force, inputs=list(shards))
    opened = [open_index(s) for s in shards]
    _check_shards(out, opened)
    names = [os.path.relpath(Path(s).resolve(), out.resolve().parent) for s in shards]
    manifest = {"format": MANIFEST_FORMAT, "format_version": MANIFEST_VERSION, "shards": names}
    return atomic_write(out, json.dumps(manifest, indent=2) + "\n", force=force)


def shard_paths(out: str | os.PathLike, n: int) -> list[Path]:
    out = Path(out)  # the manifest may be OUT.json: the shards are HDF5 files all the same
    return [out.with_name(f"{out.stem}.shard{i}of{n}.h5") for i in range(1, n + 1)]


def shard_rows(total: int, n: int, align: int = 1) -> list[tuple[int, int]]:
    """``n`` contiguous row ranges of nearly equal size covering ``0..total-1``, each starting at a multiple of
    ``align``."""
    blocks = -(-total // align)
    if not 1 <= n <= blocks:
        raise ValueError(f"{n} shards of {blocks} blocks")
    bounds = [min(total, align * (blocks * i // n)) for i in range(n + 1)]
    return list(zip(bounds, bounds[1:]))


def build_sharded_index(
    model: LoadedModel | str | os.PathLike,
    collection: str | os.PathLike,
    out: str | os.PathLike,
    shards: int,
    batch_size: int = 2048,
    device: str = "cpu",
    force: bool = False,
    progress: bool = True,
    executor: Executor | None = None,
) -> Path:
    """Split the store ``collection`` into ``shards`` row ranges, index each into its own file beside ``out``
    (``OUT.shard<i>of<n>.h5``) and write ``out`` as their manifest. A shard already built by an earlier,
    interrupted run of the same command is kept (it was published whole); the others are built or resumed.

    Shards start at multiples of ``batch_size``, so every shard encodes the very batches one index of the whole
    store would: a model's float32 arithmetic depends, in its last bits, on how many rows a batch has, and the
    rows (hence the rankings) are then the same to the bit. With an ``executor`` the shards are built in its
    workers (``model`` then a model directory)."""
    out = check_writable(out, force, inputs=[collection, model.path if isinstance(model, LoadedModel) else model])
    with open_store(collection) as st:
        total = len(st)
    batches = -(-total // batch_size)
    if not 1 <= shards <= batches:
        raise InputError(
            collection,
            f"{shards} shards of its {total} shots: give 1 to {batches} (one batch of {batch_size} at least a "
            "shard; --batch-size sets it)",
        )
    paths = shard_paths(out, shards)
    todo = []
    for path, rows in zip(paths, shard_rows(total, shards, batch_size)):
        if path.exists() and not force:
            open_index(path)  # a shard a previous run finished: kept, if it is whole
            continue
        todo.append((path, rows))
    if executor is None:
        for path, rows in todo:
            build_index(model, collection, path, batch_size, device, force, progress, rows=rows)
    else:
        model_dir = model.path if isinstance(model, LoadedModel) else model
        executor.map(
            _build_shard, [(model_dir, collection, path, rows, batch_size, device, force) for path, rows in todo]
        )
    return write_manifest(out, paths, force=force)


def _build_shard(_, task) -> Path:
    model, collection, path, rows, batch_size, device, force = task
    return build_index(model, collection, path, batch_size, device, force, progress=False, rows=rows)


def _search_shard(_, task) -> list[Hits]:
    path, queries, k, exclude = task
    return search(open_index(path), queries, k=k, exclude=exclude)


def merge_hits(per_shard: Sequence[Hits], k: int) -> Hits:
    """The best ``k`` of several shards' exact rankings, in the single-index order: score descending, ties by
    shot id descending."""
    shots = [s for h in per_shard for s in h.shots]
    return best_k(shots, np.concatenate([h.scores for h in per_shard]) if per_shard else np.empty(0), k)


def search_searchable(
    index: Index | ShardedIndex,
    queries: np.ndarray,
    k: int = 1000,
    exclude: Sequence[str] = (),
    progress: bool = False,
    executor: Executor | None = None,
) -> list[Hits]:
    """:func:`avs.engine.search.search` of an index, or of every shard of a sharded one (in ``executor``'s
    workers when given), merged."""
    if isinstance(index, Index):
        return search(index, queries, k=k, exclude=exclude, progress=progress)
    if executor is not None:
        tasks = [(s.path, queries, k, list(exclude)) for s in index.shards]
        per_shard = executor.map(_search_shard, tasks)
    else:
        per_shard = [search(s, queries, k=k, exclude=exclude, progress=progress) for s in index.shards]
    return [merge_hits([hits[j] for hits in per_shard], k) for j in range(len(queries))]
