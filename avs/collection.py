"""Feature stores for shot (or video) collections, and caption datasets.

One HDF5 file per collection (layout in ``docs/collection-store.md``): ``/ids`` holds the ordered ids and
``/features/<name>`` one 2-D float16/float32 dataset per feature, rows aligned to ``/ids``; frame-level
features (LAFF-ml) are ragged, so ``/frames/<name>`` holds every video's frames one after the other in ``data``
and where each video's frames start in ``offsets``. A store is written to ``.<name>.part`` beside its final
path and renamed only after every row of every feature (and every video's frames) is in and the root
attribute ``complete`` is set, so an interrupted write never leaves a file that looks usable;
:func:`open_store` refuses any file without that flag.

Importers from RUC's BigFile, VISIONE's per-video HDF5 and numpy arrays live in ``avs.importers``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

import h5py
import numpy as np
import pandas as pd

from .errors import InputError
from .fileio import check_writable

FORMAT = "avs-collection"
FORMAT_VERSION = 1
DTYPES = ("float16", "float32")
# Chunks of whole rows, about this many bytes. Chunks are uncompressed, so point reads fetch only the
# rows asked for whatever the chunk size; sequential block reads measured 2x faster with 16 MiB chunks
# than with 4 MiB ones (bench/collection_io.py).
CHUNK_BYTES = 16 << 20
# Rows per block when streaming: about this many bytes of the widest feature at a time.
BLOCK_BYTES = 32 << 20
FEATURE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


def _pow2_rows(row_bytes: int, budget: int, cap: int | None = None) -> int:
    """Largest power of two of rows fitting ``budget`` bytes (at least 1, at most ``cap``)."""
    rows = 1 << max(0, (max(1, budget // max(1, row_bytes))).bit_length() - 1)
    return max(1, min(rows, cap)) if cap else rows


def block_rows_for(dims: Sequence[int], itemsize: int = 4) -> int:
    """Default rows per streamed block: a power of two, so blocks start on chunk boundaries."""
    return _pow2_rows(max(dims, default=1) * itemsize, BLOCK_BYTES)


def first_few(items: Sequence[str], k: int = 3) -> str:
    return ", ".join(items[:k]) + (", ..." if len(items) > k else "")


def duplicates(ids: Sequence[str]) -> list[str]:
    """Ids occurring more than once, each once, in order of their second occurrence."""
    seen: set[str] = set()
    dup: dict[str, None] = {}
    for i in ids:
        if i in seen:
            dup[i] = None
        seen.add(i)
    return list(dup)


@dataclass(frozen=True)
class FeatureSpec:
    """A feature to be written: its name in the store, width, storage dtype and provenance."""

    name: str
    dim: int
    dtype: str = "float32"
    extractor: str = ""   # model that produced the vectors; defaults to ``name``
    source: str = ""      # where the vectors came from (path), for messages and provenance


@dataclass(frozen=True)
class FrameSpec(FeatureSpec):
    """A frame-level feature to be written: ``rows`` frames in all (the store's chunking and size need the total
    up front), at most ``max_frames`` per video as the source was truncated to (0: no limit), recorded."""

    rows: int = 0
    max_frames: int = 0


class StoreWriter:
    """Streams a store to disk: declare ids and features, ``append`` row blocks per feature (and
    ``append_frames`` the frames of the next videos per frame feature), ``finish``.

    Use as a context manager; leaving the block without ``finish`` (or on an exception) removes the
    partial file. Every appended block is checked for NaN/inf after conversion to the storage dtype
    (float16 overflows to inf) unless ``allow_nonfinite``.
    """

    def __init__(self, path: str | os.PathLike, ids: Sequence[str], specs: Sequence[FeatureSpec],
                 name: str | None = None, meta: Mapping | None = None, force: bool = False,
                 allow_nonfinite: bool = False, frames: Sequence[FrameSpec] = ()):
        self.path = check_writable(path, force)
        ids = list(ids)
        if not ids:
            raise InputError(self.path, "no ids to store")
        dup = duplicates(ids)
        if dup:
            raise InputError(self.path, f"{len(dup)} duplicate ids (first: {first_few(dup)})")
        names = [s.name for s in (*specs, *frames)]
        if not specs and not frames:
            raise InputError(self.path, "no features to store")
        for s in (*specs, *frames):
            if not FEATURE_NAME.match(s.name):
                raise InputError(s.source or self.path, f"feature name {s.name!r} is not usable in a store "
                                 "(letters, digits, '_', '.', '+', '-'; not starting with a symbol)")
            if s.dtype not in DTYPES:
                raise InputError(s.source or self.path, f"storage dtype {s.dtype!r} is not one of {', '.join(DTYPES)}")
            if s.dim < 1:
                raise InputError(s.source or self.path, f"feature {s.name}: dimension {s.dim} is not positive")
        for s in frames:
            if s.rows < len(ids):
                raise InputError(s.source or self.path, f"frame feature {s.name}: {s.rows} frames for {len(ids)} "
                                 "videos (every video needs at least one)")
        if len(set(names)) != len(names):
            raise InputError(self.path, f"feature names repeat: {first_few(duplicates(names))}")
        self.ids = ids
        self.specs = {s.name: s for s in specs}
        self.frame_specs = {s.name: s for s in frames}
        self.allow_nonfinite = allow_nonfinite
        self._filled = dict.fromkeys(names, 0)
        self._frames_filled = dict.fromkeys(self.frame_specs, 0)  # frame rows written, per frame feature
        self.tmp = self.path.parent / f".{self.path.name}.part"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._f = h5py.File(self.tmp, "w")
        except OSError as e:
            raise InputError(self.path, f"cannot write here: {e.strerror or e}") from None
        try:
            self._create(name, meta)
        except BaseException:
            self.abort()
            raise

    def _create(self, name: str | None, meta: Mapping | None) -> None:
        f = self._f
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["name"] = name if name is not None else self.path.stem
        f.attrs["meta"] = json.dumps(dict(meta or {}), sort_keys=True)
        f.attrs["complete"] = 0
        f.create_dataset("ids", data=np.array(self.ids, dtype=object), dtype=h5py.string_dtype())
        group = f.create_group("features", track_order=True)
        n = len(self.ids)
        for s in self.specs.values():
            itemsize = np.dtype(s.dtype).itemsize
            ds = group.create_dataset(s.name, shape=(n, s.dim), dtype=s.dtype,
                                      chunks=(_pow2_rows(s.dim * itemsize, CHUNK_BYTES, cap=n), s.dim))
            ds.attrs["extractor"] = s.extractor or s.name
            ds.attrs["dim"] = s.dim
            ds.attrs["source"] = s.source
        frames = f.create_group("frames", track_order=True)
        for s in self.frame_specs.values():
            g = frames.create_group(s.name)
            itemsize = np.dtype(s.dtype).itemsize
            g.create_dataset("data", shape=(s.rows, s.dim), dtype=s.dtype,
                             chunks=(_pow2_rows(s.dim * itemsize, CHUNK_BYTES, cap=s.rows), s.dim))
            g.create_dataset("offsets", data=np.zeros(n + 1, dtype=np.int64))
            g.attrs["extractor"] = s.extractor or s.name
            g.attrs["dim"] = s.dim
            g.attrs["max_frames"] = s.max_frames
            g.attrs["source"] = s.source

    def append(self, name: str, block: np.ndarray) -> None:
        """Write the next ``len(block)`` rows of feature ``name``."""
        spec = self.specs[name]
        start = self._filled[name]
        if block.ndim != 2 or block.shape[1] != spec.dim:
            raise ValueError(f"feature {name}: block of shape {block.shape}, expected (k, {spec.dim})")
        stop = start + block.shape[0]
        if stop > len(self.ids):
            raise ValueError(f"feature {name}: {stop} rows appended to a store of {len(self.ids)}")
        with np.errstate(over="ignore"):  # float16 overflow is reported below, with the id
            data = np.ascontiguousarray(block, dtype=spec.dtype)
        if not self.allow_nonfinite:
            self._check_finite(spec, data, block, lambda row: f"the row of id {self.ids[start + row]}")
        self._f["features"][name].write_direct(data, dest_sel=np.s_[start:stop])
        self._filled[name] = stop

    def append_frames(self, name: str, videos: Sequence[np.ndarray]) -> None:
        """Write the frames of the next ``len(videos)`` videos of frame feature ``name``, one (k, dim) array
        (k >= 1, in frame order) per video."""
        spec = self.frame_specs[name]
        start, first = self._filled[name], self._frames_filled[name]
        stop = start + len(videos)
        if stop > len(self.ids):
            raise ValueError(f"frame feature {name}: {stop} videos appended to a store of {len(self.ids)}")
        for k, v in enumerate(videos):
            if v.ndim != 2 or v.shape[1] != spec.dim:
                raise ValueError(f"frame feature {name}: frames of shape {v.shape}, expected (k, {spec.dim})")
            if not len(v):
                raise InputError(spec.source or self.path,
                                 f"frame feature {name}: no frames for id {self.ids[start + k]}")
        counts = np.array([len(v) for v in videos], dtype=np.int64)
        ends = first + np.cumsum(counts)
        last = int(ends[-1]) if len(ends) else first
        if last > spec.rows:
            raise ValueError(f"frame feature {name}: {last} frames appended to a feature declared with {spec.rows}")
        block = np.concatenate(videos) if videos else np.empty((0, spec.dim), np.float32)
        with np.errstate(over="ignore"):
            data = np.ascontiguousarray(block, dtype=spec.dtype)
        if not self.allow_nonfinite:
            def where(row: int) -> str:
                starts = ends - counts - first  # of each video's frames in this block
                video = int(np.searchsorted(starts, row, side="right")) - 1
                return f"frame {row - int(starts[video])} of id {self.ids[start + video]}"
            self._check_finite(spec, data, block, where)
        group = self._f["frames"][name]
        if len(data):
            group["data"].write_direct(data, dest_sel=np.s_[first:last])
        group["offsets"][start + 1:stop + 1] = ends
        self._filled[name], self._frames_filled[name] = stop, last

    def _check_finite(self, spec: FeatureSpec, data: np.ndarray, original: np.ndarray,
                      where: Callable[[int], str]) -> None:
        # One cheap float32 sum finds any NaN/inf (they propagate); only then look for the row.
        if np.isfinite(data.sum(dtype=np.float32)):
            return
        bad = ~np.isfinite(data).all(axis=1)
        if not bad.any():  # the sum itself overflowed: values are finite
            return
        row = int(np.argmax(bad))
        why = "NaN/inf"
        if np.isfinite(original[row]).all():
            why = f"a value too large for {spec.dtype} (becomes inf)"
        raise InputError(spec.source or self.path,
                         f"feature {spec.name}: {why} in {where(row)} (use --allow-nonfinite to import anyway)")

    def finish(self) -> Path:
        short = {k: v for k, v in self._filled.items() if v != len(self.ids)}
        if short:
            raise ValueError(f"features not fully written: {short} of {len(self.ids)} rows")
        short = {k: f"{v} of {self.frame_specs[k].rows}" for k, v in self._frames_filled.items()
                 if v != self.frame_specs[k].rows}
        if short:
            raise ValueError(f"frame features not fully written: {short} frames")
        self._f.attrs["uuid"] = uuid.uuid4().hex  # identifies this store: an index records the store it encodes
        self._f.attrs["complete"] = 1
        self._f.close()
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._f.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)

    def __enter__(self) -> "StoreWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.tmp.exists():  # not finished, or failed
            self.abort()


def write_store(path: str | os.PathLike, ids: Sequence[str], features: Mapping[str, np.ndarray],
                meta: Mapping | None = None, name: str | None = None, dtype: str = "float32",
                extractors: Mapping[str, str] | None = None, force: bool = False,
                allow_nonfinite: bool = False, frames: Mapping[str, Sequence[np.ndarray]] | None = None,
                max_frames: int = 0) -> Path:
    """Write in-memory arrays (rows aligned to ``ids``) as a complete store; returns its path.

    ``frames``: frame-level features, name -> one (k, dim) array per id, in ``ids`` order."""
    specs, frame_specs = [], []
    for fname, arr in features.items():
        arr = np.asarray(arr)
        if arr.ndim != 2 or arr.shape[0] != len(ids):
            raise InputError(path, f"feature {fname}: shape {arr.shape} does not match {len(ids)} ids")
        specs.append(FeatureSpec(fname, arr.shape[1], dtype, (extractors or {}).get(fname, "")))
    for fname, videos in (frames or {}).items():
        if len(videos) != len(ids) or any(np.ndim(v) != 2 for v in videos) or len({v.shape[1] for v in videos}) != 1:
            raise InputError(path, f"frame feature {fname}: needs one 2-D array of one width per id ({len(ids)})")
        frame_specs.append(FrameSpec(fname, videos[0].shape[1], dtype, (extractors or {}).get(fname, ""),
                                     rows=sum(len(v) for v in videos), max_frames=max_frames))
    with StoreWriter(path, ids, specs, name=name, meta=meta, force=force, allow_nonfinite=allow_nonfinite,
                     frames=frame_specs) as w:
        for spec in specs:
            arr = np.asarray(features[spec.name])
            step = block_rows_for([spec.dim])
            for start in range(0, len(ids), step):
                w.append(spec.name, arr[start:start + step])
        for spec in frame_specs:
            w.append_frames(spec.name, [np.asarray(v) for v in frames[spec.name]])
        return w.finish()


def pad_frames(videos: Sequence[np.ndarray], dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Ragged per-video frames -> float32 ``(B, F, dim)`` zero-padded to the most frames F among them, and the
    ``(B, F)`` bool mask of real frames."""
    counts = np.array([len(v) for v in videos], dtype=np.int64)
    return _pad_flat(np.concatenate(videos) if len(videos) else np.empty((0, dim)), counts, dim)


def _pad_flat(flat: np.ndarray, counts: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    mask = np.arange(int(counts.max(initial=0)))[None, :] < counts[:, None]
    out = np.zeros((len(counts), mask.shape[1], dim), dtype=np.float32)
    out[mask] = flat  # boolean assignment fills in row-major order: video by video, frames in order
    return out, mask


def _open_h5(path: str | os.PathLike) -> h5py.File:
    p = Path(path)
    if not p.exists():
        raise InputError(p, "no such file")
    if p.is_dir():
        raise InputError(p, "is a directory")
    if not h5py.is_hdf5(p):
        raise InputError(p, "not an HDF5 file")
    try:
        f = h5py.File(p, "r")
    except OSError as e:
        raise InputError(p, f"cannot read HDF5 file ({e})") from None
    if f.attrs.get("format") != FORMAT:
        f.close()
        raise InputError(p, f"not an avs collection store (root attribute format is not {FORMAT!r})")
    return f


class FeatureStore:
    """A complete store opened for reading. Arrays come back in the stored dtype unless ``dtype`` is given."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._f = _open_h5(self.path)
        try:
            self._load()
        except BaseException:
            self._f.close()
            raise

    def _load(self) -> None:
        f, p = self._f, self.path
        version = int(f.attrs.get("format_version", 0))
        if version > FORMAT_VERSION:
            raise InputError(p, f"store format version {version} is newer than this avs reads ({FORMAT_VERSION})")
        if int(f.attrs.get("complete", 0)) != 1:
            raise InputError(p, "incomplete store (its import was interrupted or failed); import it again")
        if "ids" not in f or f["ids"].ndim != 1:
            raise InputError(p, "no 1-D /ids dataset")
        self.ids: list[str] = list(f["ids"].asstr()[()])
        self.name: str = str(f.attrs.get("name", p.stem))
        self.meta: dict = json.loads(f.attrs.get("meta", "{}"))
        self._group = f["features"]
        self.features: tuple[str, ...] = tuple(self._group)
        for n in self.features:
            ds = self._group[n]
            if ds.ndim != 2 or ds.shape[0] != len(self.ids):
                raise InputError(p, f"feature {n}: shape {ds.shape} does not match {len(self.ids)} ids")
        self.dims = {n: int(self._group[n].shape[1]) for n in self.features}
        self.fingerprint = str(f.attrs.get("uuid", ""))
        self.dtypes = {n: self._group[n].dtype for n in self.features}
        self.extractors = {n: str(self._group[n].attrs.get("extractor", n)) for n in self.features}
        self._index: dict[str, int] | None = None
        # stores written before frame-level features existed have no /frames group
        self._frame_group = f.get("frames", {})
        self.frame_features: tuple[str, ...] = tuple(self._frame_group)
        self._offsets: dict[str, np.ndarray] = {}
        for n in self.frame_features:
            g = self._frame_group[n]
            offsets = g["offsets"][()] if "offsets" in g else np.empty(0)
            if "data" not in g or g["data"].ndim != 2 or offsets.shape != (len(self.ids) + 1,) \
                    or offsets[-1] != g["data"].shape[0]:
                raise InputError(p, f"frame feature {n}: data and offsets do not describe the frames of "
                                 f"{len(self.ids)} ids")
            self._offsets[n] = offsets
        self.frame_dims = {n: int(self._frame_group[n]["data"].shape[1]) for n in self.frame_features}
        self.frame_dtypes = {n: self._frame_group[n]["data"].dtype for n in self.frame_features}
        self.frame_extractors = {n: str(self._frame_group[n].attrs.get("extractor", n)) for n in self.frame_features}
        self.max_frames = {n: int(self._frame_group[n].attrs.get("max_frames", 0)) for n in self.frame_features}

    def __len__(self) -> int:
        return len(self.ids)

    def _dataset(self, name: str) -> h5py.Dataset:
        if name not in self.dims:
            raise InputError(self.path, f"no feature {name!r} (has: {', '.join(self.features)})")
        return self._group[name]

    def rows(self, ids: Sequence[str]) -> np.ndarray:
        """Row numbers of ``ids``; unknown ids are an InputError naming the first few."""
        if self._index is None:
            self._index = {i: r for r, i in enumerate(self.ids)}
        missing = [i for i in ids if i not in self._index]
        if missing:
            raise InputError(self.path, f"{len(missing)} ids not in the store (first: {first_few(missing)})")
        return np.fromiter((self._index[i] for i in ids), dtype=np.int64, count=len(ids))

    def get(self, name: str, rows: slice | Sequence[int] | np.ndarray | None = None,
            dtype: str | np.dtype | None = None) -> np.ndarray:
        """Rows of feature ``name``: all (``None``), a slice, or row numbers in any order (repeats allowed)."""
        ds = self._dataset(name)
        if rows is None:
            rows = slice(None)
        if isinstance(rows, slice):
            start, stop, step = rows.indices(ds.shape[0])
            if step == 1:
                out = np.empty((max(0, stop - start), ds.shape[1]), dtype=ds.dtype)
                if len(out):
                    ds.read_direct(out, source_sel=np.s_[start:stop])
                return out if dtype is None else out.astype(dtype, copy=False)
            rows = np.arange(start, stop, step)
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= ds.shape[0]):
            raise IndexError(f"row numbers outside 0..{ds.shape[0] - 1}")
        # h5py point selection wants increasing unique indices: read those, then put them in order.
        uniq, inverse = np.unique(rows, return_inverse=True)
        out = ds[uniq] if uniq.size else np.empty((0, ds.shape[1]), ds.dtype)
        out = out[inverse.reshape(-1)]
        return out if dtype is None else out.astype(dtype, copy=False)

    def frames(self, name: str, rows: slice | Sequence[int] | np.ndarray | None = None,
               ) -> tuple[np.ndarray, np.ndarray]:
        """Frames of frame feature ``name`` for rows (all, a slice, or row numbers in any order, repeats
        allowed): float32 ``(B, F, dim)`` zero-padded to the most frames F among them, and the ``(B, F)`` bool
        mask of real frames."""
        if name not in self.frame_dims:
            raise InputError(self.path, f"no frame feature {name!r} (has: {', '.join(self.frame_features) or 'none'})")
        ds, offsets = self._frame_group[name]["data"], self._offsets[name]
        if rows is None or isinstance(rows, slice):
            rows = np.arange(len(self.ids))[slice(None) if rows is None else rows]
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self.ids)):
            raise IndexError(f"row numbers outside 0..{len(self.ids) - 1}")
        uniq, inverse = np.unique(rows, return_inverse=True)
        starts, stops = offsets[uniq], offsets[uniq + 1]
        if not uniq.size:
            flat = np.empty((0, ds.shape[1]), ds.dtype)
        elif uniq[-1] - uniq[0] == len(uniq) - 1:  # consecutive videos: one contiguous read
            flat = ds[starts[0]:stops[-1]]
        else:  # increasing, non-overlapping ranges: one h5py selection
            flat = ds[np.concatenate([np.arange(a, b) for a, b in zip(starts, stops)])]
        padded, mask = _pad_flat(flat, stops - starts, ds.shape[1])
        inverse = inverse.reshape(-1)
        return padded[inverse], mask[inverse]

    def iter_blocks(self, names: str | Sequence[str], block_rows: int | None = None,
                    dtype: str | np.dtype | None = None, reuse: bool = False,
                    ) -> Iterator[tuple[slice, np.ndarray | dict[str, np.ndarray]]]:
        """Sequential row blocks: ``(rows, array)`` for one feature name, ``(rows, {name: array})`` for a list.

        With ``reuse`` (and no ``dtype``) every block is read into the same buffers, overwritten by the next
        block: copy what you keep. It saves the page faults of fresh arrays, worth ~2x in read throughput.
        """
        single = isinstance(names, str)
        wanted = [names] if single else list(names)
        datasets = {n: self._dataset(n) for n in wanted}
        step = block_rows or block_rows_for([self.dims[n] for n in wanted])
        buffers = {n: np.empty((min(step, len(self.ids)), self.dims[n]), self.dtypes[n])
                   for n in wanted} if reuse and dtype is None else None
        for start in range(0, len(self.ids), step):
            sl = slice(start, min(start + step, len(self.ids)))
            if buffers is None:
                arrays = {n: self.get(n, sl, dtype) for n in wanted}
            else:
                arrays = {n: buffers[n][:sl.stop - start] for n in wanted}
                for n in wanted:
                    datasets[n].read_direct(arrays[n], source_sel=np.s_[sl])
            yield sl, arrays[names] if single else arrays

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "FeatureStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_store(path: str | os.PathLike) -> FeatureStore:
    return FeatureStore(path)


def info(path: str | os.PathLike) -> dict:
    """What a store holds: name, row count, file size, meta and one entry per feature and frame feature."""
    with open_store(path) as s:
        feats = []
        for n in s.features:
            ds = s._group[n]
            feats.append({"feature": n, "dim": s.dims[n], "dtype": str(s.dtypes[n]),
                          "extractor": s.extractors[n], "chunk_rows": ds.chunks[0] if ds.chunks else None,
                          "bytes": len(s) * s.dims[n] * s.dtypes[n].itemsize})
        frames = []
        for n in s.frame_features:
            ds = s._frame_group[n]["data"]
            frames.append({"feature": n, "dim": s.frame_dims[n], "dtype": str(s.frame_dtypes[n]),
                           "extractor": s.frame_extractors[n], "frames": ds.shape[0], "max_frames": s.max_frames[n],
                           "chunk_rows": ds.chunks[0] if ds.chunks else None, "bytes": ds.size * ds.dtype.itemsize})
        return {"path": str(s.path), "name": s.name, "rows": len(s), "size_bytes": s.path.stat().st_size,
                "first_id": s.ids[0] if s.ids else None, "last_id": s.ids[-1] if s.ids else None,
                "meta": s.meta, "features": feats, "frames": frames}


def check(path: str | os.PathLike, block_rows: int | None = None) -> list[str]:
    """Problems found in a store, one sentence each (empty list = none).

    Reports a missing ``complete`` flag, duplicate ids, features whose shape or dtype does not fit, frame
    features whose offsets do not fit their data or leave a video without frames, rows (frames) holding NaN/inf
    and all-zero rows (frames). A file that is not a store at all is an InputError.
    """
    problems: list[str] = []
    with _open_h5(path) as f:
        if int(f.attrs.get("complete", 0)) != 1:
            problems.append("incomplete: the root attribute complete is not 1 (an import was interrupted or failed)")
        if "ids" not in f or f["ids"].ndim != 1:
            return problems + ["no 1-D /ids dataset"]
        ids = list(f["ids"].asstr()[()])
        dup = duplicates(ids)
        if dup:
            problems.append(f"ids: {len(dup)} duplicate ids (first: {first_few(dup)})")
        group, frames = f.get("features"), f.get("frames")
        if not isinstance(frames, h5py.Group):
            frames = {}
        if not isinstance(group, h5py.Group) or not (len(group) or len(frames)):
            return problems + ["no features under /features"]
        for n, g in frames.items():
            problems += _check_frames(n, g, ids, block_rows)
        for n, ds in group.items():
            if not isinstance(ds, h5py.Dataset) or ds.ndim != 2:
                problems.append(f"feature {n}: not a 2-D dataset")
                continue
            if ds.shape[0] != len(ids):
                problems.append(f"feature {n}: {ds.shape[0]} rows but {len(ids)} ids")
            if int(ds.attrs.get("dim", ds.shape[1])) != ds.shape[1]:
                problems.append(f"feature {n}: attribute dim={int(ds.attrs['dim'])} but {ds.shape[1]} columns")
            if ds.dtype.name not in DTYPES:
                problems.append(f"feature {n}: dtype {ds.dtype} (expected one of {', '.join(DTYPES)})")
                if ds.dtype.kind != "f":
                    continue
            n_rows = min(ds.shape[0], len(ids))
            problems += _scan_rows(f"feature {n}", "rows", ds, n_rows, ids.__getitem__,
                                   block_rows or block_rows_for([ds.shape[1]], ds.dtype.itemsize))
    return problems


def _check_frames(name: str, g, ids: Sequence[str], block_rows: int | None) -> list[str]:
    what = f"frame feature {name}"
    if not isinstance(g, h5py.Group) or not isinstance(g.get("data"), h5py.Dataset) \
            or not isinstance(g.get("offsets"), h5py.Dataset):
        return [f"{what}: not a group with datasets data and offsets"]
    ds, offsets = g["data"], g["offsets"][()]
    if ds.ndim != 2:
        return [f"{what}: data is not 2-D"]
    problems = []
    if int(g.attrs.get("dim", ds.shape[1])) != ds.shape[1]:
        problems.append(f"{what}: attribute dim={int(g.attrs['dim'])} but {ds.shape[1]} columns")
    if ds.dtype.name not in DTYPES:
        problems.append(f"{what}: dtype {ds.dtype} (expected one of {', '.join(DTYPES)})")
        if ds.dtype.kind != "f":
            return problems
    if offsets.shape != (len(ids) + 1,) or offsets[0] != 0 or offsets[-1] != ds.shape[0] \
            or np.any(np.diff(offsets) < 0):
        return problems + [f"{what}: offsets are not {len(ids) + 1} non-decreasing row numbers from 0 to "
                           f"{ds.shape[0]}"]
    empty = np.flatnonzero(np.diff(offsets) == 0)
    if empty.size:
        problems.append(f"{what}: {empty.size} ids without frames (first: id {ids[int(empty[0])]})")
    def id_of(row: int) -> str:
        return ids[int(np.searchsorted(offsets, row, side="right")) - 1]

    step = block_rows or block_rows_for([ds.shape[1]], ds.dtype.itemsize)
    return problems + _scan_rows(what, "frames", ds, ds.shape[0], id_of, step)


def _scan_rows(what: str, unit: str, ds: h5py.Dataset, n: int, id_of: Callable[[int], str], step: int) -> list[str]:
    nonfinite = zero = 0
    first_nonfinite = first_zero = None
    for start in range(0, n, step):
        block = ds[start:min(start + step, n)]
        bad = ~np.isfinite(block).all(axis=1)
        empty = ~block.any(axis=1)
        if bad.any():
            nonfinite += int(bad.sum())
            first_nonfinite = first_nonfinite or id_of(start + int(np.argmax(bad)))
        if empty.any():
            zero += int(empty.sum())
            first_zero = first_zero or id_of(start + int(np.argmax(empty)))
    out = []
    if nonfinite:
        out.append(f"{what}: {nonfinite} {unit} with NaN/inf (first: id {first_nonfinite})")
    if zero:
        out.append(f"{what}: {zero} all-zero {unit} (first: id {first_zero})")
    return out


# ----------------------------------------------------------------------------------------------------
# Caption datasets (MSR-VTT / MSVD / TGIF / VATEX style, RUC layout; laff-method.md §1.2)

def read_captions(path: str | os.PathLike) -> pd.DataFrame:
    """``<videoid>#<k> <text>`` lines -> DataFrame (caption_id, video_id, text), file order.

    The id ends at the first whitespace; the video id is the part before the first ``#``. Empty captions
    are kept (text ""); blank lines are skipped. A line without ``#`` in its id, or a repeated caption id,
    is an InputError naming the line.
    """
    p = Path(path)
    rows: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    try:
        with open(p, encoding="utf-8-sig") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                cap_id, text = _split_caption(line)
                video, sep, _ = cap_id.partition("#")
                if not sep or not video:
                    raise InputError(p, f"caption id {cap_id!r} is not <videoid>#<k>", line=lineno)
                if cap_id in seen:
                    raise InputError(p, f"caption id {cap_id} repeats", line=lineno)
                seen.add(cap_id)
                rows.append((cap_id, video, text))
    except FileNotFoundError:
        raise InputError(p, "no such file") from None
    except UnicodeDecodeError as e:
        raise InputError(p, f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    return pd.DataFrame(rows, columns=["caption_id", "video_id", "text"])


def _split_caption(line: str) -> tuple[str, str]:
    parts = line.strip().split(None, 1)
    return parts[0], (parts[1].strip() if len(parts) > 1 else "")


def read_id_list(path: str | os.PathLike) -> list[str]:
    """One id per line (RUC ``VideoSets/<collection>.txt``, ``--ids`` files); whitespace-separated also accepted."""
    p = Path(path)
    try:
        ids = p.read_text(encoding="utf-8").split()
    except FileNotFoundError:
        raise InputError(p, "no such file") from None
    except UnicodeDecodeError as e:
        raise InputError(p, f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    dup = duplicates(ids)
    if dup:
        raise InputError(p, f"{len(dup)} duplicate ids (first: {first_few(dup)})")
    return ids


@dataclass
class CaptionDataset:
    """Captions, the video list and the video (and frame) features of one caption collection (e.g. ``msvdtrain``)."""

    name: str
    captions: pd.DataFrame            # caption_id, video_id, text
    videos: list[str]
    features: tuple[str, ...]
    _store: FeatureStore | None = None
    _bigfiles: dict | None = None
    frame_features: tuple[str, ...] = ()
    _frame_bigfiles: dict | None = None

    def vectors(self, feature: str, video_ids: Sequence[str] | None = None) -> np.ndarray:
        """float32 rows of ``feature`` for ``video_ids`` (default: the video list), in that order."""
        video_ids = self.videos if video_ids is None else list(video_ids)
        if self._store is not None:
            return self._store.get(feature, self._store.rows(video_ids), dtype=np.float32)
        if feature not in (self._bigfiles or {}):
            raise InputError(None, f"feature {feature!r} not loaded (have: {', '.join(self.features)})")
        return self._bigfiles[feature].vectors(video_ids)

    def frame_dim(self, feature: str) -> int:
        if self._store is not None and feature in self._store.frame_dims:
            return self._store.frame_dims[feature]
        if feature not in (self._frame_bigfiles or {}):
            raise InputError(None, f"frame feature {feature!r} not loaded (have: {', '.join(self.frame_features)})")
        return self._frame_bigfiles[feature].dim

    def frames(self, feature: str, video_ids: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Frames of ``feature`` for ``video_ids`` (default: the video list), in that order: float32
        ``(B, F, dim)`` zero-padded to the most frames among them, and the ``(B, F)`` mask of real frames."""
        video_ids = self.videos if video_ids is None else list(video_ids)
        if self._store is not None:
            return self._store.frames(feature, self._store.rows(video_ids))
        self.frame_dim(feature)  # refuses an unknown feature
        return self._frame_bigfiles[feature].frames(video_ids)


def open_caption_dataset(root: str | os.PathLike, collection: str, features: Sequence[str] = (),
                         store: str | os.PathLike | None = None, frame_features: Sequence[str] = (),
                         max_frames: int = 50) -> CaptionDataset:
    """Read ``<root>/<collection>/`` in RUC's layout.

    Captions come from ``TextData/<collection>.caption.txt``, the videos from ``VideoSets/<collection>.txt``,
    features either from BigFile folders ``FeatureData/<feature>/`` (``features``) and frame-level BigFile
    folders ``FeatureData/frame/<feature>/`` (``frame_features``, at most ``max_frames`` per video), or from a
    store (``store``, all its features and frame features). Every caption's video must be in the list and
    every listed video must have every feature.
    """
    base = Path(root) / collection
    cap_path = base / "TextData" / f"{collection}.caption.txt"
    list_path = base / "VideoSets" / f"{collection}.txt"
    captions = read_captions(cap_path)
    videos = read_id_list(list_path)
    known = set(videos)
    stray = [v for v in dict.fromkeys(captions["video_id"]) if v not in known]
    if stray:
        raise InputError(cap_path, f"captions of {len(stray)} videos not in {list_path} (first: {first_few(stray)})")
    if store is not None:
        st = open_store(store)
        st.rows(videos)  # every video must be there
        return CaptionDataset(collection, captions, videos, st.features, _store=st, frame_features=st.frame_features)
    from .importers import read_bigfile, read_frame_bigfile  # importers build on this module

    bigfiles = {}
    for feat in features:
        bf = read_bigfile(base / "FeatureData" / feat)
        lacking = [v for v in videos if v not in bf.index]
        if lacking:
            raise InputError(bf.path, f"lacks {len(lacking)} of the {len(videos)} videos of {list_path} "
                             f"(first: {first_few(lacking)})")
        bigfiles[feat] = bf
    frame_bigfiles = {}
    for feat in frame_features:
        fb = read_frame_bigfile(base / "FeatureData" / "frame" / feat, max_frames)
        lacking = [v for v in videos if v not in fb.rows]
        if lacking:
            raise InputError(fb.path, f"has no frames for {len(lacking)} of the {len(videos)} videos of {list_path} "
                             f"(first: {first_few(lacking)})")
        frame_bigfiles[feat] = fb
    return CaptionDataset(collection, captions, videos, tuple(features), _bigfiles=bigfiles,
                          frame_features=tuple(frame_features), _frame_bigfiles=frame_bigfiles)
