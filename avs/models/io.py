"""Model directories: config, vocabularies and weights, loadable without executing pickled code.

Layout (docs/models.md)::

    MODEL_DIR/config.json        the ModelConfig, all feature dimensions filled in
    MODEL_DIR/vocab/<kind>.json  one vocabulary per bow / gru text feature (avs.features.vocab.Vocabulary)
    MODEL_DIR/weights.pt         state_dict (tensors only; read with torch.load(weights_only=True))
    MODEL_DIR/model.json         avs version, weights sha256, training metadata (e.g. word2vec path)
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from avs import __version__
from avs.errors import InputError, first_line
from avs.formats.fileio import atomic_dir, file_sha256
from avs.models.config import ModelConfig, config_from_dict
from avs.models.laff import TextVideoModel


@dataclass
class LoadedModel:
    model: TextVideoModel
    vocabs: dict[str, object]  # text feature name -> avs.features.vocab.Vocabulary
    meta: dict = field(default_factory=dict)
    path: str | None = None

    @property
    def config(self) -> ModelConfig:
        return self.model.config

    weights_sha256: str = ""  # of weights.pt as read by load_model (checked against model.json's record)

    @property
    def fingerprint(self) -> str:
        """sha256 of the weights file (and, for a zero-shot CLIP model, of its CLIP checkpoint): identifies the
        model an index was built with."""
        weights = self.weights_sha256 or self.meta.get("weights_sha256", "")
        clip = self.meta.get("clip_sha256") if self.config.fusion == "clip" else None
        return hashlib.sha256(f"{weights}:{clip}".encode()).hexdigest() if clip else weights


def usable_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch device, refused (InputError) unless it exists here and can hold a model: cpu,
    cuda[:N] with that GPU present, or another accelerator type whose torch backend says it is available."""
    try:
        d = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise InputError(None, f"device {str(device)!r} is not a torch device (e.g. cpu, cuda, cuda:1)") from None
    if d.type == "cpu":
        return d
    if d.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(None, f"device {str(device)!r}: this torch build or machine has no CUDA device")
        count = torch.cuda.device_count()
        if d.index is not None and d.index >= count:
            raise InputError(None, f"device {str(device)!r}: there is no such GPU here ({count} CUDA device(s))")
        return d
    if d.type == "mps":
        backend = getattr(torch.backends, "mps", None)
        available = backend is not None and backend.is_available()
    else:
        backend = getattr(torch, d.type, None) if d.type != "meta" else None
        available = callable(getattr(backend, "is_available", None)) and bool(backend.is_available())
    if not available:
        raise InputError(None, f"device {str(device)!r} is not usable here (use cpu, or cuda[:N] on a GPU machine)")
    return d


def _read_json(path: Path):
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except OSError as e:
        raise InputError(path, f"cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise InputError(path, f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise InputError(path, f"not valid JSON: {e}") from None


def save_model(
    model: TextVideoModel,
    out_dir: str | os.PathLike,
    vocabs: dict[str, object] | None = None,
    meta: dict | None = None,
    force: bool = False,
) -> Path:
    """Write a model directory atomically (a temporary sibling directory renamed into place)."""
    with atomic_dir(out_dir, force) as tmp:
        write_model_files(model, tmp, vocabs, meta)
    return Path(out_dir)


def write_model_files(
    model: TextVideoModel, folder: Path, vocabs: dict[str, object] | None = None, meta: dict | None = None
) -> None:
    """The files of a model directory, written into ``folder`` (a temporary one: see :func:`save_model`)."""
    (folder / "config.json").write_text(json.dumps(model.config.to_dict(), indent=2) + "\n")
    if vocabs:
        (folder / "vocab").mkdir()
        for name, vocab in vocabs.items():
            (folder / "vocab" / f"{name}.json").write_text(json.dumps(vocab.to_dict()) + "\n")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    torch.save(state, folder / "weights.pt")
    info = {"avs_version": __version__, **(meta or {}), "weights_sha256": file_sha256(folder / "weights.pt")}
    (folder / "model.json").write_text(json.dumps(info, indent=2) + "\n")


def load_model(model_dir: str | os.PathLike, device: str | torch.device = "cpu") -> LoadedModel:
    """Read a model directory; every problem is an InputError naming the file.

    weights.pt is hashed (sha256, streamed) and must match the ``weights_sha256`` model.json records: the hash
    is the model's fingerprint, which indexes are checked against.
    """
    device = usable_device(device)
    d = Path(model_dir)
    if not d.is_dir():
        raise InputError(d, "not a model directory")
    cfg_path, weights_path, meta_path = d / "config.json", d / "weights.pt", d / "model.json"
    for p in (cfg_path, weights_path):
        if not p.exists():
            raise InputError(p, "missing from the model directory")
    data = _read_json(cfg_path)
    if not isinstance(data, dict):
        raise InputError(cfg_path, "not a model config (expected a JSON object)")
    cfg = config_from_dict(data, cfg_path)
    meta = _read_json(meta_path) if meta_path.exists() else {}
    if not isinstance(meta, dict):
        raise InputError(meta_path, "not model metadata (expected a JSON object)")
    recorded = meta.get("weights_sha256")
    if recorded is not None and not isinstance(recorded, str):
        raise InputError(meta_path, f"weights_sha256 is not a hex string: {recorded!r}")
    try:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt file, or a pickle that needs code to load
        raise InputError(weights_path, f"cannot load weights safely: {first_line(e)}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(weights_path, "not a state_dict of tensors")
    try:
        model = TextVideoModel(cfg)
    except InputError:
        raise
    except (ValueError, TypeError) as e:
        raise InputError(cfg_path, str(e)) from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensor(s) (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected tensor(s) (e.g. {unexpected[0]})")
        if wrong:
            k = wrong[0]
            parts.append(f"shape mismatch for {k}: weights {tuple(state[k].shape)}, config {tuple(expected[k].shape)}")
        raise InputError(weights_path, "weights do not match config.json: " + "; ".join(parts))
    try:
        actual = file_sha256(weights_path)
    except OSError as e:
        raise InputError(weights_path, f"cannot read: {e.strerror or e}") from None
    if recorded is not None and actual != recorded.lower():
        raise InputError(
            weights_path,
            f"sha256 {actual[:12]}... is not the {recorded[:12]}... that model.json "
            "records: the weights were replaced or damaged",
        )
    model.load_state_dict(state)
    model.to(device).eval()
    vocabs = {}
    vocab_dir = d / "vocab"
    if vocab_dir.is_dir():
        from avs.features.vocab import Vocabulary

        for p in sorted(vocab_dir.glob("*.json")):
            try:
                vocabs[p.stem] = Vocabulary.from_dict(json.loads(p.read_text()), source=p)
            except InputError:
                raise
            except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as e:
                raise InputError(p, f"not a vocabulary: {e}") from None
    return LoadedModel(model, vocabs, meta, os.fspath(d), actual)


def check_video_features(cfg: ModelConfig, dims: dict[str, int], source) -> None:
    """Refuse data whose video features do not provide what the model was trained on."""
    wanted = {f.name: f.dim for f in cfg.video}
    if cfg.frame is not None:
        wanted[cfg.frame.name] = cfg.frame.dim
    problems = [f"{n} is missing" for n in wanted if n not in dims]
    problems += [
        f"{n} has dim {dims[n]}, the model expects {d}"
        for n, d in wanted.items()
        if n in dims and d is not None and dims[n] != d
    ]
    if problems:
        raise InputError(source, f"features do not match model {cfg.name!r}: " + "; ".join(problems))
