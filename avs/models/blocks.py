"""Building blocks of LAFF and the fusion blocks of its ablation (laff-method.md §4–6, §12).

Every fusion block maps stacked per-feature vectors ``(B, L, D)`` to ``(B, S, D/S)`` unit vectors, one per
embedding space, and returns its fusion weights ``(B, S, L)`` (``None`` where the block has none).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

L2_EPS = 1e-14  # the official l2norm(eps=0) divides by (norm + 1e-14)


def l2_normalize(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    return x / (x.norm(dim=dim, keepdim=True) + L2_EPS)


class _Tanh(nn.Module):
    """tanh in place: the Linear before it does not need its output for backward, and big fresh buffers cost
    page faults at collection scale."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.tanh_()


class _SparseInputLinear(nn.Linear):
    """nn.Linear that, in training, multiplies only the input columns some row uses: a bag of words is ~90 %
    zero columns in a batch, and the zero terms change neither the output nor any gradient (the unused weight
    columns get exact zeros, as the full product gives them)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.dim() == 2 and not x.requires_grad:
            used = x.any(dim=0).nonzero().squeeze(1)
            if len(used) < x.shape[1] // 2:
                return F.linear(x.index_select(1, used), self.weight.index_select(1, used), self.bias)
        return super().forward(x)


class Projection(nn.Sequential):
    """Linear(in→D) → tanh → Dropout [→ BatchNorm]; Xavier-uniform weights, zero bias (official TransformNet)."""

    def __init__(self, in_dim: int, out_dim: int, dropout: float, batch_norm: bool):
        layers: list[nn.Module] = [_SparseInputLinear(in_dim, out_dim), _Tanh()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        if batch_norm:
            layers.append(nn.BatchNorm1d(out_dim))
        super().__init__(*layers)
        nn.init.xavier_uniform_(self[0].weight)
        nn.init.zeros_(self[0].bias)


class TileNorm(nn.Module):
    """The no-transform path for CLIP features: tile the vector to D, then BatchNorm only.

    With D = H·d every head sees the same (batch-normalised) CLIP vector, each copy with its own affine.
    """

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        if out_dim % in_dim:
            raise ValueError(f"no-transform feature of dim {in_dim} cannot be tiled to {out_dim}")
        self.repeat = out_dim // in_dim
        self.norm = nn.BatchNorm1d(out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.repeat(1, self.repeat))


class LaffHead(nn.Module):
    """The LAFF block: logits from one Linear(d→1) per feature, softmax over features, weighted sum, L2.

    The official Attention_1 also carries a mean-pooling scalar that never trains (with_ave is off in the paper
    runs); it is left out, so this block has exactly d + 1 parameters.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.logit = nn.Linear(dim, 1)

    def forward(self, feats: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.logit(feats).squeeze(-1)  # (B, L)
        if mask is not None:
            logits = logits.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(logits, dim=1)
        fused = torch.einsum("bl,bld->bd", weights, feats)
        return l2_normalize(fused), weights


class MultiHeadLaff(nn.Module):
    """H independent LAFF heads, head h fusing dims [h·D/H, (h+1)·D/H) of every feature (split_head).

    Takes the features as a list of (B, D) tensors and computes all heads at once, never materialising the
    (B, L, D) stack: one pass over the features for the logits, one for the weighted sum.
    """

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.blocks = nn.ModuleList(LaffHead(dim // heads) for _ in range(heads))

    def forward(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        b, d = feats[0].shape
        w = torch.cat([blk.logit.weight for blk in self.blocks])  # (H, d_h)
        bias = torch.cat([blk.logit.bias for blk in self.blocks])  # (H,)
        parts = [f.view(b, self.heads, d // self.heads) for f in feats]
        logits = torch.stack([torch.einsum("bhd,hd->bh", p, w) for p in parts], -1) + bias[:, None]
        weights = torch.softmax(logits, dim=-1)  # (B, H, L)
        fused = weights[..., 0, None] * parts[0]
        for i in range(1, len(parts)):
            fused = fused.addcmul_(weights[..., i, None], parts[i])
        return l2_normalize(fused), weights


class SelfAttentionFusion(nn.Module):
    """MHSA of the ablation (official type 11): per head, projection-free self-attention among the features
    (Q = K = V = the head's slice), scale (d_h // H)^-1/2 as the official code computes it, residual, one shared
    LayerNorm(d_h), mean over features."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.scale = (self.head_dim // heads) ** -0.5
        self.norm = nn.LayerNorm(self.head_dim)

    def forward(self, feats: torch.Tensor) -> tuple[torch.Tensor, None]:
        b, n, _ = feats.shape
        x = feats.view(b, n, self.heads, self.head_dim).transpose(1, 2)  # (B, H, L, d_h)
        att = torch.softmax(x @ x.transpose(-1, -2) * self.scale, dim=-1)
        out = self.norm(att @ x + x).mean(dim=2)  # (B, H, d_h)
        return l2_normalize(out), None


class MeanFusion(nn.Module):
    """Attention-free fusion: the plain average of the projected features, one space."""

    def forward(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, n, _ = feats.shape
        weights = feats.new_full((b, 1, n), 1.0 / n)
        return l2_normalize(feats.mean(dim=1)).unsqueeze(1), weights


class StaticFusion(nn.Module):
    """Learned fusion weights that do not depend on the input: Linear(L→1) across features (official type 3)."""

    def __init__(self, n_features: int):
        super().__init__()
        self.mix = nn.Linear(n_features, 1)

    def forward(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fused = self.mix(feats.transpose(1, 2)).squeeze(-1)
        weights = self.mix.weight.expand(feats.shape[0], 1, -1)
        return l2_normalize(fused).unsqueeze(1), weights
