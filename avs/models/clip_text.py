"""The text side of LAFF: tokenizer, vocabularies and the per-caption text features (laff-method.md §2).

Features, each keyed in :meth:`TextFeaturizer.featurize`'s output as LAFF's text encoders consume them:

* ``bow``  -- raw counts over the ``bow_nsw`` vocabulary (stop words removed, words seen >= threshold times).
* ``w2v``  -- mean word2vec vector of the distinct non-stop words of a caption (zero if none is known).
* ``gru``  -- token ids (``<start>`` words ``<end>``) for :class:`GruTextEncoder`, which is trained.
* ``clip`` -- a frozen CLIP text embedding: precomputed per caption id, or computed by :class:`ClipTextEncoder`
  from a checkpoint the user supplies. Never one silently in place of the other (laff-method.md §14.4).
* ``precomputed`` -- any other vector read by caption or topic id.

``docs/text-features.md`` lists the accepted file formats and where this differs from the official code.
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Mapping, Sequence

import torch
from torch import nn

from avs.errors import InputError
from avs.features.clip_tokenizer import ClipTokenizer
from avs.formats.store import first_few


class _QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class _ResidualBlock(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            OrderedDict(
                [("c_fc", nn.Linear(width, 4 * width)), ("gelu", _QuickGELU()), ("c_proj", nn.Linear(4 * width, width))]
            )
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class _Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int):
        super().__init__()
        self.resblocks = nn.ModuleList(_ResidualBlock(width, heads) for _ in range(layers))


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
    ):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.zeros(context_length, width))
        self.transformer = _Transformer(width, layers, heads)
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
        for block in self.transformer.resblocks:
            x = block(x, self.causal_mask)
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
    ) -> "ClipTextEncoder":
        """Build the text tower from an OpenAI-CLIP-format state_dict file; sizes come from tensor shapes.

        Keys may carry a prefix (``clip_model.`` in LAFF's fine-tuned CLIP); visual-tower keys are ignored.
        ``heads`` is not visible in the shapes: it defaults to CLIP's width / 64.
        """
        p = Path(path)
        state, prefix = _text_state(p, _load_state_dict(p))
        width = state["ln_final.weight"].shape[0]
        blocks = {int(m.group(1)) for k in state if (m := re.match(r"transformer\.resblocks\.(\d+)\.", k))}
        if blocks != set(range(len(blocks))) or not blocks:
            raise InputError(
                p,
                f"text transformer blocks under {prefix or 'the top level'} are not numbered "
                f"0..N-1 (found {sorted(blocks)[:8]})",
            )
        heads = heads if heads is not None else width // 64
        if heads < 1 or width % heads:
            raise InputError(p, f"width {width} cannot be split into {heads} attention heads")
        vocab_size, _ = state["token_embedding.weight"].shape
        context_length = state["positional_embedding"].shape[0]
        tokenizer = ClipTokenizer(bpe_path, context_length)
        if tokenizer.vocab_size > vocab_size:
            raise InputError(
                bpe_path,
                f"BPE vocabulary of {tokenizer.vocab_size} tokens does not fit the "
                f"checkpoint's {vocab_size} token embeddings ({p})",
            )
        model = cls(vocab_size, context_length, width, len(blocks), heads, state["text_projection"].shape[1], tokenizer)
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


def _load_state_dict(path: Path) -> Mapping:
    if not path.is_file():
        raise InputError(path, "no such file")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
        if any("/code/" in n or n.endswith("/constants.pkl") for n in names):
            raise InputError(
                path,
                "is a TorchScript archive (like OpenAI's released CLIP .pt files); loading "
                "one runs code stored in it, which avs does not do. In an environment you trust, "
                "export its weights: torch.save(torch.jit.load(PATH, map_location='cpu')"
                ".state_dict(), 'clip_state_dict.pt'), and pass that file",
            )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only" in str(e).lower():
            raise InputError(
                path,
                "holds pickled Python objects besides tensors (a whole training "
                "checkpoint?); avs loads tensors only. Save just the weights, e.g. "
                "torch.save(ckpt['model'], 'clip_state_dict.pt'), and pass that file",
            ) from None
        raise InputError(path, f"not a PyTorch checkpoint ({e})") from None
    except Exception as e:  # junk bytes fail inside the unpickler with arbitrary exception types
        raise InputError(
            path, f"not a PyTorch checkpoint ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
        ) from None
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model"):  # training checkpoints keep the weights under one of these
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InputError(path, "not a state_dict (expected a mapping of parameter names to tensors)")
    return obj


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
