"""Declarative model configurations: one TOML file per variant under ``avs/models/configs/``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from importlib import resources
from pathlib import Path

import tomllib

from avs.errors import InputError
from avs.features.featurize import TextFeatureSpec

FUSIONS = ("laff", "mhsa", "attention_free", "static", "concat", "je", "clip")


@dataclass(frozen=True)
class VideoFeature:
    """A pre-extracted video feature, named as in the collection store."""

    name: str
    dim: int | None = None  # None: taken from the data
    no_transform: bool = False  # tile to the space dimension + BatchNorm, no Linear (CLIP features)


@dataclass(frozen=True)
class FrameFeature:
    """LAFF-ml: a frame-level feature fused by a single-head LAFF into one more video-level vector."""

    name: str
    dim: int | None = None


@dataclass(frozen=True)
class TextFeature(TextFeatureSpec):
    """A text feature of the model (``dim``: vocabulary size for bow/gru, else vector size; None: from data)."""

    no_transform: bool = False  # tile to the space dimension + BatchNorm, no Linear (CLIP features)


@dataclass(frozen=True)
class ModelConfig:
    """Everything that defines an architecture (not its weights).

    ``fusion``: laff (multi-head LAFF; ``heads=1`` is the single-head block), mhsa (projection-free multi-head
    self-attention), attention_free (plain average), static (learned input-independent weights), concat
    (W2VV++: concatenated raw features, one projection), je (one joint space per video feature, fixed weights),
    clip (zero-shot CLIP: the image feature and the CLIP text embedding of one checkpoint compared as they are,
    no learned parameters; see :func:`avs.models.clip_model.make_clip_model`).
    """

    name: str
    fusion: str
    video: tuple[VideoFeature, ...]
    text: tuple[TextFeature, ...]
    frame: FrameFeature | None = None
    space_dim: int = 4096
    heads: int = 8
    dropout: float = 0.2
    batch_norm: bool = False
    gru_embed: int = 500
    gru_hidden: int = 1024
    margin: float = 0.2
    space_weights: tuple[float, ...] | None = None  # je: fixed score weights per space (default uniform)
    description: str = ""

    @property
    def spaces(self) -> int:
        """Number of embedding spaces the model scores in."""
        if self.fusion == "je":
            return len(self.video) + (self.frame is not None)
        return self.heads

    @property
    def space_size(self) -> int:
        return self.space_dim if self.fusion == "je" else self.space_dim // self.heads

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: v for k, v in d.items() if v is not None}

    def with_dims(self, video: dict[str, int] | None = None, text: dict[str, int] | None = None) -> "ModelConfig":
        """A copy with feature dimensions filled in (or overridden) by name."""
        video, text = video or {}, text or {}
        unknown = set(video) - {f.name for f in self.video} - ({self.frame.name} if self.frame else set())
        unknown |= set(text) - {f.name for f in self.text}
        if unknown:
            raise InputError(f"model config {self.name}", f"no feature named {', '.join(sorted(unknown))}")
        frame = self.frame and replace(self.frame, dim=video.get(self.frame.name, self.frame.dim))
        return replace(
            self,
            frame=frame,
            video=tuple(replace(f, dim=video.get(f.name, f.dim)) for f in self.video),
            text=tuple(replace(f, dim=text.get(f.name, f.dim)) for f in self.text),
        )


# the scalar settings and the types they need (bool is an int in Python: refused where a number is wanted)
_SCALARS = {
    "name": str,
    "fusion": str,
    "description": str,
    "space_dim": int,
    "heads": int,
    "gru_embed": int,
    "gru_hidden": int,
    "dropout": float,
    "margin": float,
    "batch_norm": bool,
}


def _type_problems(data: dict) -> list[str]:
    problems = []
    for key, kind in _SCALARS.items():
        if key not in data:
            continue
        v = data[key]
        ok = (
            isinstance(v, bool)
            if kind is bool
            else (isinstance(v, (int, float)) and not isinstance(v, bool))
            if kind is float
            else (isinstance(v, int) and not isinstance(v, bool))
            if kind is int
            else isinstance(v, kind)
        )
        if not ok:
            problems.append(f"{key} = {v!r} is not {'a ' + kind.__name__ if kind is not int else 'an integer'}")
    for key in ("space_dim", "heads", "gru_embed", "gru_hidden"):
        if isinstance(data.get(key), int) and not isinstance(data[key], bool) and data[key] < 1:
            problems.append(f"{key} = {data[key]} is not positive")
    for key in ("video", "text"):
        if key in data and not (isinstance(data[key], (list, tuple)) and all(isinstance(v, dict) for v in data[key])):
            problems.append(f"{key} is not a list of tables")
    if "frame" in data and not isinstance(data["frame"], dict):
        problems.append("frame is not a table")
    return problems


def _build(data: dict, source) -> ModelConfig:
    problems = _type_problems(data)
    if problems:
        raise InputError(source, "invalid model config: " + "; ".join(problems))
    try:
        video = tuple(VideoFeature(**v) for v in data.pop("video", []))
        text = tuple(TextFeature(**t) for t in data.pop("text", []))
        frame = FrameFeature(**data.pop("frame")) if "frame" in data else None
        if "space_weights" in data:
            data["space_weights"] = tuple(float(w) for w in data["space_weights"])
        cfg = ModelConfig(video=video, text=text, frame=frame, **data)
    except InputError as e:
        raise (e if e.path is not None else InputError(source, e.problem)) from None
    except (TypeError, ValueError) as e:
        raise InputError(source, f"invalid model config: {e}") from None
    problems = []
    if cfg.fusion not in FUSIONS:
        problems.append(f"fusion {cfg.fusion!r} is not one of {', '.join(FUSIONS)}")
    if not cfg.video or not cfg.text:
        problems.append("needs at least one video and one text feature")
    if cfg.fusion != "je" and cfg.space_dim % cfg.heads:
        problems.append(f"space_dim {cfg.space_dim} is not divisible by heads {cfg.heads}")
    names = [f.name for f in cfg.video] + [t.name for t in cfg.text] + ([cfg.frame.name] if cfg.frame else [])
    if len(set(names)) != len(names):
        problems.append("feature names must be unique")
    if cfg.fusion == "clip":
        problems += _clip_problems(cfg)
    if cfg.space_weights is not None and len(cfg.space_weights) != cfg.spaces:
        problems.append(f"space_weights has {len(cfg.space_weights)} values for {cfg.spaces} spaces")
    if problems:
        raise InputError(source, "invalid model config: " + "; ".join(problems))
    return cfg


def _clip_problems(cfg: ModelConfig) -> list[str]:
    if len(cfg.video) != 1 or len(cfg.text) != 1 or cfg.text[0].kind != "clip" or cfg.frame is not None:
        return ["fusion clip compares one video (image) feature with one text feature of kind clip"]
    dims = {f.dim for f in (*cfg.video, *cfg.text)} - {None}
    if cfg.heads != 1 or len(dims) > 1 or (dims and cfg.space_dim not in dims):
        return ["fusion clip: one space (heads = 1) whose space_dim is the CLIP embedding width of both features"]
    return []


def config_from_dict(data: dict, source=None) -> ModelConfig:
    return _build(dict(data), source)


def _configs_dir() -> Path:
    return Path(str(resources.files("avs.models") / "configs"))


def list_configs() -> list[str]:
    """Names of the shipped configurations."""
    return sorted(p.stem for p in _configs_dir().glob("*.toml"))


def load_config(name_or_path: str | Path) -> ModelConfig:
    """A shipped configuration by name (``laff``) or a TOML file by path."""
    p = Path(name_or_path)
    if not p.suffix:
        p = _configs_dir() / f"{name_or_path}.toml"
        if not p.exists():
            raise InputError(name_or_path, f"no such model config (shipped: {', '.join(list_configs())})")
    try:
        data = tomllib.loads(p.read_bytes().decode("utf-8"))
    except OSError as e:
        raise InputError(p, e.strerror or str(e)) from None
    except UnicodeDecodeError as e:
        raise InputError(p, f"not UTF-8 text ({e.reason} at byte {e.start}); TOML files are UTF-8") from None
    except tomllib.TOMLDecodeError as e:
        raise InputError(p, f"not valid TOML: {e}") from None
    data.setdefault("name", p.stem)
    return _build(data, p)


__all__ = [
    "ModelConfig",
    "VideoFeature",
    "TextFeature",
    "FrameFeature",
    "load_config",
    "list_configs",
    "config_from_dict",
    "FUSIONS",
]
