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
        g = self.gru
        if torch.is_grad_enabled() and g.weight_ih_l0.requires_grad:
            mean = GruMean.apply(
                packed.data, packed.batch_sizes, g.weight_ih_l0, g.weight_hh_l0, g.bias_ih_l0, g.bias_hh_l0
            )
            return mean[packed.unsorted_indices]
        states, _ = pad_packed_sequence(g(packed)[0], batch_first=True)
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


class GruMean(torch.autograd.Function):
    """nn.GRU's equations over a packed batch, mean-pooled per sequence, with a backward that computes the
    weight gradients as one matrix product over all steps (torch's CPU GRU accumulates them step by step,
    which made the GRU half of a LAFF training step). Same math as nn.GRU + mean; sums in another order.

    Inputs: packed rows (time-major, sequences sorted by length), batch sizes per step, nn.GRU's weights.
    Output: (B, H) mean hidden state per sequence, in the packed (sorted) order."""

    @staticmethod
    def forward(ctx, x, batch_sizes, w_ih, w_hh, b_ih, b_hh):
        hid = w_hh.shape[1]
        sizes = batch_sizes.tolist()
        gi = torch.addmm(b_ih, x, w_ih.t())  # every step's input gates in one product
        h = x.new_zeros(sizes[0], hid)
        total = x.new_zeros(sizes[0], hid)
        prev = x.new_empty(len(x), hid)  # the state each step started from
        gates = x.new_empty(len(x), 4 * hid)  # r, z, n, and W_hn·h + b_hn, per step
        pos = 0
        for n in sizes:
            hp, g = h[:n], gates[pos : pos + n]
            gh = torch.addmm(b_hh, hp, w_hh.t())
            torch.sigmoid(gi[pos : pos + n, : 2 * hid] + gh[:, : 2 * hid], out=g[:, : 2 * hid])
            r, z = g[:, :hid], g[:, hid : 2 * hid]
            g[:, 3 * hid :] = gh[:, 2 * hid :]
            torch.tanh(torch.addcmul(gi[pos : pos + n, 2 * hid :], r, gh[:, 2 * hid :]), out=g[:, 2 * hid : 3 * hid])
            prev[pos : pos + n] = hp
            h = torch.lerp(g[:, 2 * hid : 3 * hid], hp, z)  # (1 − z)·n + z·h
            total[:n] += h
            pos += n
        lengths = (batch_sizes[None, :] > torch.arange(sizes[0])[:, None]).sum(dim=1).to(x.dtype)
        ctx.save_for_backward(x, w_ih, w_hh, prev, gates, lengths)
        ctx.sizes = sizes
        return total / lengths[:, None]

    @staticmethod
    def backward(ctx, grad):
        x, w_ih, w_hh, prev, gates, lengths = ctx.saved_tensors
        hid, sizes = w_hh.shape[1], ctx.sizes
        step_grad = grad / lengths[:, None]  # every step's state is in the mean once
        d_gi = x.new_empty(len(x), 3 * hid)  # gradients at the gates' pre-activations, input side
        d_gh = x.new_empty(len(x), 3 * hid)  # and recurrent side
        dh = x.new_zeros(sizes[0], hid)
        pos = len(x)
        for n in reversed(sizes):
            pos -= n
            g, hp = gates[pos : pos + n], prev[pos : pos + n]
            r, z, new, ghn = g[:, :hid], g[:, hid : 2 * hid], g[:, 2 * hid : 3 * hid], g[:, 3 * hid :]
            dh_t = dh[:n] + step_grad[:n]
            dn = dh_t * (1 - z) * (1 - new * new)
            di, dr = d_gi[pos : pos + n], d_gh[pos : pos + n]
            torch.mul(dn * ghn, r * (1 - r), out=di[:, :hid])
            torch.mul(dh_t * (hp - new), z * (1 - z), out=di[:, hid : 2 * hid])
            di[:, 2 * hid :] = dn
            dr[:, : 2 * hid] = di[:, : 2 * hid]
            torch.mul(dn, r, out=dr[:, 2 * hid :])
            dh[:n] = torch.addmm(dh_t * z, dr, w_hh)
        dx = d_gi @ w_ih if ctx.needs_input_grad[0] else None
        return dx, None, d_gi.t() @ x, d_gh.t() @ prev, d_gi.sum(dim=0), d_gh.sum(dim=0)
