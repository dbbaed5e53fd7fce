"""Import pre-extracted features into a collection store (``avs.formats.store``).

Three sources, each read without loading it whole:

* RUC BigFile folders (``shape.txt``, ``id.txt``, ``feature.bin``; laff-method.md §1.1), memory-mapped; also
  frame-level ones (``FeatureData/frame/<name>/``, ids ``<videoid>_<frameidx>``, §1.2), grouped per video.
* VISIONE per-video HDF5 files: root datasets ``ids`` (strings) and ``data`` (rows × dim), feature name in the
  root attribute ``features_name`` (read from aimh-lab/visione ``visione/services/common/savers.py:HDF5File``).
* ``.npy`` arrays (rows × dim) with an ids file.

All features of one import are aligned by id: the store holds the ids every feature has, in natural order
(``avs.formats.shots.natural_key``), minus any excluded ones. Ids only some features have are an error unless
``drop_incomplete``; a frame-level feature "has" the videos it has frames for. Rows are streamed in blocks
through :class:`avs.formats.store.StoreWriter`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import h5py
import numpy as np
from tqdm import tqdm

from avs.errors import InputError, duplicates, first_few
from avs.formats.shots import natural_key, read_id_list
from avs.formats.store import FeatureSpec, FrameSpec, StoreWriter, block_rows_for, pad_frames

log = logging.getLogger(__name__)


@dataclass
class BigFile:
    """One RUC BigFile feature folder; ``data`` is a read-only float32 memory map (N × dim)."""

    path: Path
    ids: list[str]
    dim: int
    data: np.ndarray
    index: dict[str, int] = field(repr=False, default_factory=dict)

    def vectors(self, ids: Sequence[str]) -> np.ndarray:
        """float32 rows for ``ids`` in the given order (unlike BigFile.read, which dedups and reorders)."""
        missing = [i for i in ids if i not in self.index]
        if missing:
            raise InputError(self.path, f"{len(missing)} ids not in this BigFile (first: {first_few(missing)})")
        return np.array(self.data[[self.index[i] for i in ids]], dtype=np.float32)


def read_bigfile(folder: str | os.PathLike) -> BigFile:
    """Open and validate a BigFile folder: shape.txt "N D", N unique ids, feature.bin exactly N·D·4 bytes."""
    d = Path(folder)
    if not d.is_dir():
        raise InputError(d, "not a BigFile folder (no such directory)")
    shape_p, id_p, bin_p = d / "shape.txt", d / "id.txt", d / "feature.bin"
    for p in (shape_p, id_p, bin_p):
        if not p.is_file():
            raise InputError(p, "missing (a BigFile folder holds shape.txt, id.txt and feature.bin)")
    tokens = shape_p.read_text(encoding="ascii", errors="replace").split()
    if len(tokens) != 2 or not all(t.isdigit() for t in tokens):
        raise InputError(shape_p, f"expected one line 'N D' (two counts), got {' '.join(tokens)[:60]!r}")
    n, dim = map(int, tokens)
    if n < 1 or dim < 1:
        raise InputError(shape_p, f"shape {n} x {dim} is empty")
    ids = read_id_list(id_p, unique=True)
    if len(ids) != n:
        raise InputError(id_p, f"{len(ids)} ids but shape.txt says {n}")
    size = bin_p.stat().st_size
    expected = n * dim * 4
    if size != expected:
        hint = ""
        if size == 2 * expected:
            hint = "; that is exactly N x D float64 values, but BigFile holds float32"
        elif size < expected:
            hint = f"; truncated? {size // (dim * 4)} complete rows"
        raise InputError(bin_p, f"{size} bytes, but shape.txt says {n} x {dim} float32 = {expected} bytes{hint}")
    data = np.memmap(bin_p, dtype="<f4", mode="r", shape=(n, dim))
    return BigFile(d, ids, dim, data, {i: r for r, i in enumerate(ids)})


@dataclass
class FrameBigFile:
    """A frame-level BigFile folder grouped by video: ``rows[video]`` are the row numbers of its frames in
    ``data`` (read-only float32 memory map), by increasing frame index."""

    path: Path
    dim: int
    data: np.ndarray
    rows: dict[str, np.ndarray] = field(repr=False)

    def frames(self, video_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """float32 ``(B, F, dim)`` frames of ``video_ids`` zero-padded to the most frames among them, and the
        ``(B, F)`` mask of real frames."""
        missing = [v for v in video_ids if v not in self.rows]
        if missing:
            raise InputError(self.path, f"no frames for {len(missing)} videos (first: {first_few(missing)})")
        return pad_frames([self.data[self.rows[v]] for v in video_ids], self.dim)


def group_frames(ids: Sequence[str], max_frames: int = 50, source=None) -> dict[str, np.ndarray]:
    """Frame ids ``<videoid>_<frameidx>`` -> {video id: row numbers sorted by the integer frame index, the first
    ``max_frames`` kept (0: all)}, as the official code groups them (laff-method.md §1.2): the video id is the
    id without its last ``_`` token, so ``v1_10`` comes after ``v1_2``."""
    groups: dict[str, list[tuple[int, int]]] = {}
    for row, fid in enumerate(ids):
        video, sep, idx = fid.rpartition("_")
        if not sep or not video or not (idx.isascii() and idx.isdigit()):
            raise InputError(source, f"frame id {fid!r} is not <videoid>_<frameidx>")
        groups.setdefault(video, []).append((int(idx), row))
    return {
        v: np.array([row for _, row in sorted(frames)][: max_frames or None], dtype=np.int64)
        for v, frames in groups.items()
    }


def read_frame_bigfile(folder: str | os.PathLike, max_frames: int = 50) -> FrameBigFile:
    """Open a frame-level BigFile folder (validated as :func:`read_bigfile`) and group its frames per video."""
    bf = read_bigfile(folder)
    return FrameBigFile(bf.path, bf.dim, bf.data, group_frames(bf.ids, max_frames, bf.path / "id.txt"))


@dataclass
class Source:
    """One feature to import: its ids in source order and a reader of source rows."""

    name: str
    path: Path
    ids: list[str]
    dim: int
    read: Callable[[np.ndarray], np.ndarray]
    extractor: str = ""


def _array_reader(data: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    def read(rows: np.ndarray) -> np.ndarray:
        # Imports keep source order in the common case, so most blocks are one contiguous slice.
        if len(rows) and rows[-1] - rows[0] == len(rows) - 1 and np.all(np.diff(rows) == 1):
            return data[rows[0] : rows[-1] + 1]
        return data[rows]

    return read


def bigfile_source(folder: str | os.PathLike) -> Source:
    bf = read_bigfile(folder)
    return Source(bf.path.name, bf.path, bf.ids, bf.dim, _array_reader(bf.data))


@dataclass
class FrameSource:
    """One frame-level feature to import: the video ids it has frames for, their frame counts, and a reader of
    the frames of videos (positions in ``ids``), one (k, dim) array each."""

    name: str
    path: Path
    ids: list[str]
    dim: int
    counts: np.ndarray
    read: Callable[[np.ndarray], list[np.ndarray]]
    max_frames: int
    extractor: str = ""


def frame_bigfile_source(folder: str | os.PathLike, max_frames: int = 50) -> FrameSource:
    fb = read_frame_bigfile(folder, max_frames)
    ids = list(fb.rows)
    counts = np.array([len(r) for r in fb.rows.values()], dtype=np.int64)

    def read(positions: np.ndarray) -> list[np.ndarray]:
        return [fb.data[fb.rows[ids[k]]] for k in positions]

    return FrameSource(fb.path.name, fb.path, ids, fb.dim, counts, read, max_frames)


def npy_source(path: str | os.PathLike, ids: list[str], ids_path: Path) -> Source:
    p = Path(path)
    try:
        arr = np.load(p, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise InputError(p, "no such file") from None
    except (ValueError, OSError, EOFError) as e:
        raise InputError(p, f"not a readable .npy array ({e})") from None
    if not isinstance(arr, np.ndarray):
        raise InputError(p, "is an .npz archive, not one .npy array")
    if arr.ndim != 2:
        raise InputError(p, f"array of shape {arr.shape}; expected 2-D (rows x dim)")
    if arr.dtype.kind != "f":
        raise InputError(p, f"dtype {arr.dtype} is not a floating-point type")
    if arr.shape[0] != len(ids):
        raise InputError(p, f"{arr.shape[0]} rows but {ids_path} has {len(ids)} ids")
    return Source(p.stem, p, ids, int(arr.shape[1]), _array_reader(arr))


def visione_sources(files: Sequence[str | os.PathLike], feature: str | None = None) -> list[Source]:
    """Group VISIONE per-video files by their ``features_name`` (or all under ``feature``); one Source each."""
    groups: dict[str, list[tuple[Path, list[str], int]]] = {}
    for f in files:
        p = Path(f)
        if not p.is_file():
            raise InputError(p, "no such file")
        if not h5py.is_hdf5(p):
            raise InputError(p, "not an HDF5 file")
        with h5py.File(p, "r") as h:
            if "ids" not in h or "data" not in h:
                raise InputError(p, "not a VISIONE feature file (expected root datasets 'ids' and 'data')")
            data = h["data"]
            if data.ndim != 2 or data.dtype.kind != "f":
                raise InputError(p, f"'data' is {data.dtype} of shape {data.shape}; expected 2-D floats")
            ids = list(h["ids"].asstr()[()])
            if len(ids) != data.shape[0]:
                raise InputError(p, f"{len(ids)} ids but {data.shape[0]} rows in 'data'")
            name = feature or str(h.attrs.get("features_name", "")) or None
            if name is None:
                raise InputError(p, "no root attribute features_name; name the feature with --feature")
            groups.setdefault(name, []).append((p, ids, int(data.shape[1])))
    return [_visione_source(name, parts) for name, parts in groups.items()]


def _visione_source(name: str, parts: list[tuple[Path, list[str], int]]) -> Source:
    dims = {d for _, _, d in parts}
    if len(dims) > 1:
        raise InputError(parts[0][0], f"feature {name}: files disagree on the dimension ({sorted(dims)})")
    dim = dims.pop()
    ids = [i for _, part_ids, _ in parts for i in part_ids]
    dup = duplicates(ids)
    if dup:
        where = next(p for p, part_ids, _ in parts if dup[0] in part_ids)
        raise InputError(where, f"feature {name}: {len(dup)} ids occur in more than one row (first: {first_few(dup)})")
    offsets = np.cumsum([0] + [len(i) for _, i, _ in parts])
    paths = [p for p, _, _ in parts]

    def read(rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), dim), dtype=np.float32)
        which = np.searchsorted(offsets, rows, side="right") - 1
        for k in np.unique(which):
            sel = np.flatnonzero(which == k)
            local = rows[sel] - offsets[k]
            order = np.argsort(local)
            with h5py.File(paths[k], "r") as h:
                out[sel[order]] = h["data"][local[order]]
        return out

    return Source(name, paths[0].parent if len(paths) > 1 else paths[0], ids, dim, read)


@dataclass(frozen=True)
class ImportedStore:
    path: Path
    rows: int
    features: dict[str, int]  # name -> dim
    dropped_incomplete: int  # ids left out because some feature lacked them
    excluded: int  # ids left out because an exclusion list named them
    frame_features: dict[str, int] = field(default_factory=dict)  # name -> dim


def align(
    sources: Sequence[Source | FrameSource], drop_incomplete: bool = False, exclude: Iterable[str] = ()
) -> tuple[list[str], int, int]:
    """The ids to store (in natural order), and how many were dropped as incomplete / excluded."""
    excluded = frozenset(exclude)
    sets = [set(s.ids) for s in sources]
    union = set().union(*sets)
    n_excluded = len(union & excluded)
    union -= excluded
    common = set.intersection(*sets) - excluded
    if len(common) != len(union) and not drop_incomplete:
        lacking = [(s, sorted(union - ids, key=natural_key)) for s, ids in zip(sources, sets) if union - ids]
        detail = "; ".join(f"{s.name} lacks {len(m)} (first: {first_few(m)})" for s, m in lacking)
        raise InputError(
            lacking[0][0].path,
            f"{len(union) - len(common)} of {len(union)} ids are missing from "
            f"some features: {detail} (use --drop-incomplete to keep only ids every feature has)",
        )
    return sorted(common, key=natural_key), len(union) - len(common), n_excluded


def import_sources(
    sources: Sequence[Source],
    out: str | os.PathLike,
    name: str | None = None,
    dtype: str = "float32",
    drop_incomplete: bool = False,
    exclude: Iterable[str] = (),
    force: bool = False,
    allow_nonfinite: bool = False,
    meta: dict | None = None,
    block_rows: int | None = None,
    progress: bool = True,
    frame_sources: Sequence[FrameSource] = (),
) -> ImportedStore:
    """Align ``sources`` and ``frame_sources`` by id and stream them into a new store at ``out``."""
    every = [*sources, *frame_sources]
    dup = duplicates([s.name for s in every])
    if dup:
        clash = next(s for s in every[1:] if s.name == dup[0])
        raise InputError(clash.path, f"feature name {dup[0]} given twice")
    ids, n_incomplete, n_excluded = align(every, drop_incomplete, exclude)
    if not ids:
        raise InputError(every[0].path, "no ids left to import")
    if n_incomplete:
        log.warning("left out %d ids that some feature lacks", n_incomplete)
    src_rows = []
    for s in every:
        pos = {i: r for r, i in enumerate(s.ids)}
        src_rows.append(np.fromiter((pos[i] for i in ids), dtype=np.int64, count=len(ids)))
    specs = [FeatureSpec(s.name, s.dim, dtype, s.extractor, str(s.path)) for s in sources]
    frame_specs = [
        FrameSpec(
            s.name, s.dim, dtype, s.extractor, str(s.path), rows=int(s.counts[rows].sum()), max_frames=s.max_frames
        )
        for s, rows in zip(frame_sources, src_rows[len(sources) :])
    ]
    # a frame feature moves up to (most frames of a video) rows per video of a block
    step = block_rows or block_rows_for([s.dim for s in sources] + [s.dim * int(s.counts.max()) for s in frame_sources])
    meta = {"imported_from": [str(s.path) for s in every], **(meta or {})}
    with (
        StoreWriter(
            out, ids, specs, name=name, meta=meta, force=force, allow_nonfinite=allow_nonfinite, frames=frame_specs
        ) as w,
        tqdm(total=len(ids), unit="rows", disable=None if progress else True, desc="import") as bar,
    ):
        for start in range(0, len(ids), step):
            stop = min(start + step, len(ids))
            for s, rows in zip(sources, src_rows):
                w.append(s.name, s.read(rows[start:stop]))
            for s, rows in zip(frame_sources, src_rows[len(sources) :]):
                w.append_frames(s.name, s.read(rows[start:stop]))
            bar.update(stop - start)
        path = w.finish()
    return ImportedStore(
        path,
        len(ids),
        {s.name: s.dim for s in sources},
        n_incomplete,
        n_excluded,
        {s.name: s.dim for s in frame_sources},
    )


def import_bigfile(
    dirs: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    frames: Sequence[str | os.PathLike] = (),
    max_frames: int = 50,
    **kw,
) -> ImportedStore:
    """One or more BigFile folders (and frame-level BigFile folders ``frames``, at most ``max_frames`` frames
    per video) -> one store; feature names are the folder names (``X3D_L``)."""
    return import_sources(
        [bigfile_source(d) for d in dirs],
        out,
        frame_sources=[frame_bigfile_source(d, max_frames) for d in frames],
        **kw,
    )


def import_npy(
    arrays: Sequence[str | os.PathLike], ids: str | os.PathLike, out: str | os.PathLike, **kw
) -> ImportedStore:
    """``.npy`` arrays whose rows follow the ids file; feature names are the file stems."""
    id_list = read_id_list(ids, unique=True)
    return import_sources([npy_source(a, id_list, Path(ids)) for a in arrays], out, **kw)


def import_visione(
    files: Sequence[str | os.PathLike], out: str | os.PathLike, feature: str | None = None, **kw
) -> ImportedStore:
    """VISIONE per-video HDF5 files -> one store (one feature per ``features_name``)."""
    return import_sources(visione_sources(files, feature), out, **kw)
