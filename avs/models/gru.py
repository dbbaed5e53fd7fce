"""LAFF's GRU text encoder: word embeddings (initialised from word2vec where a word is known) into a
bidirectional GRU, mean-pooled over the caption."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from avs.errors import InputError
from avs.features.vocab import Vocabulary
from avs.features.word2vec import Word2Vec

# ----------------------------------------------------------------------------------------------------------
# GRU text encoder


class GruTextEncoder(nn.Module):
    """Embedding -> 1-layer unidirectional GRU -> mean of the hidden states over the true length (gru_mean)."""

    def __init__(self, vocab_size: int, embed_dim: int = 500, hidden: int = 1024):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.gru = nn.GRU(embed_dim, hidden, num_layers=1, batch_first=True, bidirectional=False)

    @property
    def out_dim(self) -> int:
        return self.gru.hidden_size

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(self.embedding(ids), lengths.cpu(), batch_first=True, enforce_sorted=False)
        states, _ = pad_packed_sequence(self.gru(packed)[0], batch_first=True)
        # pad_packed_sequence zero-fills past each length, so the sum covers exactly the valid steps.
        return states.sum(dim=1) / lengths.to(states.device, states.dtype).unsqueeze(1)

    @torch.no_grad()
    def init_embeddings(
        self, vocab: Vocabulary, w2v: Word2Vec | None, generator: torch.Generator | None = None
    ) -> None:
        """Uniform(-1, 1) rows, overwritten by the word2vec vector of every word it knows (official get_we)."""
        weight = self.embedding.weight
        if len(vocab) != weight.shape[0]:
            raise ValueError(f"vocabulary of {len(vocab)} words for an embedding of {weight.shape[0]} rows")
        if w2v is not None and w2v.dim != weight.shape[1]:
            raise InputError(
                w2v.path, f"word2vec dimension {w2v.dim} differs from the GRU embedding size {weight.shape[1]}"
            )
        init = torch.rand(weight.shape, generator=generator, dtype=torch.float32) * 2 - 1
        if w2v is not None:
            known = [(i, w2v._index[w]) for i, w in enumerate(vocab.words) if w in w2v]
            if known:
                rows, src = zip(*known)
                init[list(rows)] = torch.from_numpy(np.asarray(w2v.vectors[list(src)], dtype=np.float32))
        weight.copy_(init.to(weight.device, weight.dtype))
