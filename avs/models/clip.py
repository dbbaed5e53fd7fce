"""What CLIP's text and image towers share: the transformer blocks and the reading of a checkpoint file.

One checkpoint gives both towers (:mod:`avs.models.clip_text`, :mod:`avs.models.clip_vision`), so their
embeddings are in one space.
"""

from __future__ import annotations

import re
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from avs.errors import InputError


class _QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class _ResidualBlock(nn.Module):
    def __init__(self, width: int, heads: int, mlp_width: int, quick_gelu: bool):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            OrderedDict(
                [
                    ("c_fc", nn.Linear(width, mlp_width)),
                    ("gelu", _QuickGELU() if quick_gelu else nn.GELU()),
                    ("c_proj", nn.Linear(mlp_width, width)),
                ]
            )
        )

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=attn_mask)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    """CLIP's stack of pre-norm residual attention blocks (``resblocks.{i}.*``, OpenAI's parameter names)."""

    def __init__(self, width: int, layers: int, heads: int, mlp_width: int, quick_gelu: bool):
        super().__init__()
        self.resblocks = nn.ModuleList(_ResidualBlock(width, heads, mlp_width, quick_gelu) for _ in range(layers))

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x, attn_mask)
        return x


def read_state_dict(path: Path) -> Mapping:
    """The tensors of a CLIP checkpoint file, read without executing pickled code: a state dict, or one under
    ``state_dict``/``model``. TorchScript archives (OpenAI's released ``.pt`` files) are refused: loading one
    runs the code stored in it."""
    if not path.is_file():
        raise InputError(path, "no such file")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            if any("/code/" in n or n.endswith("/constants.pkl") for n in z.namelist()):
                raise InputError(
                    path,
                    "is a TorchScript archive (like OpenAI's released CLIP .pt files); loading one "
                    "runs code stored in it, which avs does not do. In an environment you trust, export "
                    "its weights: torch.save(torch.jit.load(PATH, map_location='cpu').state_dict(), "
                    "'clip_state_dict.pt'), and pass that file",
                )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # junk bytes fail inside the unpickler with arbitrary exception types
        text = str(e)
        # torch's weights-only refusal names the first class that would have to be imported to go on
        found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
        if found:
            raise InputError(
                path,
                f"holds pickled Python objects besides tensors ({found.group(1)}); avs loads tensors only. Save just "
                "the weights, e.g. torch.save(ckpt['state_dict'], 'clip_state_dict.pt'), and pass that file",
            ) from None
        detail = re.search(r"WeightsUnpickler error:\s*([^\n]+)", text)
        detail = detail.group(1) if detail else text.splitlines()[0] if text else type(e).__name__
        raise InputError(path, f"not a PyTorch checkpoint ({detail})") from None
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model"):  # training checkpoints keep the weights under one of these
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InputError(path, "not a state_dict (expected a mapping of parameter names to tensors)")
    return obj
