"""Feature stores for shot (or video) collections.

One HDF5 file per collection (layout in ``docs/collection-store.md``): ``/ids`` holds the ordered ids and
``/features/<name>`` one 2-D float16/float32 dataset per feature, rows aligned to ``/ids``; frame-level
features (LAFF-ml) are ragged, so ``/frames/<name>`` holds every video's frames one after the other in ``data``
and where each video's frames start in ``offsets``. A store is written to ``.<name>.part`` beside its final
path and renamed only after every row of every feature (and every video's frames) is in and the root
attribute ``complete`` is set, so an interrupted write never leaves a file that looks usable;
:func:`open_store` refuses any file without that flag.

Importers from RUC's BigFile, VISIONE's per-video HDF5 and numpy arrays live in ``avs.features.importers``;
caption datasets in ``avs.features.captions``.
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

from avs.errors import InputError, duplicates, first_few
from avs.formats.fileio import (
    DestinationLock,
    check_writable,
    fsync_file,
    io_failure,
    os_problem,
    publish,
    quiet_release,
)

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


@dataclass(frozen=True)
class FeatureSpec:
    """A feature to be written: its name in the store, width, storage dtype and provenance."""

    name: str
    dim: int
    dtype: str = "float32"
    extractor: str = ""  # model that produced the vectors; defaults to ``name``
    source: str = ""  # where the vectors came from (path), for messages and provenance


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
    (float16 overflows to inf) unless ``allow_nonfinite``. The writer holds a :class:`DestinationLock` on
    ``path`` from start to end: a second writer of the same path is refused. A failed write (disk full, any
    OS error) is an InputError naming ``path``, and removes the partial file.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        ids: Sequence[str],
        specs: Sequence[FeatureSpec],
        name: str | None = None,
        meta: Mapping | None = None,
        force: bool = False,
        allow_nonfinite: bool = False,
        frames: Sequence[FrameSpec] = (),
    ):
        self.path = check_writable(path, force)
        self.force = force
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
                raise InputError(
                    s.source or self.path,
                    f"feature name {s.name!r} is not usable in a store "
                    "(letters, digits, '_', '.', '+', '-'; not starting with a symbol)",
                )
            if s.dtype not in DTYPES:
                raise InputError(s.source or self.path, f"storage dtype {s.dtype!r} is not one of {', '.join(DTYPES)}")
            if s.dim < 1:
                raise InputError(s.source or self.path, f"feature {s.name}: dimension {s.dim} is not positive")
        for s in frames:
            if s.rows < len(ids):
                raise InputError(
                    s.source or self.path,
                    f"frame feature {s.name}: {s.rows} frames for {len(ids)} videos (every video needs at least one)",
                )
        if len(set(names)) != len(names):
            raise InputError(self.path, f"feature names repeat: {first_few(duplicates(names))}")
        self.ids = ids
        self.specs = {s.name: s for s in specs}
        self.frame_specs = {s.name: s for s in frames}
        self.allow_nonfinite = allow_nonfinite
        self._filled = dict.fromkeys(names, 0)
        self._frames_filled = dict.fromkeys(self.frame_specs, 0)  # frame rows written, per frame feature
        self.tmp = self.path.parent / f".{self.path.name}.part"
        self._f = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(self.path, f"cannot write here: {os_problem(e)}") from None
        self._lock = DestinationLock(self.path).acquire()
        try:
            check_writable(self.path, force)  # again: another writer may have finished it meanwhile
            self._f = h5py.File(self.tmp, "w")
        except BaseException as e:
            self._lock.release()
            if isinstance(e, OSError):
                raise InputError(self.path, f"cannot write here: {os_problem(e)}") from None
            raise
        with self._failing_write():
            self._create(name, meta)

    @contextlib.contextmanager
    def _failing_write(self) -> Iterator[None]:
        """Any error inside removes the partial file; a failed write (disk full...) becomes an InputError."""
        try:
            yield
        except BaseException as e:
            self.abort()
            problem = io_failure(e)
            if problem is not None:
                raise InputError(self.path, f"cannot write: {problem}") from None
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
            ds = group.create_dataset(
                s.name,
                shape=(n, s.dim),
                dtype=s.dtype,
                chunks=(_pow2_rows(s.dim * itemsize, CHUNK_BYTES, cap=n), s.dim),
            )
            ds.attrs["extractor"] = s.extractor or s.name
            ds.attrs["dim"] = s.dim
            ds.attrs["source"] = s.source
        frames = f.create_group("frames", track_order=True)
        for s in self.frame_specs.values():
            g = frames.create_group(s.name)
            itemsize = np.dtype(s.dtype).itemsize
            g.create_dataset(
                "data",
                shape=(s.rows, s.dim),
                dtype=s.dtype,
                chunks=(_pow2_rows(s.dim * itemsize, CHUNK_BYTES, cap=s.rows), s.dim),
            )
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
        with self._failing_write():
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
                raise InputError(
                    spec.source or self.path, f"frame feature {name}: no frames for id {self.ids[start + k]}"
                )
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
        with self._failing_write():
            group = self._f["frames"][name]
            if len(data):
                group["data"].write_direct(data, dest_sel=np.s_[first:last])
            group["offsets"][start + 1 : stop + 1] = ends
        self._filled[name], self._frames_filled[name] = stop, last

    def _check_finite(
        self, spec: FeatureSpec, data: np.ndarray, original: np.ndarray, where: Callable[[int], str]
    ) -> None:
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
        raise InputError(
            spec.source or self.path,
            f"feature {spec.name}: {why} in {where(row)} (use --allow-nonfinite to import anyway)",
        )

    def finish(self) -> Path:
        short = {k: v for k, v in self._filled.items() if v != len(self.ids)}
        if short:
            raise ValueError(f"features not fully written: {short} of {len(self.ids)} rows")
        short = {
            k: f"{v} of {self.frame_specs[k].rows}"
            for k, v in self._frames_filled.items()
            if v != self.frame_specs[k].rows
        }
        if short:
            raise ValueError(f"frame features not fully written: {short} frames")
        with self._failing_write():
            self._f.attrs["uuid"] = uuid.uuid4().hex  # identifies this store: an index records the store it encodes
            self._f.attrs["complete"] = 1
            self._f.close()
            fsync_file(self.tmp)
            publish(self.tmp, self.path, self.force)
        self._lock.release()
        return self.path

    def abort(self) -> None:
        if self._f is not None:
            with quiet_release(), contextlib.suppress(Exception):
                try:
                    self._f.close()
                finally:
                    self._f = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)
        self._lock.release()

    def __enter__(self) -> "StoreWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.tmp.exists():  # not finished, or failed
            self.abort()
        self._lock.release()


def write_store(
    path: str | os.PathLike,
    ids: Sequence[str],
    features: Mapping[str, np.ndarray],
    meta: Mapping | None = None,
    name: str | None = None,
    dtype: str = "float32",
    extractors: Mapping[str, str] | None = None,
    force: bool = False,
    allow_nonfinite: bool = False,
    frames: Mapping[str, Sequence[np.ndarray]] | None = None,
    max_frames: int = 0,
) -> Path:
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
        frame_specs.append(
            FrameSpec(
                fname,
                videos[0].shape[1],
                dtype,
                (extractors or {}).get(fname, ""),
                rows=sum(len(v) for v in videos),
                max_frames=max_frames,
            )
        )
    with StoreWriter(
        path, ids, specs, name=name, meta=meta, force=force, allow_nonfinite=allow_nonfinite, frames=frame_specs
    ) as w:
        for spec in specs:
            arr = np.asarray(features[spec.name])
            step = block_rows_for([spec.dim])
            for start in range(0, len(ids), step):
                w.append(spec.name, arr[start : start + step])
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
        raise InputError(p, f"cannot read HDF5 file ({os_problem(e)})") from None
    try:
        with _reading(p):
            fmt = f.attrs.get("format")
    except BaseException:
        f.close()
        raise
    if fmt != FORMAT:
        f.close()
        raise InputError(p, f"not an avs collection store (root attribute format is not {FORMAT!r})")
    return f


def _int_attr(attrs, key: str, default: int) -> int | None:
    """An integer attribute (``default`` when absent), None when it holds anything else."""
    value = attrs.get(key, default)
    if isinstance(value, np.ndarray) and value.shape in ((), (1,)):
        value = value.reshape(-1)[0]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        return None
    return int(value)


def _show(value) -> str:
    text = repr(value.decode("utf-8", "replace") if isinstance(value, bytes) else value)
    return text if len(text) <= 40 else text[:37] + "..."


def _parse_meta(attrs) -> tuple[dict, str | None]:
    raw = attrs.get("meta", "{}")
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            return {}, "root attribute meta is not UTF-8 text"
    if not isinstance(raw, str):
        return {}, f"root attribute meta is not JSON text (it holds {_show(raw)})"
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as e:
        return {}, f"root attribute meta is not valid JSON ({e})"
    if not isinstance(meta, dict):
        return {}, "root attribute meta is not a JSON object"
    return meta, None


@dataclass
class _Layout:
    """What a store's root holds, as far as it is usable, and what is wrong with it."""

    problems: list[str]
    ids: list[str] | None = None  # None: no usable /ids
    meta: dict | None = None
    features: h5py.Group | None = None
    frames: h5py.Group | dict | None = None


def _layout(f: h5py.File, for_check: bool = False) -> _Layout:
    """The checks of a store's root shared by :class:`FeatureStore` (which refuses on the first problem) and
    :func:`check` (which lists them all), with the wording of each."""
    a = f.attrs
    out = _Layout([])
    version = _int_attr(a, "format_version", 0)
    if version is None:
        out.problems.append(f"root attribute format_version {_show(a['format_version'])} is not an integer")
    elif version > FORMAT_VERSION:
        out.problems.append(f"store format version {version} is newer than this avs reads ({FORMAT_VERSION})")
    if _int_attr(a, "complete", 0) != 1:
        out.problems.append(
            "incomplete: the root attribute complete is not 1 (an import was interrupted or failed)"
            if for_check
            else "incomplete store (its import was interrupted or failed); import it again"
        )
    out.meta, problem = _parse_meta(a)
    if problem:
        out.problems.append(problem)
    ids = f.get("ids")
    if not isinstance(ids, h5py.Dataset) or ids.ndim != 1:
        out.problems.append("no 1-D /ids dataset")
    elif h5py.check_string_dtype(ids.dtype) is None:
        out.problems.append(f"/ids holds {ids.dtype} values, not strings (ids are UTF-8 strings)")
    else:
        try:
            out.ids = list(ids.asstr()[()])
        except UnicodeDecodeError as e:
            out.problems.append(f"/ids: an id is not UTF-8 ({e.reason})")
    group, frames = f.get("features"), f.get("frames", {})
    if group is None:
        out.problems.append("no /features group")
    elif not isinstance(group, h5py.Group):
        out.problems.append("/features is not a group")
    else:
        out.features = group
    if not isinstance(frames, (h5py.Group, dict)):
        out.problems.append("/frames is not a group")
    else:
        out.frames = frames
    if out.features is not None and out.frames is not None and not (len(out.features) or len(out.frames)):
        out.problems.append("no features under /features")
    return out


def _feature_problem(name: str, ds, n_ids: int, for_check: bool = False) -> str | None:
    """What makes ``/features/<name>`` unreadable as a feature of ``n_ids`` rows, if anything."""
    if not isinstance(ds, h5py.Dataset) or ds.ndim != 2:
        return f"feature {name}: not a 2-D dataset"
    if ds.dtype.kind not in "fiu":
        return f"feature {name}: dtype {ds.dtype} (expected one of {', '.join(DTYPES)})"
    if ds.shape[0] != n_ids:
        return (
            f"feature {name}: {ds.shape[0]} rows but {n_ids} ids"
            if for_check
            else f"feature {name}: shape {ds.shape} does not match {n_ids} ids"
        )
    return None


def _frame_problem(name: str, g, n_ids: int) -> tuple[str | None, np.ndarray | None]:
    """What makes ``/frames/<name>`` unreadable as the frames of ``n_ids`` videos, if anything; its offsets."""
    what = f"frame feature {name}"
    if (
        not isinstance(g, h5py.Group)
        or not isinstance(g.get("data"), h5py.Dataset)
        or not isinstance(g.get("offsets"), h5py.Dataset)
    ):
        return f"{what}: not a group with datasets data and offsets", None
    ds, off = g["data"], g["offsets"]
    if ds.ndim != 2:
        return f"{what}: data is not 2-D", None
    if ds.dtype.kind not in "fiu":
        return f"{what}: dtype {ds.dtype} (expected one of {', '.join(DTYPES)})", None
    offsets = off[()] if off.ndim == 1 and off.dtype.kind in "iu" else None
    if (
        offsets is None
        or offsets.shape != (n_ids + 1,)
        or offsets[0] != 0
        or offsets[-1] != ds.shape[0]
        or np.any(np.diff(offsets) < 0)
    ):
        return (f"{what}: offsets are not {n_ids + 1} non-decreasing row numbers from 0 to {ds.shape[0]}"), None
    if _int_attr(g.attrs, "max_frames", 0) is None:
        return f"{what}: attribute max_frames {_show(g.attrs['max_frames'])} is not an integer", None
    return None, offsets.astype(np.int64, copy=False)


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[None]:
    """HDF5 failures inside (a damaged file, an unreadable object) become one InputError naming the file."""
    try:
        yield
    except InputError:
        raise
    except (OSError, KeyError, TypeError, ValueError, RuntimeError) as e:
        raise InputError(
            path, f"damaged or unreadable store ({os_problem(e) if isinstance(e, OSError) else e})"
        ) from None


class FeatureStore:
    """A complete store opened for reading. Arrays come back in the stored dtype unless ``dtype`` is given."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._f = _open_h5(self.path)
        try:
            with _reading(self.path):
                self._load()
        except BaseException:
            self._f.close()
            raise

    def _load(self) -> None:
        """Refuses (InputError, first problem) whatever :func:`check` reports as a problem of the layout."""
        f, p = self._f, self.path
        layout = _layout(f)
        if layout.problems:
            raise InputError(p, layout.problems[0])
        self.ids: list[str] = layout.ids
        self.name: str = str(f.attrs.get("name", p.stem))
        self.meta: dict = layout.meta
        self._group = layout.features
        self.features: tuple[str, ...] = tuple(self._group)
        for n in self.features:
            problem = _feature_problem(n, self._group[n], len(self.ids))
            if problem:
                raise InputError(p, problem)
        self.dims = {n: int(self._group[n].shape[1]) for n in self.features}
        self.fingerprint = str(f.attrs.get("uuid", ""))
        self.dtypes = {n: self._group[n].dtype for n in self.features}
        self.extractors = {n: str(self._group[n].attrs.get("extractor", n)) for n in self.features}
        self._index: dict[str, int] | None = None
        # stores written before frame-level features existed have no /frames group
        self._frame_group = layout.frames
        self.frame_features: tuple[str, ...] = tuple(self._frame_group)
        self._offsets: dict[str, np.ndarray] = {}
        for n in self.frame_features:
            problem, offsets = _frame_problem(n, self._frame_group[n], len(self.ids))
            if problem:
                raise InputError(p, problem)
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

    def get(
        self, name: str, rows: slice | Sequence[int] | np.ndarray | None = None, dtype: str | np.dtype | None = None
    ) -> np.ndarray:
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

    def frames(
        self,
        name: str,
        rows: slice | Sequence[int] | np.ndarray | None = None,
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
            flat = ds[starts[0] : stops[-1]]
        else:  # increasing, non-overlapping ranges: one h5py selection
            flat = ds[np.concatenate([np.arange(a, b) for a, b in zip(starts, stops)])]
        padded, mask = _pad_flat(flat, stops - starts, ds.shape[1])
        inverse = inverse.reshape(-1)
        return padded[inverse], mask[inverse]

    def iter_blocks(
        self,
        names: str | Sequence[str],
        block_rows: int | None = None,
        dtype: str | np.dtype | None = None,
        reuse: bool = False,
    ) -> Iterator[tuple[slice, np.ndarray | dict[str, np.ndarray]]]:
        """Sequential row blocks: ``(rows, array)`` for one feature name, ``(rows, {name: array})`` for a list.

        With ``reuse`` (and no ``dtype``) every block is read into the same buffers, overwritten by the next
        block: copy what you keep. It saves the page faults of fresh arrays, worth ~2x in read throughput.
        """
        single = isinstance(names, str)
        wanted = [names] if single else list(names)
        datasets = {n: self._dataset(n) for n in wanted}
        step = block_rows or block_rows_for([self.dims[n] for n in wanted])
        buffers = (
            {n: np.empty((min(step, len(self.ids)), self.dims[n]), self.dtypes[n]) for n in wanted}
            if reuse and dtype is None
            else None
        )
        for start in range(0, len(self.ids), step):
            sl = slice(start, min(start + step, len(self.ids)))
            if buffers is None:
                arrays = {n: self.get(n, sl, dtype) for n in wanted}
            else:
                arrays = {n: buffers[n][: sl.stop - start] for n in wanted}
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
            feats.append(
                {
                    "feature": n,
                    "dim": s.dims[n],
                    "dtype": str(s.dtypes[n]),
                    "extractor": s.extractors[n],
                    "chunk_rows": ds.chunks[0] if ds.chunks else None,
                    "bytes": len(s) * s.dims[n] * s.dtypes[n].itemsize,
                }
            )
        frames = []
        for n in s.frame_features:
            ds = s._frame_group[n]["data"]
            frames.append(
                {
                    "feature": n,
                    "dim": s.frame_dims[n],
                    "dtype": str(s.frame_dtypes[n]),
                    "extractor": s.frame_extractors[n],
                    "frames": ds.shape[0],
                    "max_frames": s.max_frames[n],
                    "chunk_rows": ds.chunks[0] if ds.chunks else None,
                    "bytes": ds.size * ds.dtype.itemsize,
                }
            )
        return {
            "path": str(s.path),
            "name": s.name,
            "rows": len(s),
            "size_bytes": s.path.stat().st_size,
            "first_id": s.ids[0] if s.ids else None,
            "last_id": s.ids[-1] if s.ids else None,
            "meta": s.meta,
            "features": feats,
            "frames": frames,
        }


def check(path: str | os.PathLike, block_rows: int | None = None) -> list[str]:
    """Problems found in a store, one sentence each (empty list = none).

    Reports everything :func:`open_store` refuses (a missing ``complete`` flag, a bad format version or
    ``meta``, ids that are not strings, objects under /features that are not features, features whose shape
    does not fit, frame features whose offsets do not fit their data), and also duplicate ids, dtypes other
    than float16/float32, ``dim`` attributes that disagree, videos without frames, rows (frames) holding
    NaN/inf and all-zero rows (frames). A file that is not a store at all is an InputError.
    """
    p = Path(path)
    with _open_h5(p) as f, _reading(p):
        problems = _check(f, block_rows)
    if not problems:  # whatever opening refuses is a problem, even one the checks above missed
        try:
            open_store(p).close()
        except InputError as e:
            problems.append(e.problem)
    return problems


def _check(f: h5py.File, block_rows: int | None) -> list[str]:
    layout = _layout(f, for_check=True)
    problems, ids = layout.problems, layout.ids
    if ids is None:
        return problems
    dup = duplicates(ids)
    if dup:
        problems.append(f"ids: {len(dup)} duplicate ids (first: {first_few(dup)})")
    for n, g in (layout.frames or {}).items():
        problems += _check_frames(n, g, ids, block_rows)
    for n, ds in (layout.features or {}).items():
        problem = _feature_problem(n, ds, len(ids), for_check=True)
        if problem:
            problems.append(problem)
            continue
        dim = _int_attr(ds.attrs, "dim", ds.shape[1])
        if dim != ds.shape[1]:
            problems.append(
                f"feature {n}: attribute dim={_show(ds.attrs['dim']) if dim is None else dim} but {ds.shape[1]} columns"
            )
        if ds.dtype.name not in DTYPES:
            problems.append(f"feature {n}: dtype {ds.dtype} (expected one of {', '.join(DTYPES)})")
            if ds.dtype.kind != "f":
                continue
        problems += _scan_rows(
            f"feature {n}",
            "rows",
            ds,
            len(ids),
            ids.__getitem__,
            block_rows or block_rows_for([ds.shape[1]], ds.dtype.itemsize),
        )
    return problems


def _check_frames(name: str, g, ids: Sequence[str], block_rows: int | None) -> list[str]:
    what = f"frame feature {name}"
    problem, offsets = _frame_problem(name, g, len(ids))
    if problem:
        return [problem]
    ds = g["data"]
    problems = []
    dim = _int_attr(g.attrs, "dim", ds.shape[1])
    if dim != ds.shape[1]:
        problems.append(
            f"{what}: attribute dim={_show(g.attrs['dim']) if dim is None else dim} but {ds.shape[1]} columns"
        )
    if ds.dtype.name not in DTYPES:
        problems.append(f"{what}: dtype {ds.dtype} (expected one of {', '.join(DTYPES)})")
        if ds.dtype.kind != "f":
            return problems
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
        block = ds[start : min(start + step, n)]
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
