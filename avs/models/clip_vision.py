"""CLIP's ViT image tower and its image preprocessing, numerically equal to open_clip's, without open_clip or
torchvision.

The tower reads the ``visual.*`` tensors of OpenAI CLIP and open_clip state dicts (the two share that layout for
ViT towers), so a checkpoint that gives :class:`avs.models.clip_text.ClipTextEncoder` its text embeddings gives
the image embeddings of the same space. Only plain ViT towers are built: class-token pooling, learned (or fixed
sin-cos) positional embedding, ``ln_pre``, pre-norm blocks, ``ln_post`` and ``proj``. ResNet, timm, attentional
pooling and layer-scale towers are refused rather than computed differently.

Activation: OpenAI's checkpoints use QuickGELU (open_clip's ``-quickgelu`` configs), most LAION / DataComp
checkpoints exact GELU. Shapes do not tell them apart; where the architecture is inferred from a state dict,
QuickGELU is assumed, as OpenAI's ``build_model`` and the text tower do, and ``quick_gelu=False`` overrides it.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from avs.errors import InputError, first_few, first_line
from avs.models.clip import Transformer, read_state_dict

OPENAI_DATASET_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_DATASET_STD = (0.26862954, 0.26130258, 0.27577711)

# open_clip's model_configs/<name>.json: embed_dim, then vision_cfg image_size, patch_size, width, layers,
# head_width, mlp_ratio.
_ARCHITECTURES = {
    "ViT-B-32": (512, 224, 32, 768, 12, 64, 4.0),
    "ViT-B-16": (512, 224, 16, 768, 12, 64, 4.0),
    "ViT-L-14": (768, 224, 14, 1024, 24, 64, 4.0),
    "ViT-L-14-336": (768, 336, 14, 1024, 24, 64, 4.0),
    "ViT-H-14": (1024, 224, 14, 1280, 32, 80, 4.0),
    "ViT-g-14": (1024, 224, 14, 1408, 40, 88, 4.3637),
    "ViT-bigG-14": (1280, 224, 14, 1664, 48, 104, 4.9231),
}

# vision_cfg options that change the computed embedding, with the values this tower implements.
_FIXED_OPTIONS = {
    "ls_init_value": (None,),
    "attentional_pool": (False,),
    "no_ln_pre": (False,),
    "pool_type": ("tok",),
    "act_kwargs": (None,),
    "norm_kwargs": (None,),
    "block_type": (None, "default"),
    "qk_norm": (False,),
    "scaled_cosine_attn": (False,),
    "scale_heads": (False,),
    "scale_attn_inner": (False,),
    "scale_attn": (False,),
    "scale_fc": (False,),
    "timm_model_name": (None,),
    "image_seq_len": (None,),
}
# Options read into ClipVisionConfig, and options without effect at inference here: patch dropout trains only,
# both positional embedding types are stored tensors, the pooler settings need attentional_pool, and with
# class-token pooling LayerNorm (per token) before or after pooling is the same. timm_* options need
# timm_model_name.
_SHAPE_OPTIONS = {"image_size", "patch_size", "width", "layers", "head_width", "mlp_ratio"}
_INERT_OPTIONS = {
    "patch_dropout",
    "output_tokens",
    "pos_embed_type",
    "final_ln_after_pool",
    "attn_pooler_queries",
    "attn_pooler_heads",
}


@dataclass(frozen=True)
class ClipVisionConfig:
    """The shape of a CLIP ViT image tower; the MLP width is ``int(width * mlp_ratio)`` as in open_clip."""

    image_size: int
    patch_size: int
    width: int
    layers: int
    heads: int
    embed_dim: int
    mlp_ratio: float = 4.0
    quick_gelu: bool = False

    def __post_init__(self) -> None:
        for name in ("image_size", "patch_size", "width", "layers", "heads", "embed_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.width % self.heads:
            raise ValueError(f"width {self.width} cannot be split into {self.heads} attention heads")
        if self.image_size % self.patch_size:
            raise ValueError(f"image size {self.image_size} is not a multiple of the patch size {self.patch_size}")
        if not self.mlp_width >= 1:
            raise ValueError(f"mlp_ratio {self.mlp_ratio!r} gives no MLP units")

    @property
    def head_width(self) -> int:
        return self.width // self.heads

    @property
    def mlp_width(self) -> int:
        return int(self.width * self.mlp_ratio)

    @property
    def grid_size(self) -> int:
        return self.image_size // self.patch_size

    @classmethod
    def from_name(cls, name: str) -> "ClipVisionConfig":
        """A standard architecture by its open_clip name; the ``-quickgelu`` suffix (OpenAI's weights, and a few
        others) selects QuickGELU."""
        base = name.removesuffix("-quickgelu")
        if base not in _ARCHITECTURES:
            raise InputError(
                None,
                f"unknown CLIP architecture {name!r}; known: {', '.join(_ARCHITECTURES)} (each also with -quickgelu)",
            )
        embed_dim, image_size, patch_size, width, layers, head_width, mlp_ratio = _ARCHITECTURES[base]
        return cls(
            image_size, patch_size, width, layers, width // head_width, embed_dim, mlp_ratio, quick_gelu=base != name
        )

    @classmethod
    def from_open_clip_json(cls, path_or_dict: str | os.PathLike | Mapping) -> "ClipVisionConfig":
        """From an open_clip model config (``model_configs/*.json``, or the same as a dict)."""
        source = None if isinstance(path_or_dict, Mapping) else Path(path_or_dict)
        if source is None:
            cfg = path_or_dict
        else:
            try:
                cfg = json.loads(source.read_text(encoding="utf-8"))
            except FileNotFoundError:
                raise InputError(source, "no such file") from None
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
                raise InputError(source, f"not an open_clip model config ({first_line(e)})") from None
        vision = cfg.get("vision_cfg") if isinstance(cfg, Mapping) else None
        if not isinstance(vision, Mapping) or "embed_dim" not in cfg:
            raise InputError(source, "not an open_clip model config: expected an object with embed_dim and vision_cfg")
        lacking = [k for k in ("image_size", "patch_size", "width", "layers") if k not in vision]
        if lacking:
            raise InputError(source, f"vision_cfg lacks {', '.join(lacking)}")
        for key, value in vision.items():
            if key in _FIXED_OPTIONS and value not in _FIXED_OPTIONS[key]:
                raise InputError(
                    source,
                    f"vision_cfg {key}={value!r}: the built-in CLIP image tower implements only "
                    f"{' or '.join(map(repr, _FIXED_OPTIONS[key]))}",
                )
            if not (key in _FIXED_OPTIONS or key in _SHAPE_OPTIONS or key in _INERT_OPTIONS or key.startswith("timm_")):
                raise InputError(source, f"vision_cfg option {key!r} is not known to the built-in CLIP image tower")
        quick_gelu = cfg.get("quick_gelu", False)
        if not isinstance(quick_gelu, bool):
            raise InputError(source, f"quick_gelu must be true or false, got {quick_gelu!r}")
        image_size = vision["image_size"]
        if isinstance(image_size, (list, tuple)):
            if len(image_size) != 2 or image_size[0] != image_size[1]:
                raise InputError(source, f"vision_cfg image_size {image_size!r}: only square images are supported")
            image_size = image_size[0]
        if not isinstance(vision["layers"], int):  # a list of stage depths is a ResNet tower
            raise InputError(source, f"vision_cfg layers={vision['layers']!r}: not a ViT tower")
        width, head_width = vision["width"], vision.get("head_width", 64)
        sizes = {"embed_dim": cfg["embed_dim"], "image_size": image_size, "patch_size": vision["patch_size"]}
        sizes.update({"width": width, "layers": vision["layers"], "head_width": head_width})
        for key, value in sizes.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(source, f"{key} must be a positive whole number, not {value!r}")
        mlp_ratio = vision.get("mlp_ratio", 4.0)
        if not isinstance(mlp_ratio, (int, float)) or isinstance(mlp_ratio, bool) or not mlp_ratio > 0:
            raise InputError(source, f"mlp_ratio must be a positive number, not {mlp_ratio!r}")
        try:
            return cls(
                image_size,
                vision["patch_size"],
                width,
                vision["layers"],
                width // head_width,
                cfg["embed_dim"],
                float(vision.get("mlp_ratio", 4.0)),
                quick_gelu,
            )
        except (TypeError, ValueError, ZeroDivisionError) as e:
            raise InputError(source, f"vision_cfg: {e}") from None

    @classmethod
    def infer_from_state_dict(
        cls, state: Mapping, heads: int | None = None, quick_gelu: bool = True, source: str | os.PathLike | None = None
    ) -> "ClipVisionConfig":
        """The shape of the ViT tower in a CLIP state dict (keys ``[prefix]visual.*``), as OpenAI's ``build_model``
        reads it. Not visible in the shapes: ``heads`` (default width / 64, CLIP's head width) and the activation
        (default QuickGELU, see the module docstring). ``source`` names the file in errors."""
        visual, prefix = _visual_state(state, source)
        blocks = {int(m.group(1)) for k in visual if (m := re.match(r"transformer\.resblocks\.(\d+)\.", k))}
        if not blocks or blocks != set(range(len(blocks))):
            raise InputError(
                source, f"image transformer blocks under {prefix} are not numbered 0..N-1 (found {sorted(blocks)[:8]})"
            )
        for key in ("proj", "transformer.resblocks.0.mlp.c_fc.weight"):
            if key not in visual:
                raise InputError(source, f"not a CLIP ViT image tower: no {prefix}{key}")
        if visual["conv1.weight"].ndim != 4:
            raise InputError(source, f"not a CLIP ViT image tower: {prefix}conv1.weight is not a 2-D convolution")
        width, _, patch_size, _ = visual["conv1.weight"].shape
        tokens = visual["positional_embedding"].shape[0]
        grid = math.isqrt(tokens - 1)
        if grid * grid + 1 != tokens:
            raise InputError(
                source,
                f"{prefix}positional_embedding has {tokens} rows, not a square grid of patches plus the class token",
            )
        mlp_width = visual["transformer.resblocks.0.mlp.c_fc.weight"].shape[0]
        mlp_ratio = mlp_width / width
        if int(width * mlp_ratio) < mlp_width:  # the quotient can round down by one ulp; open_clip truncates
            mlp_ratio = math.nextafter(mlp_ratio, math.inf)
        try:
            return cls(
                patch_size * grid,
                patch_size,
                width,
                len(blocks),
                heads if heads is not None else width // 64,
                visual["proj"].shape[-1],
                mlp_ratio,
                quick_gelu,
            )
        except ValueError as e:
            raise InputError(source, f"image tower under {prefix}: {e}") from None


def _visual_state(state: Mapping, source: str | os.PathLike | None) -> tuple[dict[str, torch.Tensor], str]:
    """The image-tower tensors with their key prefix (``visual.`` and whatever precedes it) stripped, and that
    prefix."""
    anchor = "visual.class_embedding"
    prefixes = [k[: -len("class_embedding")] for k in state if k == anchor or k.endswith("." + anchor)]
    if len(prefixes) != 1:
        if not prefixes and any(k == "visual.conv1.weight" or k.endswith(".visual.conv1.weight") for k in state):
            raise InputError(
                source, "the CLIP image tower is not a ViT (a ResNet tower?); only ViT towers are supported"
            )
        what = "no" if not prefixes else f"{len(prefixes)} ({', '.join(prefixes)})"
        raise InputError(source, f"{what} CLIP ViT image towers found (looked for keys ending in {anchor})")
    prefix = prefixes[0]
    visual = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix) and isinstance(v, torch.Tensor)}
    lacking = [prefix + k for k in ("conv1.weight", "positional_embedding") if k not in visual]
    if lacking:
        raise InputError(source, f"not a CLIP ViT image tower: no {', '.join(lacking)}")
    return visual, prefix


class ClipVisionEncoder(nn.Module):
    """CLIP's ViT image tower, frozen: ``ln_post`` of the class token after the transformer, times ``proj`` (not
    normalised). Parameter names are open_clip's ``model.visual.*`` (= OpenAI's) without ``visual.``."""

    def __init__(self, config: ClipVisionConfig):
        super().__init__()
        self.config = config
        self.conv1 = nn.Conv2d(3, config.width, kernel_size=config.patch_size, stride=config.patch_size, bias=False)
        self.class_embedding = nn.Parameter(torch.zeros(config.width))
        self.positional_embedding = nn.Parameter(torch.zeros(config.grid_size**2 + 1, config.width))
        self.ln_pre = nn.LayerNorm(config.width)
        self.transformer = Transformer(config.width, config.layers, config.heads, config.mlp_width, config.quick_gelu)
        self.ln_post = nn.LayerNorm(config.width)
        self.proj = nn.Parameter(torch.zeros(config.width, config.embed_dim))
        self.requires_grad_(False)
        self.eval()

    @property
    def embed_dim(self) -> int:
        return self.config.embed_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.conv1(images).flatten(2).transpose(1, 2)  # row-major patches: N x grid² x width
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = self.ln_pre(torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype))
        x = self.transformer(x)
        return self.ln_post(x[:, 0]) @ self.proj


@torch.no_grad()
def encode_images(encoder: ClipVisionEncoder, images: torch.Tensor, normalize: bool = False) -> torch.Tensor:
    """N x embed_dim embeddings of preprocessed images (N x 3 x S x S, S the tower's image size), on the encoder's
    device; L2-normalised rows with ``normalize``."""
    size = encoder.config.image_size
    if images.ndim != 4 or tuple(images.shape[1:]) != (3, size, size):
        raise ValueError(f"expected images of shape N x 3 x {size} x {size}, got {tuple(images.shape)}")
    x = encoder(images.to(device=encoder.proj.device, dtype=encoder.proj.dtype))
    return F.normalize(x, dim=-1) if normalize else x


def load_clip_vision(
    path: str | os.PathLike,
    config: ClipVisionConfig | str | None = None,
    *,
    heads: int | None = None,
    quick_gelu: bool | None = None,
    device: str | torch.device = "cpu",
) -> ClipVisionEncoder:
    """The ViT image tower of a CLIP state dict file (OpenAI or open_clip layout, optionally under
    ``state_dict``/``model`` and behind a key prefix such as ``clip_model.``), float32 on ``device``.

    ``config`` (or an architecture name for :meth:`ClipVisionConfig.from_name`) is checked against the tensors;
    without it the shape is inferred, with ``heads`` and ``quick_gelu`` as in
    :meth:`ClipVisionConfig.infer_from_state_dict`. Every ``visual.*`` tensor must be used, and every parameter
    found. The head count and the activation are not in the shapes, so they cannot be checked.
    """
    p = Path(path)
    if config is not None and (heads is not None or quick_gelu is not None):
        raise ValueError("heads and quick_gelu apply when the config is inferred; put them in the config instead")
    state = read_state_dict(p)
    visual, prefix = _visual_state(state, p)
    if config is None:
        config = ClipVisionConfig.infer_from_state_dict(state, heads, True if quick_gelu is None else quick_gelu, p)
    elif isinstance(config, str):
        config = ClipVisionConfig.from_name(config)
    with torch.device("meta"):  # no memory or init time for weights about to be replaced
        model = ClipVisionEncoder(config)
    own = model.state_dict()
    missing = [prefix + k for k in own if k not in visual]
    unknown = [prefix + k for k in visual if k not in own]
    if missing or unknown:
        parts = ([f"lacks {len(missing)} of its tensors ({first_few(missing)})"] if missing else []) + (
            [f"has {len(unknown)} tensors it does not use ({first_few(unknown)})"] if unknown else []
        )
        raise InputError(p, f"not the CLIP ViT image tower of {_describe(config)}: the checkpoint {'; '.join(parts)}")
    wrong = [
        f"{prefix}{k} {tuple(visual[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if visual[k].shape != v.shape
    ]
    if wrong:
        raise InputError(p, f"checkpoint tensors do not fit {_describe(config)}: {first_few(wrong)}")
    model.load_state_dict({k: visual[k].float() for k in own}, strict=True, assign=True)
    return model.to(device)  # assign=True keeps the module's requires_grad=False


def _describe(config: ClipVisionConfig) -> str:
    return ", ".join(f"{k}={v}" for k, v in asdict(config).items())


# ----------------------------------------------------------------------------------------------------------
# Preprocessing: open_clip's preprocess_val (torchvision Resize(S, bicubic) on a PIL image, CenterCrop(S),
# convert("RGB"), ToTensor, Normalize with OpenAI's mean and std)


def preprocess_image(image, image_size: int) -> torch.Tensor:
    """3 x S x S float32 (S = ``image_size``) for a PIL image, as open_clip's ``preprocess_val`` makes it."""
    from PIL import Image  # Pillow is needed for preprocessing only

    width, height = image.size
    if width < 1 or height < 1:
        raise ValueError(f"empty image ({width}x{height})")
    # torchvision's _compute_resized_output_size: the short side becomes S, the long side is truncated.
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = image_size, int(image_size * long / short)
    new_w, new_h = (new_short, new_long) if width <= height else (new_long, new_short)
    # Pillow resizes in the image's own mode and returns a copy when the size is unchanged, as torchvision does.
    image = image.resize((new_w, new_h), Image.Resampling.BICUBIC)
    left, top = int(round((new_w - image_size) / 2.0)), int(round((new_h - image_size) / 2.0))
    image = image.crop((left, top, left + image_size, top + image_size)).convert("RGB")
    x = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).float().div(255)
    mean = torch.tensor(OPENAI_DATASET_MEAN, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(OPENAI_DATASET_STD, dtype=torch.float32).view(3, 1, 1)
    return (x - mean) / std


def preprocess_array(frame: np.ndarray, image_size: int) -> torch.Tensor:
    """:func:`preprocess_image` of an H x W x 3 uint8 RGB array (a decoded video frame)."""
    from PIL import Image

    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        what = f"{frame.dtype} array of shape {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
        raise ValueError(f"expected an H x W x 3 uint8 RGB array, got a {what}")
    return preprocess_image(Image.fromarray(np.ascontiguousarray(frame)), image_size)
