"""Shot indexes: every shot of a collection encoded once into a model's joint spaces.

HDF5 layout (docs/index-and-search.md)::

    /ids          (N,)      UTF-8 shot ids, the collection store's order
    /embeddings   (N, S·d)  float16; row = the S unit vectors of one shot, concatenated (contiguous layout)
    attrs: format="avs-index", format_version, spaces, space_size, space_weights, model_fingerprint,
           model_name, collection_fingerprint, collection_name, rows_done, complete

A build writes ``.NAME.part`` beside the output, records its progress in ``rows_done`` and renames the file
once complete; an interrupted build (Ctrl-C, a killed process) resumes from ``rows_done`` when run again with
the same model and store. A build that fails (bad input, disk full) removes its ``.part``. While a build runs it
holds a lock on the output (``.NAME.lock``, :class:`avs.formats.fileio.DestinationLock`): a second build of the
same output is refused, so the shared ``.part`` name is safe.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from avs.engine.encode import encode_batch
from avs.errors import InputError
from avs.formats.fileio import (
    DestinationLock,
    check_writable,
    fsync_file,
    io_failure,
    os_problem,
    publish,
    quiet_release,
)
from avs.formats.store import open_store
from avs.models import LoadedModel, check_video_features, load_model, usable_device

FORMAT = "avs-index"
FORMAT_VERSION = 1
log = logging.getLogger(__name__)


@dataclass
class Index:
    path: Path
    ids: list[str]
    embeddings: h5py.Dataset
    spaces: int
    space_size: int
    space_weights: np.ndarray
    model_fingerprint: str
    model_name: str
    collection_fingerprint: str
    collection_name: str

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def dim(self) -> int:
        return self.spaces * self.space_size

    def check_model(self, loaded: LoadedModel) -> None:
        """Refuse to search this index with another model than the one that built it."""
        if loaded.fingerprint != self.model_fingerprint:
            raise InputError(
                self.path,
                f"built with model {self.model_name!r} ({self.model_fingerprint[:12]}), "
                f"not with {loaded.path} ({loaded.fingerprint[:12]}): rebuild the index or "
                "search with the model that built it",
            )
        cfg = loaded.config
        if (cfg.spaces, cfg.space_size) != (self.spaces, self.space_size):
            raise InputError(
                self.path,
                f"rows of {self.spaces} x {self.space_size} dims, but model {cfg.name!r} "
                f"({loaded.path}) embeds in {cfg.spaces} x {cfg.space_size}: rebuild the index",
            )

    def check_store(self, store: str | os.PathLike) -> None:
        """Refuse a collection store other than the one this index encodes (its shots would not be these)."""
        with open_store(store) as st:
            if st.fingerprint != self.collection_fingerprint:
                raise InputError(
                    store,
                    f"is not the collection index {self.path} was built from ({self.collection_name!r}, "
                    f"store id {self.collection_fingerprint[:12]})",
                )

    @property
    def offset(self) -> int | None:
        """Byte offset of the embeddings in the file when they are stored contiguously (else None)."""
        return self.embeddings.id.get_offset() if self.embeddings.chunks is None else None

    def memmap(self) -> np.ndarray | None:
        """The embeddings as a read-only memory map (contiguous layout), or None when not possible."""
        offset = self.offset
        if offset is None:
            return None
        return np.memmap(self.path, dtype=np.float16, mode="r", offset=offset, shape=self.embeddings.shape)


ATTRS = (
    "spaces",
    "space_size",
    "space_weights",
    "model_fingerprint",
    "model_name",
    "collection_fingerprint",
    "collection_name",
)


def open_index(path: str | os.PathLike) -> Index:
    """Open a complete index; anything that does not hold together (a truncated or damaged file, a missing
    dataset or attribute, rows that do not fit the ids or the spaces) is an InputError naming the file."""
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
        raise InputError(p, f"cannot read HDF5 file (truncated or damaged? {os_problem(e)})") from None
    try:
        return _open(f, p)
    except BaseException as e:
        f.close()
        if isinstance(e, InputError):
            raise
        if isinstance(e, (OSError, KeyError, TypeError, ValueError, RuntimeError)):
            raise InputError(
                p, f"damaged or unreadable index ({os_problem(e) if isinstance(e, OSError) else e})"
            ) from None
        raise


def _int(a, key: str):
    v = a.get(key)
    if isinstance(v, np.ndarray) and v.shape in ((), (1,)):
        v = v.reshape(-1)[0]
    return int(v) if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) else None


def _open(f: h5py.File, p: Path) -> Index:
    a = f.attrs
    if a.get("format") != FORMAT:
        raise InputError(p, f"not an avs index (root attribute format is not {FORMAT!r})")
    version = _int(a, "format_version")
    if version is None or version > FORMAT_VERSION:
        raise InputError(
            p, f"index format version {a.get('format_version')!r} is not one this avs reads ({FORMAT_VERSION})"
        )
    if _int(a, "complete") != 1:
        raise InputError(p, "incomplete index (its build was interrupted); run avs index again")
    missing = [k for k in ATTRS if k not in a]
    if missing:
        raise InputError(p, f"no root attribute {', '.join(missing)}: not a complete avs index")
    spaces, space_size = _int(a, "spaces"), _int(a, "space_size")
    if not spaces or not space_size or spaces < 1 or space_size < 1:
        raise InputError(
            p, f"attributes spaces={a['spaces']!r}, space_size={a['space_size']!r} are not positive integers"
        )
    weights = np.asarray(a["space_weights"], dtype=np.float64).reshape(-1)
    if weights.shape != (spaces,) or not np.isfinite(weights).all():
        raise InputError(p, f"attribute space_weights holds {weights.size} values (finite?) for {spaces} spaces")
    ids_ds, emb = f.get("ids"), f.get("embeddings")
    if not isinstance(ids_ds, h5py.Dataset) or ids_ds.ndim != 1 or h5py.check_string_dtype(ids_ds.dtype) is None:
        raise InputError(p, "no 1-D /ids dataset of strings")
    if not isinstance(emb, h5py.Dataset):
        raise InputError(p, "no /embeddings dataset")
    try:
        ids = list(ids_ds.asstr()[()])
    except UnicodeDecodeError as e:
        raise InputError(p, f"/ids: an id is not UTF-8 ({e.reason})") from None
    dim = spaces * space_size
    if emb.ndim != 2 or emb.dtype != np.float16:
        raise InputError(p, f"/embeddings is {emb.dtype} of shape {emb.shape}, not 2-D float16")
    if emb.shape[1] != dim:
        raise InputError(
            p, f"/embeddings rows have {emb.shape[1]} dims, but spaces x space_size = {spaces} x {space_size} = {dim}"
        )
    if emb.shape[0] != len(ids):
        raise InputError(p, f"{len(ids)} ids but {emb.shape[0]} embedding rows")
    if not ids:
        raise InputError(p, "no shots")
    if emb.chunks is None:  # the rows are read straight from the file (memory map, pread): they must all be there
        offset, size = emb.id.get_offset(), p.stat().st_size
        if offset is None or offset + emb.size * 2 > size:
            raise InputError(p, f"truncated: the embeddings end past the end of the file ({size} bytes)")
    return Index(
        p,
        ids,
        emb,
        spaces,
        space_size,
        weights,
        str(a["model_fingerprint"]),
        str(a["model_name"]),
        str(a["collection_fingerprint"]),
        str(a["collection_name"]),
    )


def _part_matches(part: Path, attrs: dict, n: int, dim: int) -> bool:
    try:
        with h5py.File(part, "r") as f:
            same = all(f.attrs.get(k) == v for k, v in attrs.items() if k != "space_weights")
            done = _int(f.attrs, "rows_done")
            return bool(
                same
                and done is not None
                and 0 <= done <= n
                and f["embeddings"].shape == (n, dim)
                and f["embeddings"].dtype == np.float16
                and f["ids"].shape == (n,)
            )
    except (OSError, KeyError, TypeError, ValueError):
        return False


def _create_embeddings(f: h5py.File, n: int, dim: int) -> None:
    """(n, dim) float16, contiguous (memory-mappable) and allocated now, so that :func:`_reserve` can reserve its
    disk space before any row is written."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
    h5py.h5d.create(f.id, b"embeddings", h5py.h5t.IEEE_F16LE, h5py.h5s.create_simple((n, dim)), dcpl=dcpl)


def _reserve(part: Path, out: Path, embeddings: h5py.Dataset) -> None:
    """Reserve the disk space of every row up front: a full disk is then refused before the build starts (HDF5
    does not recover from a write that fails half-way: the process can crash when it exits)."""
    offset = embeddings.id.get_offset()
    if offset is None:
        return
    size = offset + embeddings.size * embeddings.dtype.itemsize + (1 << 20)  # and the metadata written after it
    fd = os.open(part, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as e:
        if e.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):  # cannot reserve here: write and see
            return
        raise InputError(out, f"cannot write: {os_problem(e)} (the index needs {size / 1e6:.1f} MB)") from None
    finally:
        os.close(fd)


# NaN and inf are the values whose exponent bits are all ones
_EXPONENT_BITS = {np.dtype(np.float16): (np.uint16, 0x7C00), np.dtype(np.float32): (np.uint32, 0x7F800000)}


def _first_nonfinite(block: np.ndarray) -> int | None:
    """Row of the first NaN/inf in a 2-D block (None: all finite). Float16 and float32 are tested on their
    exponent bits, an integer test ~15x faster than numpy's float16 arithmetic (the check runs beside the
    encoder on every block of an index build)."""
    if not block.size:
        return None
    bits = _EXPONENT_BITS.get(block.dtype)
    if bits is None:
        if np.isfinite(block.sum(dtype=np.float64)):
            return None
        bad = ~np.isfinite(block)
    else:
        uint, mask = bits
        bad = np.ascontiguousarray(block).view(uint) & mask == mask
        if not bad.any():
            return None
    rows = bad.any(axis=1)
    return int(np.argmax(rows)) if rows.any() else None


@torch.no_grad()
def build_index(
    model: LoadedModel | str | os.PathLike,
    collection: str | os.PathLike,
    out: str | os.PathLike,
    batch_size: int = 2048,
    device: str = "cpu",
    force: bool = False,
    progress: bool = True,
    rows: tuple[int, int] | None = None,
) -> Path:
    """Encode every shot of the collection store ``collection`` with ``model`` into the index ``out`` (or only
    the store's rows ``rows = (start, stop)``: one shard of a sharded index, ``avs.engine.shards``).

    Every problem is refused before ``out`` (or its ``.part``) exists where it can be (device, model, store,
    a second build of ``out``); shots with NaN/inf features are refused when reached, and the ``.part`` removed.
    """
    device = usable_device(device)  # before anything is written
    model_dir = model.path if isinstance(model, LoadedModel) else model
    out = check_writable(out, force, inputs=[collection, model_dir])
    loaded = model if isinstance(model, LoadedModel) else load_model(model, device)
    store = open_store(collection)
    try:
        check_video_features(loaded.config, {**store.frame_dims, **store.dims}, store.path)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(out, f"cannot write here: {os_problem(e)}") from None
        with DestinationLock(out):
            # again: a build that held the lock may have just finished it
            check_writable(out, force, inputs=[collection, model_dir])
            lo, hi = (0, len(store)) if rows is None else rows
            if not 0 <= lo < hi <= len(store):
                raise InputError(store.path, f"rows {lo}..{hi - 1} are not rows of its {len(store)} shots")
            return _build(loaded, store, out, batch_size, device, progress, force, lo, hi)
    finally:
        store.close()


def _build(
    loaded: LoadedModel,
    store,
    out: Path,
    batch_size: int,
    device: torch.device,
    progress: bool,
    force: bool,
    lo: int,
    hi: int,
) -> Path:
    """Rows ``lo``..``hi - 1`` of the store; inside, row r of the index is row lo + r of the store."""
    cfg = loaded.config
    n, dim = hi - lo, cfg.spaces * cfg.space_size
    attrs = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "spaces": cfg.spaces,
        "space_size": cfg.space_size,
        "model_fingerprint": loaded.fingerprint,
        "model_name": cfg.name,
        "collection_fingerprint": store.fingerprint,
        "collection_name": store.name,
        "store_rows": f"{lo}:{hi}",  # the part of the store this index holds (all of it, but for a shard)
    }
    part = out.parent / f".{out.name}.part"
    try:
        if part.exists() and _part_matches(part, attrs, n, dim):
            f = h5py.File(part, "r+")
            log.info("resuming %s at row %d", part, int(f.attrs["rows_done"]))
        else:
            f = h5py.File(part, "w")
    except OSError as e:
        raise InputError(out, f"cannot write {part.name}: {os_problem(e)}") from None
    from tqdm import tqdm

    names = [v.name for v in cfg.video]
    embeddings = None
    try:
        if "complete" not in f.attrs:  # a new file
            f.attrs.update(attrs)
            f.attrs["space_weights"] = loaded.model.space_weights.cpu().numpy().astype(np.float64)
            f.attrs["rows_done"] = 0
            f.attrs["complete"] = 0
            f.create_dataset("ids", data=np.array(store.ids[lo:hi], dtype=object), dtype=h5py.string_dtype())
            _create_embeddings(f, n, dim)
        _reserve(part, out, f["embeddings"])
        f.flush()
        net = loaded.model.to(device).eval()
        start = int(f.attrs["rows_done"])
        # one handle for the whole build: a failed write surfaces where HDF5 releases the dataset, which then
        # happens in the quiet close below, not in a temporary's destructor
        embeddings = f["embeddings"]

        # the next block is read while this one is encoded; stored dtype in, widened by torch (far faster
        # than HDF5's own float16 conversion)
        def read(rows: slice):
            at = slice(lo + rows.start, lo + rows.stop)  # the same rows in the store
            try:
                feats = {name: store.get(name, at) for name in names}
                frames = () if cfg.frame is None else store.frames(cfg.frame.name, at)
            except (OSError, RuntimeError) as e:
                problem = io_failure(e)
                if problem is None:
                    raise
                raise InputError(store.path, f"cannot read rows {at.start}..{at.stop - 1}: {problem}") from None
            for name, block in [*feats.items(), *([(cfg.frame.name, frames[0])] if frames else [])]:
                row = _first_nonfinite(block.reshape(len(block), -1))
                if row is not None:
                    shot = store.ids[at.start + row]
                    raise InputError(
                        store.path,
                        f"feature {name}: NaN/inf in row {at.start + row} (shot {shot}); "
                        "`avs collection check` lists them all: fix or drop those shots and re-import",
                    )
            return rows, feats, frames

        with (
            tqdm(total=n, initial=start, unit="shot", desc="index", disable=None if progress else True) as bar,
            ThreadPoolExecutor(1) as reader,
        ):
            ahead = reader.submit(read, slice(start, min(start + batch_size, n))) if start < n else None
            while ahead is not None:
                rows, feats, frames = ahead.result()
                nxt = rows.stop
                ahead = reader.submit(read, slice(nxt, min(nxt + batch_size, n))) if nxt < n else None
                emb = encode_batch(net.encode_video, (feats, *frames), device)
                emb = emb.reshape(rows.stop - rows.start, dim).to(torch.float16).numpy()
                row = _first_nonfinite(emb)
                if row is not None:
                    raise InputError(
                        loaded.path,
                        f"the model gives NaN/inf embeddings (first: shot "
                        f"{store.ids[lo + rows.start + row]} of {store.path}): are its weights damaged?",
                    )
                embeddings[rows] = emb
                f.attrs["rows_done"] = rows.stop  # written after the rows: a crash never skips any
                f.flush()
                bar.update(rows.stop - rows.start)
        f.attrs["complete"] = 1
        embeddings = None
        f.close()
        fsync_file(part)
        publish(part, out, force)
    except BaseException as e:
        with quiet_release(), contextlib.suppress(Exception):
            embeddings = None  # noqa: F841  (released before the file: HDF5 crashes closing it under a handle)
            try:
                f.close()
            finally:
                f = None  # the last reference, released here, quietly
        if not isinstance(e, Exception):  # interrupted (Ctrl-C): keep the .part, a later run resumes from it
            raise
        with contextlib.suppress(FileNotFoundError):
            os.unlink(part)
        problem = io_failure(e)
        if problem is not None:
            raise InputError(out, f"cannot write: {problem}") from None
        raise
    return out
