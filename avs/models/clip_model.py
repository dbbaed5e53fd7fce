"""Zero-shot CLIP as a model directory: the CLIP text embedding of a query against the CLIP image embedding of
each shot (``avs extract`` stores them), from one checkpoint, with no training. Such a directory indexes and
searches like any LAFF model (``avs index``, ``avs search``), and LAFF models can be trained on the same store.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from avs.errors import InputError, first_line
from avs.formats.fileio import file_sha256
from avs.models.clip_vision import ClipVisionConfig
from avs.models.config import config_from_dict
from avs.models.io import LoadedModel, save_model
from avs.models.laff import TextVideoModel


def clip_text_options(clip_config: str | os.PathLike | None) -> dict:
    """The text tower settings the shapes of a checkpoint do not tell (``heads``, ``quick_gelu``), from a
    standard architecture name (``ViT-B-32``; ``-quickgelu`` for OpenAI's weights) or an open_clip model-config
    JSON; without one, OpenAI's: width / 64 heads and QuickGELU."""
    if clip_config is None:
        return {"heads": None, "quick_gelu": True}
    if not Path(clip_config).is_file():
        return {"heads": None, "quick_gelu": ClipVisionConfig.from_name(os.fspath(clip_config)).quick_gelu}
    try:
        cfg = json.loads(Path(clip_config).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(clip_config, f"not an open_clip model config ({first_line(e)})") from None
    text = cfg.get("text_cfg") if isinstance(cfg, dict) else None
    if not isinstance(text, dict):
        raise InputError(clip_config, "not an open_clip model config: no text_cfg")
    heads, quick_gelu = text.get("heads", 8), cfg.get("quick_gelu", False)  # open_clip's defaults
    if not isinstance(heads, int) or isinstance(heads, bool) or heads < 1 or not isinstance(quick_gelu, bool):
        raise InputError(clip_config, f"text_cfg heads {heads!r} / quick_gelu {quick_gelu!r} are not usable")
    return {"heads": heads, "quick_gelu": quick_gelu}


def make_clip_model(
    checkpoint: str | os.PathLike,
    bpe: str | os.PathLike,
    out: str | os.PathLike,
    feature: str = "clip",
    clip_config: str | os.PathLike | None = None,
    force: bool = False,
) -> Path:
    """Write a zero-shot CLIP model directory for ``checkpoint`` (a CLIP state dict; its BPE vocabulary
    ``bpe``), scoring the store's video feature ``feature`` (the image embeddings ``avs extract`` wrote with the
    same checkpoint). ``clip_config`` as for :func:`clip_text_options`. The checkpoint is recorded by path and
    sha256, not copied."""
    from avs.models.clip_text import ClipTextEncoder

    options = clip_text_options(clip_config)
    text = ClipTextEncoder.from_checkpoint(checkpoint, bpe, **options)  # the text tower must load: it is the model
    dim = text.embed_dim
    cfg = config_from_dict(
        {
            "name": "clip",
            "fusion": "clip",
            "description": f"zero-shot CLIP ({Path(checkpoint).name}): text and image embeddings compared as they are",
            "space_dim": dim,
            "heads": 1,
            "dropout": 0.0,
            "video": [{"name": feature, "dim": dim}],
            "text": [{"name": "clip_text", "kind": "clip", "dim": dim}],
        },
        source=checkpoint,
    )
    meta = {
        "clip_checkpoint": os.fspath(Path(checkpoint).resolve()),
        "clip_bpe": os.fspath(Path(bpe).resolve()),
        "clip_sha256": file_sha256(checkpoint),
        "clip_text": options,
    }
    return save_model(TextVideoModel(cfg), out, meta=meta, force=force)


def check_clip_checkpoint(loaded: LoadedModel, checkpoint: str | os.PathLike) -> None:
    """Refuse a CLIP checkpoint other than the one a zero-shot CLIP model was made from: its text embeddings
    would not be in the space of the indexed image embeddings."""
    recorded = loaded.meta.get("clip_sha256")
    if loaded.config.fusion != "clip" or not recorded:
        return
    if not Path(checkpoint).is_file():
        raise InputError(checkpoint, "no such file (the CLIP checkpoint this model was made from)")
    if file_sha256(checkpoint) != recorded:
        raise InputError(
            checkpoint,
            f"is not the CLIP checkpoint model {loaded.path} was made from (sha256 differs): its text embeddings "
            "would not be in the space of the indexed images",
        )
