"""CLIP's text tower, frozen, from a checkpoint the user gives (the ``clip`` text feature of LAFF, laff-method.md
§2): ``<|endoftext|>`` state after ``ln_final``, times ``text_projection``."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Mapping, Sequence

import torch
from torch import nn

from avs.errors import InputError, first_few
from avs.features.clip_tokenizer import ClipTokenizer
from avs.models.clip import Transformer, read_state_dict


class ClipTextEncoder(nn.Module):
    """CLIP's text tower, frozen: the ``<|endoftext|>`` state after ``ln_final``, times ``text_projection``
    (not normalised). Parameter names follow OpenAI's CLIP state_dict, so its weights load as they are."""

    def __init__(
        self,
        vocab_size: int,
        context_length: int,
        width: int,
        layers: int,
        heads: int,
        embed_dim: int,
        tokenizer: ClipTokenizer | None = None,
        quick_gelu: bool = True,
    ):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.zeros(context_length, width))
        self.transformer = Transformer(width, layers, heads, 4 * width, quick_gelu)
        self.ln_final = nn.LayerNorm(width)
        self.text_projection = nn.Parameter(torch.zeros(width, embed_dim))
        self.register_buffer(
            "causal_mask", torch.full((context_length, context_length), float("-inf")).triu(1), persistent=False
        )
        self.tokenizer = tokenizer
        self.requires_grad_(False)
        self.eval()

    @property
    def embed_dim(self) -> int:
        return self.text_projection.shape[1]

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.token_embedding(tokens) + self.positional_embedding
        x = self.transformer(x, self.causal_mask)
        x = self.ln_final(x)
        # <|endoftext|> has the largest id, so argmax finds it (or, in a cut text, the largest id present).
        return x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)] @ self.text_projection

    @torch.no_grad()
    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """B x embed_dim float32 embeddings of ``texts``."""
        if self.tokenizer is None:
            raise ValueError("no tokenizer attached; build the encoder with from_checkpoint")
        return self(self.tokenizer(texts).to(self.text_projection.device))

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike,
        bpe_path: str | os.PathLike,
        device: str | torch.device = "cpu",
        heads: int | None = None,
        quick_gelu: bool = True,
    ) -> "ClipTextEncoder":
        """Build the text tower from an OpenAI-CLIP-format state_dict file; sizes come from tensor shapes.

        Keys may carry a prefix (``clip_model.`` in LAFF's fine-tuned CLIP); visual-tower keys are ignored.
        ``heads`` is not visible in the shapes: it defaults to CLIP's width / 64. ``quick_gelu``: OpenAI's
        checkpoints use QuickGELU, most LAION / DataComp ones exact GELU (open_clip's ``quick_gelu`` option).
        """
        p = Path(path)
        state, prefix = _text_state(p, read_state_dict(p))
        width = state["ln_final.weight"].shape[0]
        blocks = {int(m.group(1)) for k in state if (m := re.match(r"transformer\.resblocks\.(\d+)\.", k))}
        if blocks != set(range(len(blocks))) or not blocks:
            raise InputError(
                p,
                f"text transformer blocks under {prefix or 'the top level'} are not numbered "
                f"0..N-1 (found {sorted(blocks)[:8]})",
            )
        if heads is None:  # not in the tensors: a standard CLIP's 64-wide heads
            if width % 64:
                raise InputError(
                    p,
                    f"its text tower is {width} wide, not a multiple of the 64-wide heads of a standard CLIP: give "
                    "the checkpoint's open_clip model-config JSON (--clip-config) for its number of heads",
                )
            heads = width // 64
        if heads < 1 or width % heads:
            raise InputError(p, f"text width {width} cannot be split into {heads} attention heads")
        vocab_size, _ = state["token_embedding.weight"].shape
        context_length = state["positional_embedding"].shape[0]
        tokenizer = ClipTokenizer(bpe_path, context_length)
        if tokenizer.vocab_size > vocab_size:
            raise InputError(
                bpe_path,
                f"BPE vocabulary of {tokenizer.vocab_size} tokens does not fit the "
                f"checkpoint's {vocab_size} token embeddings ({p})",
            )
        model = cls(
            vocab_size,
            context_length,
            width,
            len(blocks),
            heads,
            state["text_projection"].shape[1],
            tokenizer,
            quick_gelu,
        )
        own = model.state_dict()
        missing = [k for k in own if k not in state]
        if missing:
            raise InputError(p, f"checkpoint lacks {len(missing)} CLIP text weights (first: {first_few(missing)})")
        wrong = [
            f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
            for k, v in own.items()
            if tuple(state[k].shape) != tuple(v.shape)
        ]
        if wrong:
            raise InputError(p, f"checkpoint tensors of unexpected shape: {first_few(wrong)}")
        model.load_state_dict({k: state[k].float() for k in own})
        return model.to(device)


def _text_state(path: Path, state: Mapping) -> tuple[dict[str, torch.Tensor], str]:
    """The text-tower tensors with their common key prefix stripped, and that prefix."""
    anchor = "token_embedding.weight"
    prefixes = [k[: -len(anchor)] for k in state if k == anchor or k.endswith("." + anchor)]
    if len(prefixes) != 1:
        what = "no" if not prefixes else f"{len(prefixes)} ({', '.join(p or '<none>' for p in prefixes)})"
        raise InputError(path, f"{what} CLIP text towers found (looked for keys ending in {anchor})")
    prefix = prefixes[0]
    text = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix) and isinstance(v, torch.Tensor)}
    need = ("ln_final.weight", "positional_embedding", "text_projection")
    lacking = [prefix + k for k in need if k not in text]
    if lacking:
        raise InputError(path, f"not a CLIP checkpoint: no {', '.join(lacking)}")
    return text, prefix
