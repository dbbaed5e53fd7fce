"""``avs model embed``: a model applied to pre-featurised inputs from an .npz file, with the attention weights
of its fusion — the side-by-side check against the official LAFF code (docs/official-import.md)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from avs.engine.encode import encode_all, row_batches
from avs.errors import InputError, first_line
from avs.formats.fileio import atomic_open, check_writable
from avs.models.config import ModelConfig, TextFeature
from avs.models.io import load_model
from avs.models.laff import text_input_key

# the .npz keys of each text feature kind (docs/official-import.md)
_TEXT_KEYS = {"bow": ("bow",), "w2v": ("w2v",), "clip": ("clip_text",), "gru": ("gru_ids", "gru_lengths")}


def _text_keys(f: TextFeature) -> tuple[str, ...]:
    return _TEXT_KEYS.get(f.kind, (f"txt__{f.name}",))


def _matrix(data, key: str, dim: int, source) -> np.ndarray:
    a = data[key]
    if a.ndim != 2 or a.shape[1] != dim or not np.issubdtype(a.dtype, np.number):
        raise InputError(source, f"{key}: expected a B x {dim} numeric array, got {a.dtype} {a.shape}")
    return a.astype(np.float32)


def embed(model_dir: str | os.PathLike, features_npz: str | os.PathLike, batch_size: int = 1024) -> dict:
    """Embed the pre-featurised texts and/or videos of ``features_npz`` (``docs/official-import.md``).

    Returns ``txt_emb`` / ``vis_emb`` (B x S x d), ``txt_attn`` / ``vis_attn`` (B x S x L, where the fusion has
    weights) and, when both sides are given, ``sim_t2v`` (texts x videos)."""
    loaded = load_model(model_dir)
    cfg, model = loaded.config, loaded.model
    src = Path(features_npz)
    try:
        with np.load(src, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise InputError(src, "no such file") from None
    except Exception as e:  # not a zip / npy, or object arrays (which would need pickle)
        raise InputError(src, f"not a readable .npz of arrays ({first_line(e)})") from None
    text_keys = [k for f in cfg.text for k in _text_keys(f)]
    video_keys = [f"vid__{f.name}" for f in cfg.video]
    out: dict[str, np.ndarray] = {}
    with torch.no_grad():
        if any(k in data for k in text_keys):
            missing = [k for k in text_keys if k not in data]
            if missing:
                raise InputError(
                    src,
                    f"text inputs incomplete: missing {', '.join(missing)} (the model's text "
                    f"side needs {', '.join(text_keys)})",
                )
            batch = _text_batch(data, cfg, src)
            out["txt_emb"], out["txt_attn"] = _run(
                lambda b: model.encode_text(b, return_weights=True), batch, batch_size
            )
        if any(k in data for k in video_keys):
            if cfg.frame is not None:
                raise InputError(
                    src,
                    "embedding videos of a LAFF-ml model needs frame features, which the "
                    "embed input format has no place for",
                )
            missing = [k for k in video_keys if k not in data]
            if missing:
                raise InputError(src, f"video inputs incomplete: missing {', '.join(missing)}")
            feats = {f.name: torch.from_numpy(_matrix(data, f"vid__{f.name}", f.dim, src)) for f in cfg.video}
            _same_rows(feats, "video", src)
            out["vis_emb"], out["vis_attn"] = _run(
                lambda b: model.encode_video(b, return_weights=True), feats, batch_size
            )
    if not out:
        raise InputError(
            src,
            f"no inputs for this model: expected text keys {', '.join(text_keys)} and/or "
            f"video keys {', '.join(video_keys)}",
        )
    if "txt_emb" in out and "vis_emb" in out:
        out["sim_t2v"] = model.similarity(torch.from_numpy(out["txt_emb"]), torch.from_numpy(out["vis_emb"])).numpy()
    return {k: v for k, v in out.items() if v is not None}


def _text_batch(data: dict, cfg: ModelConfig, src) -> dict[str, torch.Tensor]:
    batch: dict[str, torch.Tensor] = {}
    for f in cfg.text:
        if f.kind == "gru":
            ids, lengths = data["gru_ids"], data["gru_lengths"]
            if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
                raise InputError(src, f"gru_ids: expected a B x T integer array, got {ids.dtype} {ids.shape}")
            if lengths.shape != (ids.shape[0],) or not np.issubdtype(lengths.dtype, np.integer):
                raise InputError(
                    src, f"gru_lengths: expected {ids.shape[0]} integers, got {lengths.dtype} {lengths.shape}"
                )
            if ids.size and (ids.min() < 0 or ids.max() >= f.dim):
                raise InputError(src, f"gru_ids: ids must lie in 0..{f.dim - 1}")
            if len(lengths) and (lengths.min() < 1 or lengths.max() > ids.shape[1]):
                raise InputError(src, f"gru_lengths: lengths must lie in 1..{ids.shape[1]}")
            batch["gru_ids"], batch["gru_lengths"] = (
                torch.from_numpy(ids.astype(np.int64)),
                torch.from_numpy(lengths.astype(np.int64)),
            )
        else:
            key = _text_keys(f)[0]
            batch[text_input_key(f.kind, f.name)] = torch.from_numpy(_matrix(data, key, f.dim, src))
    _same_rows(batch, "text", src)
    return batch


def _same_rows(inputs: dict[str, torch.Tensor], side: str, src) -> None:
    rows = {len(v) for v in inputs.values()}
    if len(rows) > 1:
        raise InputError(src, f"{side} inputs disagree on the number of rows ({', '.join(map(str, sorted(rows)))})")
    if rows == {0}:
        raise InputError(src, f"{side} inputs have no rows")


def _run(encode, inputs: dict[str, torch.Tensor], batch_size: int) -> tuple[np.ndarray, np.ndarray | None]:
    emb, weights = encode_all(encode, row_batches(inputs, batch_size))
    return emb.numpy(), None if weights is None else weights.numpy()


def write_npz(arrays: dict, out: str | os.PathLike, force: bool = False) -> Path:
    """Write ``arrays`` to ``out`` atomically, refusing to overwrite unless ``force``."""
    check_writable(out, force)
    with atomic_open(out, "wb", force=force) as f:
        np.savez(f, **arrays)
    return Path(out)


__all__ = ["embed", "write_npz"]
