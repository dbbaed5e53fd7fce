"""Texts, topics and videos into a model's joint spaces: the one batched encoder every command uses (search,
index, training evaluation, diagnostics, embed, the demo)."""

from __future__ import annotations

import os
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch

from avs.errors import InputError
from avs.formats.topics import TopicSet
from avs.models import LoadedModel
from avs.models.clip_model import check_clip_checkpoint


def text_featurizer(
    loaded: LoadedModel,
    word2vec: str | os.PathLike | None = None,
    clip_checkpoint: str | os.PathLike | None = None,
    clip_bpe: str | os.PathLike | None = None,
    precomputed: dict[str, str | os.PathLike] | None = None,
):
    """The featurizer a model's text side needs. The word2vec path defaults to the one recorded at training."""
    from avs.features.featurize import TextFeaturizer
    from avs.features.precomputed import PrecomputedTextFeatures
    from avs.features.word2vec import Word2Vec, word2vec_path
    from avs.models.clip_text import ClipTextEncoder

    word2vec = word2vec_path(word2vec)  # a given path must exist, needed or not
    kinds = {f.kind for f in loaded.config.text}
    w2v = None
    if "w2v" in kinds or "gru" in kinds:
        path = word2vec or loaded.meta.get("word2vec")
        if path is None and "w2v" in kinds:
            raise InputError(loaded.path, "the model uses word2vec text features: give --word2vec PATH")
        w2v = Word2Vec.load(path) if path is not None else None
    clip = None
    if any(f.kind == "clip" for f in loaded.config.text) and not precomputed:
        # the checkpoint recorded at training (or by make_clip_model) unless another is given
        clip_checkpoint = clip_checkpoint or loaded.meta.get("clip_checkpoint")
        clip_bpe = clip_bpe or loaded.meta.get("clip_bpe")
    if clip_checkpoint is not None:
        if clip_bpe is None:
            raise InputError(clip_checkpoint, "a CLIP checkpoint needs its BPE vocabulary (--clip-bpe)")
        check_clip_checkpoint(loaded, clip_checkpoint)
        clip = ClipTextEncoder.from_checkpoint(clip_checkpoint, clip_bpe, **loaded.meta.get("clip_text", {}))
    pre = {name: PrecomputedTextFeatures(p) for name, p in (precomputed or {}).items()}
    return TextFeaturizer(loaded.config.text, loaded.vocabs, w2v=w2v, precomputed=pre, clip=clip)


def to_device(batch: Any, device: torch.device | str | None) -> Any:
    """``batch`` (tensors, arrays, or dicts / tuples / lists of them) on ``device``, floating point as float32.

    GRU lengths stay on the CPU: ``pack_padded_sequence`` wants them there."""
    if isinstance(batch, Mapping):
        return {k: v if k == "gru_lengths" else to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(v, device) for v in batch)
    t = torch.from_numpy(batch) if isinstance(batch, np.ndarray) else batch
    return t.to(device=device, dtype=torch.float32 if t.is_floating_point() else t.dtype)


def _cpu(out: Any) -> Any:
    if isinstance(out, tuple):
        return tuple(_cpu(o) for o in out)
    return None if out is None else out.cpu()


@torch.no_grad()
def encode_batch(encode: Callable[..., Any], args: tuple, device: torch.device | str | None = None) -> Any:
    """``encode(*args)`` with ``args`` moved to ``device``, its tensor output(s) back on the CPU."""
    return _cpu(encode(*to_device(args, device)))


def iter_encoded(
    encode: Callable[..., Any], batches: Iterable[tuple], device: torch.device | str | None = None
) -> Iterator[Any]:
    """:func:`encode_batch` of each batch (a tuple of ``encode``'s arguments), lazily."""
    for args in batches:
        yield encode_batch(encode, args, device)


def encode_all(encode: Callable[..., Any], batches: Iterable[tuple], device: torch.device | str | None = None) -> Any:
    """The outputs of :func:`iter_encoded` joined along rows: a tensor, or a tuple of them (``None`` stays
    ``None``)."""
    outs = list(iter_encoded(encode, batches, device))
    if not outs:
        raise ValueError("nothing to encode")
    if not isinstance(outs[0], tuple):
        return torch.cat(outs)
    return tuple(None if parts[0] is None else torch.cat(parts) for parts in zip(*outs))


def row_batches(inputs: Mapping[str, Any], batch_size: int) -> Iterator[tuple[dict[str, Any]]]:
    """Consecutive row blocks of a dict of equally long tensors or arrays, each as a one-argument batch."""
    n = len(next(iter(inputs.values())))
    for start in range(0, n, batch_size):
        yield ({k: v[start : start + batch_size] for k, v in inputs.items()},)


def text_batches(
    featurizer, texts: Sequence[str], ids: Sequence[str] | None = None, batch_size: int = 256
) -> Iterator[tuple[dict[str, torch.Tensor]]]:
    """The featurized inputs of ``texts`` (and their caption/topic ids), ``batch_size`` at a time."""
    for start in range(0, len(texts), batch_size):
        part = slice(start, start + batch_size)
        yield (featurizer.featurize(list(texts[part]), None if ids is None else list(ids[part])),)


def encode_texts(
    loaded: LoadedModel, featurizer, texts: Sequence[str], ids: Sequence[str] | None = None, batch_size: int = 256
) -> np.ndarray:
    """(N, S, d) float32 unit vectors, one per space."""
    model = loaded.model.eval()
    if not len(texts):
        return np.zeros((0, loaded.config.spaces, loaded.config.space_size), np.float32)
    device = model.space_weights.device  # a buffer: zero-shot CLIP models have no parameters
    return encode_all(model.encode_text, text_batches(featurizer, texts, ids, batch_size), device).numpy()


def encode_topics(loaded: LoadedModel, featurizer, topics: TopicSet) -> np.ndarray:
    """(Q, S, d) embeddings of the topics, in topic order; precomputed features are looked up by topic number."""
    return encode_texts(loaded, featurizer, [t.text for t in topics], [str(t.num) for t in topics])


def flatten(emb: np.ndarray) -> np.ndarray:
    """(N, S, d) -> (N, S·d): the row layout of an index."""
    return np.ascontiguousarray(emb.reshape(emb.shape[0], -1), dtype=np.float32)


def weighted_queries(emb: np.ndarray, weights: Sequence[float]) -> np.ndarray:
    """Flattened queries whose dot product with an index row is the model's score Σ_s w_s ⟨q_s, v_s⟩."""
    w = np.asarray(weights, dtype=np.float32)[None, :, None]
    return flatten(emb * w)
