"""LAFF and the models of its ablation: two towers mapping text and video features into S embedding spaces.

Scores are Σ_s w_s·cos(t_s, v_s) with w uniform (the official "mean over heads") unless the config fixes other
weights (JE). Training sums the max-violation triplet loss over spaces (laff-method.md §6–7).
"""

from __future__ import annotations

import torch
from torch import nn

from avs.models.blocks import (
    LaffHead,
    MeanFusion,
    MultiHeadLaff,
    Projection,
    SelfAttentionFusion,
    StaticFusion,
    TileNorm,
    l2_normalize,
)
from avs.models.config import ModelConfig

TEXT_INPUT_KEY = {"bow": "bow", "w2v": "w2v", "clip": "clip"}  # gru uses gru_ids/gru_lengths


def text_input_key(kind: str, name: str) -> str:
    """The featurizer output (``avs.features.featurize.TextFeaturizer``) a text feature reads."""
    return TEXT_INPUT_KEY.get(kind, f"pre:{name}")


class Side(nn.Module):
    """One tower: per-feature transforms then the fusion block; ``forward`` takes the raw feature vectors in
    config order and returns unit vectors ``(B, S, d_s)`` and fusion weights ``(B, S, L)`` or None."""

    def __init__(self, dims: list[int], no_transform: list[bool], cfg: ModelConfig, role: str):
        super().__init__()
        d, fusion = cfg.space_dim, cfg.fusion
        self.mode = fusion
        self.transforms = nn.ModuleList()
        self.fusion: nn.Module | None = None
        if fusion == "clip":  # zero-shot CLIP: the embeddings are compared as they are
            self.joint = nn.ModuleList()
        elif fusion == "concat":
            self.joint = nn.ModuleList([Projection(sum(dims), d, cfg.dropout, cfg.batch_norm)])
        elif fusion == "je" and role == "text":
            # one projection of the concatenated text features per joint space
            self.joint = nn.ModuleList(Projection(sum(dims), d, cfg.dropout, cfg.batch_norm) for _ in range(cfg.spaces))
        else:
            self.transforms.extend(
                TileNorm(n, d) if nt else Projection(n, d, cfg.dropout, cfg.batch_norm)
                for n, nt in zip(dims, no_transform)
            )
            if fusion == "laff":
                self.fusion = MultiHeadLaff(d, cfg.heads)
            elif fusion == "mhsa":
                self.fusion = SelfAttentionFusion(d, cfg.heads)
            elif fusion == "attention_free":
                self.fusion = MeanFusion()
            elif fusion == "static":
                self.fusion = StaticFusion(len(dims))

    def forward(self, inputs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.mode == "clip":
            return l2_normalize(inputs[0]).unsqueeze(1), None
        if not self.transforms:  # concat, je text side
            joined = torch.cat(inputs, dim=1)
            return torch.stack([l2_normalize(p(joined)) for p in self.joint], 1), None
        projected = [t(x) for t, x in zip(self.transforms, inputs)]  # L × (B, D)
        if isinstance(self.fusion, MultiHeadLaff):
            return self.fusion(projected)
        stacked = torch.stack(projected, 1)  # (B, L, D)
        if self.fusion is None:  # je video side: every feature is its own space
            return l2_normalize(stacked), None
        return self.fusion(stacked)


class TextVideoModel(nn.Module):
    """A text-to-video model built from a ``ModelConfig`` whose feature dimensions are all known."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        missing = [f.name for f in (*cfg.video, *cfg.text) if f.dim is None]
        if cfg.frame is not None and cfg.frame.dim is None:
            missing.append(cfg.frame.name)
        if missing:
            raise ValueError(f"feature dimensions unknown for: {', '.join(missing)}")
        self.config = cfg
        self.frame_fusion = LaffHead(cfg.frame.dim) if cfg.frame is not None else None
        vdims = [f.dim for f in cfg.video] + ([cfg.frame.dim] if cfg.frame else [])
        vnt = [f.no_transform for f in cfg.video] + ([True] if cfg.frame else [])
        self.video = Side(vdims, vnt, cfg, "video")
        self.gru = None
        tdims = []
        for f in cfg.text:
            if f.kind == "gru":
                from avs.models.gru import GruTextEncoder

                self.gru = GruTextEncoder(f.dim, cfg.gru_embed, cfg.gru_hidden)
                tdims.append(cfg.gru_hidden)
            else:
                tdims.append(f.dim)
        self.text = Side(tdims, [f.no_transform for f in cfg.text], cfg, "text")
        weights = cfg.space_weights or (1.0 / cfg.spaces,) * cfg.spaces
        self.register_buffer("space_weights", torch.tensor(weights, dtype=torch.float32), persistent=False)

    # -- encoders ---------------------------------------------------------------------------------------
    def encode_video(
        self,
        feats: dict[str, torch.Tensor],
        frames: torch.Tensor | None = None,
        frame_mask: torch.Tensor | None = None,
        return_weights: bool = False,
    ):
        """``feats``: name -> (B, dim) raw video features; LAFF-ml also takes ``frames`` (B, F, d) with a
        boolean ``frame_mask`` (B, F) marking real frames. Returns (B, S, d_s) [and fusion weights]."""
        inputs = [feats[f.name] for f in self.config.video]
        if self.frame_fusion is not None:
            if frames is None:
                raise ValueError(f"model needs the frame feature {self.config.frame.name!r}")
            inputs.append(self.frame_fusion(frames, frame_mask)[0])
        emb, weights = self.video(inputs)
        return (emb, weights) if return_weights else emb

    def encode_text(self, batch: dict[str, torch.Tensor], return_weights: bool = False):
        """``batch``: the featurizer's tensors (``bow``, ``w2v``, ``gru_ids``/``gru_lengths``, ``clip``,
        ``pre:<name>``). Returns (B, S, d_s) [and fusion weights]."""
        inputs = []
        for f in self.config.text:
            if f.kind == "gru":
                inputs.append(self.gru(batch["gru_ids"], batch["gru_lengths"]))
            else:
                inputs.append(batch[text_input_key(f.kind, f.name)])
        emb, weights = self.text(inputs)
        return (emb, weights) if return_weights else emb

    # -- scoring ------------------------------------------------------------------------------------------
    def similarity(self, text_emb: torch.Tensor, video_emb: torch.Tensor) -> torch.Tensor:
        """(Nt, Nv) scores: Σ_s w_s ⟨t_s, v_s⟩ over unit per-space vectors."""
        return torch.einsum("tsd,vsd,s->tv", text_emb, video_emb, self.space_weights.to(text_emb.dtype))

    def loss(
        self,
        text_emb: torch.Tensor,
        video_emb: torch.Tensor,
        same_video: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Max-violation triplet loss, text→video, margin from the config, summed over the batch and spaces.

        Row j of both inputs is a (caption, its video) pair. ``same_video`` (B, B) bool marks pairs of rows
        showing the same video; those are not used as negatives (the official code does use them).
        """
        scores = torch.einsum("isd,jsd->sij", video_emb, text_emb)  # (S, videos, texts)
        positive = torch.diagonal(scores, dim1=1, dim2=2).unsqueeze(1)  # (S, 1, texts)
        cost = (self.config.margin + scores - positive).clamp(min=0)
        exclude = torch.eye(scores.shape[1], dtype=torch.bool, device=scores.device)
        if same_video is not None:
            exclude = exclude | same_video
        cost = cost.masked_fill(exclude.unsqueeze(0), 0.0)
        return cost.max(dim=1).values.sum()


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (BatchNorm running statistics are buffers and do not count)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
