"""Texts and topics into a model's joint spaces (the query side of search)."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch

from avs.errors import InputError
from avs.formats.topics import TopicSet
from avs.models import LoadedModel


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
    if clip_checkpoint is not None:
        if clip_bpe is None:
            raise InputError(clip_checkpoint, "a CLIP checkpoint needs its BPE vocabulary (--clip-bpe)")
        clip = ClipTextEncoder.from_checkpoint(clip_checkpoint, clip_bpe)
    pre = {name: PrecomputedTextFeatures(p) for name, p in (precomputed or {}).items()}
    return TextFeaturizer(loaded.config.text, loaded.vocabs, w2v=w2v, precomputed=pre, clip=clip)


@torch.no_grad()
def encode_texts(
    loaded: LoadedModel, featurizer, texts: Sequence[str], ids: Sequence[str] | None = None, batch_size: int = 256
) -> np.ndarray:
    """(N, S, d) float32 unit vectors, one per space."""
    model = loaded.model.eval()
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(texts), batch_size):
        part = slice(start, start + batch_size)
        batch = featurizer.featurize(list(texts[part]), None if ids is None else list(ids[part]))
        out.append(model.encode_text({k: v.to(device) for k, v in batch.items()}).cpu().numpy())
    space = (loaded.config.spaces, loaded.config.space_size)
    return np.concatenate(out) if out else np.zeros((0, *space), np.float32)


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
