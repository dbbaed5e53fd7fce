"""Shot indexes: every shot of a collection encoded once into a model's joint spaces.

HDF5 layout (docs/index-and-search.md)::

    /ids          (N,)      UTF-8 shot ids, the collection store's order
    /embeddings   (N, S·d)  float16; row = the S unit vectors of one shot, concatenated (contiguous layout)
    attrs: format="avs-index", format_version, spaces, space_size, space_weights, model_fingerprint,
           model_name, collection_fingerprint, collection_name, rows_done, complete

A build writes ``.NAME.part`` beside the output, records its progress in ``rows_done`` and renames the file
once complete; an interrupted build resumes from ``rows_done`` when run again with the same model and store.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from .collection import open_store
from .errors import InputError
from .models import LoadedModel, check_video_features, load_model

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
            raise InputError(self.path, f"built with model {self.model_name!r} ({self.model_fingerprint[:12]}), "
                             f"not with {loaded.path} ({loaded.fingerprint[:12]}): rebuild the index or "
                             "search with the model that built it")

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


def open_index(path: str | os.PathLike) -> Index:
    p = Path(path)
    if not p.exists():
        raise InputError(p, "no such file")
    if not h5py.is_hdf5(p):
        raise InputError(p, "not an HDF5 file")
    f = h5py.File(p, "r")
    a = f.attrs
    if a.get("format") != FORMAT:
        f.close()
        raise InputError(p, f"not an avs index (root attribute format is not {FORMAT!r})")
    if int(a.get("complete", 0)) != 1:
        f.close()
        raise InputError(p, "incomplete index (its build was interrupted); run avs index again")
    emb = f["embeddings"]
    return Index(p, list(f["ids"].asstr()[()]), emb, int(a["spaces"]), int(a["space_size"]),
                 np.asarray(a["space_weights"], dtype=np.float64), str(a["model_fingerprint"]),
                 str(a["model_name"]), str(a["collection_fingerprint"]), str(a["collection_name"]))


def _part_matches(part: Path, attrs: dict, n: int, dim: int) -> bool:
    try:
        with h5py.File(part, "r") as f:
            same = all(f.attrs.get(k) == v for k, v in attrs.items() if k != "space_weights")
            return same and f["embeddings"].shape == (n, dim)
    except (OSError, KeyError):
        return False


@torch.no_grad()
def build_index(model: LoadedModel | str | os.PathLike, collection: str | os.PathLike, out: str | os.PathLike,
                batch_size: int = 2048, device: str = "cpu", force: bool = False, progress: bool = True) -> Path:
    """Encode every shot of the collection store ``collection`` with ``model`` into the index ``out``."""
    loaded = model if isinstance(model, LoadedModel) else load_model(model, device)
    cfg = loaded.config
    out = Path(out)
    if out.exists() and not force:
        raise InputError(out, "already exists (use --force to overwrite)")
    store = open_store(collection)
    check_video_features(cfg, {**store.frame_dims, **store.dims}, store.path)
    n, dim = len(store), cfg.spaces * cfg.space_size
    attrs = {"format": FORMAT, "format_version": FORMAT_VERSION, "spaces": cfg.spaces,
             "space_size": cfg.space_size, "model_fingerprint": loaded.fingerprint, "model_name": cfg.name,
             "collection_fingerprint": store.fingerprint, "collection_name": store.name}
    part = out.parent / f".{out.name}.part"
    out.parent.mkdir(parents=True, exist_ok=True)
    if part.exists() and _part_matches(part, attrs, n, dim):
        f = h5py.File(part, "r+")
        log.info("resuming %s at row %d", part, int(f.attrs["rows_done"]))
    else:
        f = h5py.File(part, "w")
        f.attrs.update(attrs)
        f.attrs["space_weights"] = loaded.model.space_weights.cpu().numpy().astype(np.float64)
        f.attrs["rows_done"] = 0
        f.attrs["complete"] = 0
        f.create_dataset("ids", data=np.array(store.ids, dtype=object), dtype=h5py.string_dtype())
        f.create_dataset("embeddings", shape=(n, dim), dtype=np.float16)  # contiguous: memory-mappable
    from tqdm import tqdm

    names = [v.name for v in cfg.video]
    net = loaded.model.to(device).eval()
    try:
        start = int(f.attrs["rows_done"])
        with tqdm(total=n, initial=start, unit="shot", desc="index", disable=None if progress else True) as bar, \
                ThreadPoolExecutor(1) as reader:
            # the next block is read while this one is encoded; stored dtype in, widened by torch (far faster
            # than HDF5's own float16 conversion)
            def read(rows: slice):
                feats = {name: store.get(name, rows) for name in names}
                frames = () if cfg.frame is None else store.frames(cfg.frame.name, rows)
                return rows, feats, frames

            ahead = reader.submit(read, slice(start, min(start + batch_size, n))) if start < n else None
            while ahead is not None:
                rows, feats, frames = ahead.result()
                nxt = rows.stop
                ahead = reader.submit(read, slice(nxt, min(nxt + batch_size, n))) if nxt < n else None
                feats = {k: torch.from_numpy(v).to(device=device, dtype=torch.float32) for k, v in feats.items()}
                frames = [torch.from_numpy(a).to(device) for a in frames]
                emb = net.encode_video(feats, *frames).reshape(rows.stop - rows.start, dim)
                f["embeddings"][rows] = emb.to(torch.float16).cpu().numpy()
                f.attrs["rows_done"] = rows.stop  # written after the rows: a crash never skips any
                f.flush()
                bar.update(rows.stop - rows.start)
        f.attrs["complete"] = 1
    finally:
        f.close()
        store.close()
    os.replace(part, out)
    return out
