"""Import LAFF models trained with the official code (ruc-aimc-lab/LAFF) and embed pre-featurised inputs.

Official checkpoints are full pickles: besides the state_dict they hold the training config object, whose
class lives in the official repository. They are read with :class:`RestrictedUnpickler`, which rebuilds
tensors and plain containers and turns every other class into an inert :class:`PickledObject` that records
what the pickle said about it and never runs or imports anything. ``docs/official-import.md`` lists the key
mapping and the parameters that are ignored.
"""

from __future__ import annotations

import os
import pickle
import re
import types
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from avs.errors import InputError, first_line
from avs.models.config import ModelConfig, TextFeature, VideoFeature
from avs.models.io import save_model
from avs.models.laff import TextVideoModel

# ----------------------------------------------------------------------------------------------------------
# Restricted unpickling

# Everything a state_dict, an optimizer state or a vocabulary needs; nothing that can run arbitrary code.
_ALLOWED_GLOBALS = {
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_tensor"),
    ("collections", "OrderedDict"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
}


class PickledObject:
    """An object of a class outside the allowlist, reduced to the data the pickle carried.

    ``args`` are the constructor (or reduce) arguments, ``state`` what ``__setstate__`` would have received,
    ``items`` what list/dict item opcodes would have added. The class's own code never runs.
    """

    pickled_module = ""
    pickled_name = ""

    def __new__(cls, *args, **kwargs):
        obj = super().__new__(cls)
        obj.args, obj.kwargs, obj.state, obj.items = args, kwargs, None, []
        return obj

    def __init__(self, *args, **kwargs):  # __new__ did the recording; pickle's REDUCE calls both
        pass

    def __setstate__(self, state):
        self.state = state

    def append(self, value):
        self.items.append(value)

    def extend(self, values):
        self.items.extend(values)

    def __setitem__(self, key, value):
        self.items.append((key, value))

    @property
    def attributes(self) -> dict:
        """The instance attributes the pickle restored (``__dict__`` state, slots merged in)."""
        state = self.state
        if isinstance(state, tuple) and len(state) == 2:
            merged = dict(state[0] or {})
            merged.update(state[1] or {})
            return merged
        return dict(state) if isinstance(state, dict) else {}

    def __repr__(self) -> str:
        return f"<pickled {self.pickled_module}.{self.pickled_name}>"


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that imports nothing beyond :data:`_ALLOWED_GLOBALS`; other globals become inert records."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._records: dict[tuple[str, str], type] = {}

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        key = (module, name)
        if key not in self._records:
            self._records[key] = type(
                "PickledObject", (PickledObject,), {"pickled_module": module, "pickled_name": name}
            )
        return self._records[key]


def _restricted_load(f, **kwargs):
    return RestrictedUnpickler(f, **kwargs).load()


# torch.load subclasses ``pickle_module.Unpickler`` and reads the legacy format's headers with ``load``.
_PICKLE_MODULE = types.SimpleNamespace(
    __name__="avs.official.restricted", Unpickler=RestrictedUnpickler, load=_restricted_load
)


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """The state_dict of an official checkpoint (``model_best.pth.tar`` or a bare state_dict file) and the
    checkpoint's other entries (``config``, ``opt`` as :class:`PickledObject`, ``epoch``, ...)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "no such file")
    if zipfile.is_zipfile(p):
        try:
            with zipfile.ZipFile(p) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError) as e:
            raise InputError(p, f"not a PyTorch checkpoint ({first_line(e)})") from None
        if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
            # torch.load would hand a TorchScript archive to torch.jit.load, which runs the code stored in it
            raise InputError(p, "is a TorchScript archive, not a training checkpoint; avs does not load code")
    try:
        obj = torch.load(p, map_location="cpu", pickle_module=_PICKLE_MODULE, weights_only=False)
    except Exception as e:  # junk bytes fail anywhere inside the unpickler, with arbitrary exception types
        raise InputError(p, f"not a PyTorch checkpoint ({first_line(e)})") from None
    extras: dict = {}
    if isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping):
        extras = {k: v for k, v in obj.items() if k != "model"}
        obj = obj["model"]
    if not isinstance(obj, Mapping) or not obj:
        what = repr(obj) if isinstance(obj, PickledObject) else type(obj).__name__
        raise InputError(p, f"not a state_dict: the file holds {what}")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise InputError(p, f"not a state_dict: {len(bad)} entries are not named tensors (first: {bad[0]!r})")
    return {k: v.detach() for k, v in obj.items()}, extras


# ----------------------------------------------------------------------------------------------------------
# Official vocabulary pickles (textlib.Vocabulary: word2idx, idx2word, encoding)


def read_vocab_pickle(path: str | os.PathLike):
    """An official ``bow_nsw_<t>.pkl`` / ``gru_<t>.pkl`` as an ``avs.features.vocab.Vocabulary``, read without running
    any pickled code."""
    from avs.features.vocab import Vocabulary

    p = Path(path)
    try:
        with open(p, "rb") as f:
            obj = RestrictedUnpickler(f, encoding="utf-8").load()
    except OSError as e:
        raise InputError(p, e.strerror or str(e)) from None
    except Exception as e:
        raise InputError(p, f"not a vocabulary pickle ({first_line(e)})") from None
    attrs = obj.attributes if isinstance(obj, PickledObject) else {}
    word2idx, encoding = attrs.get("word2idx"), attrs.get("encoding")
    if not isinstance(word2idx, dict) or not isinstance(encoding, str):
        raise InputError(p, f"not an official vocabulary (expected a pickled textlib.Vocabulary, found {obj!r})")
    n = len(word2idx)
    if not all(isinstance(w, str) for w in word2idx) or sorted(word2idx.values()) != list(range(n)):
        raise InputError(p, "vocabulary word2idx is not a map of words to the ids 0..N-1")
    words = sorted(word2idx, key=word2idx.__getitem__)
    if encoding == "bow_nsw":
        kind = "bow_nsw"
    elif encoding.startswith("gru") or encoding.startswith("bigru"):
        kind = "gru"
    else:
        raise InputError(p, f"vocabulary encoding {encoding!r} is not supported (bow_nsw or gru)")
    m = re.search(r"_(\d+)\.pkl$", p.name)
    try:
        return Vocabulary(kind, words, int(m.group(1)) if m else 5)
    except ValueError as e:
        raise InputError(p, f"vocabulary: {e}") from None


# ----------------------------------------------------------------------------------------------------------
# Architecture inference and key mapping

_VIS = "vis_net.VisMutiTransformNet."
_TXT = "txt_net.transform_layer."
_FUSION = {"video": "vis_net.attention_layer.", "text": "txt_net.attention_layer."}
_GRU = "txt_net.encoder.rnn_encoder."
_CLIP_MODEL = "txt_net.encoder.CLIP_encoder.ClipModel."
# official text encoder name -> (avs feature name, kind); the official forward uses this order
_TEXT_ENCODERS = (
    ("rnn_encoder", "gru", "gru"),
    ("bow_encoder", "bow", "bow"),
    ("w2v_encoder", "w2v", "w2v"),
    ("CLIP_encoder", "clip", "clip"),
)
# LAFF-attention parameters that never influence the output: an unused LayerNorm per side and the with_ave
# scalar of every head (read only when with_ave is on, which the paper runs turn off)
_DEAD = re.compile(
    r"(vis|txt)_net\.attention_layer\.(layer_norm\.(weight|bias)"
    r"|attention_layer\.\d+\.global_emb_weight_net\.weight)$"
)
_REFUSED = (
    ("vis_net.frame_attention.", "LAFF-ml (frame-level fusion, vis_net.frame_attention)"),
    ("vis_net.vis_attention_layer.", "LAFF-ml (vis_net.vis_attention_layer)"),
    ("vis_net.fc1.", "concat fusion on the video side (W2VV++, vis_net.fc1)"),
    ("txt_net.transformer.", "concat fusion on the text side (W2VV++, txt_net.transformer)"),
    ("txt_net.encoder.bert_encoder.", "a BERT text encoder"),
    ("txt_net.transform_layer.bert_encoder_transform.", "a BERT text encoder"),
    ("txt_net.transform_layer.NetVLAD_encoder_transform.", "a NetVLAD text encoder"),
    ("txt_net.encoder.NetVLAD_encoder.", "a NetVLAD text encoder"),
    ("vis_net.expert_embedding.", "expert embeddings (vis_expert_embedding)"),
    ("txt_net.expert_embedding.", "expert embeddings (txt_expert_embedding)"),
)


@dataclass
class ImportPlan:
    """What a checkpoint holds: the avs config, avs key -> official key, and the official keys left out."""

    config: ModelConfig
    mapping: dict[str, str]
    ignored: list[str]
    notes: list[str] = field(default_factory=list)


def _refuse(source, found: str) -> InputError:
    return InputError(
        source,
        f"unsupported official model: found {found}; avs imports LAFF with "
        "multi-head LAFF fusion (Multi_head_MyApply_Attention, split heads) on both sides",
    )


def _feature_names(state: Mapping, prefix: str) -> list[str]:
    names: list[str] = []
    for k in state:
        if k.startswith(prefix):
            name = k[len(prefix) :].rsplit(".", 2)[0]
            if name not in names:
                names.append(name)
    return names


def _heads(state: Mapping, side: str, source) -> tuple[int, int]:
    prefix = _FUSION[side]
    n = 0
    while f"{prefix}attention_layer.{n}.embedding_common.0.weight" in state:
        n += 1
    if n == 0:
        found = sorted({k[len(prefix) :] for k in state if k.startswith(prefix)})
        if f"{prefix}embedding_common.0.weight" in state:
            raise _refuse(
                source, f"a single-head Attention_1 {side} fusion (types 0/1/7/9, which the weights cannot tell apart)"
            )
        raise _refuse(source, f"a {side} fusion with weights {', '.join(found[:4]) or 'none'}")
    return n, int(state[f"{prefix}attention_layer.0.embedding_common.0.weight"].shape[1])


def _projection(state: Mapping, prefix: str, source) -> tuple[int | None, int, bool]:
    """(input dim or None for the no-transform path, output dim D, has BatchNorm) of one TransformNet."""
    fc, bn = state.get(prefix + ".fc1.weight"), state.get(prefix + ".bn1.weight")
    if fc is None and bn is None:
        raise InputError(source, f"official transform {prefix} has neither fc1 nor bn1 weights")
    if fc is not None:
        return int(fc.shape[1]), int(fc.shape[0]), bn is not None
    return None, int(bn.shape[0]), True


def _check_options(state: Mapping, extras: dict, source) -> list[str]:
    """Refuse LAFF-attention variants the state_dict cannot show: the training options are only in ``opt``."""
    opt = extras.get("opt")
    attrs = opt.attributes if isinstance(opt, PickledObject) else (opt if isinstance(opt, dict) else {})
    parm, name = attrs.get("parm_adjust_config"), attrs.get("config_name")
    if name != "laff" or not isinstance(parm, str):
        return [
            "training options unknown (no laff parm string in the checkpoint): assumed the paper's with_ave=0, mul=0"
        ]
    tokens = parm.split("_")
    if len(tokens) != 7 or not all(t.isdigit() for t in tokens):
        raise InputError(source, f"cannot read the laff parm string {parm!r} stored in the checkpoint")
    a = [int(t) for t in tokens]
    if a[1] != 12 or a[3] != 12:
        raise _refuse(source, f"fusion types {a[1]} (video) and {a[3]} (text) in parm string {parm!r}")
    if a[5] == 1:
        raise _refuse(source, f"mul=1 in parm string {parm!r} (attention logits on features times their mean)")
    scalars = [float(v.flatten()[0]) for k, v in state.items() if k.endswith("global_emb_weight_net.weight")]
    if a[4] == 1 and any(s != 0 for s in scalars):
        raise _refuse(
            source,
            f"with_ave=1 in parm string {parm!r} with mean-pooling weight {max(scalars, key=abs):g} still active",
        )
    return [f"training options from the checkpoint: laff {parm}"]


def plan_import(state: Mapping[str, torch.Tensor], extras: dict | None = None, source=None) -> ImportPlan:
    """Infer the architecture of an official LAFF state_dict and map its keys to a ``TextVideoModel``'s."""
    for prefix, what in _REFUSED:
        if any(k.startswith(prefix) for k in state):
            raise _refuse(source, what)
    if not any(k.startswith("vis_net.") for k in state) or not any(k.startswith("txt_net.") for k in state):
        raise InputError(
            source,
            f"not an official LAFF state_dict: no vis_net/txt_net weights (first keys: {', '.join(list(state)[:3])})",
        )
    heads, head_dim = _heads(state, "video", source)
    text_heads, text_head_dim = _heads(state, "text", source)
    if (heads, head_dim) != (text_heads, text_head_dim):
        raise _refuse(source, f"{heads} video heads of {head_dim} but {text_heads} text heads of {text_head_dim}")
    notes = _check_options(state, extras or {}, source)

    dims: dict[str, tuple[int | None, int, bool]] = {}
    video = []
    for name in _feature_names(state, _VIS):
        dims[_VIS + name] = _projection(state, _VIS + name, source)
        video.append(VideoFeature(name, dims[_VIS + name][0] or head_dim, dims[_VIS + name][0] is None))
    text = []
    gru_embed = gru_hidden = None
    present = set(_feature_names(state, _TXT))
    unknown = present - {enc + "_transform" for enc, _, _ in _TEXT_ENCODERS}
    if unknown:
        raise _refuse(source, f"text encoder transforms {', '.join(sorted(unknown))}")
    for enc, name, kind in _TEXT_ENCODERS:
        prefix = _TXT + enc + "_transform"
        if enc + "_transform" not in present:
            continue
        dims[prefix] = in_dim, _, _ = _projection(state, prefix, source)
        if kind == "gru":
            if _GRU + "we.weight" not in state or _GRU + "rnn.weight_hh_l0" not in state:
                raise InputError(source, "the GRU transform has no GRU (txt_net.encoder.rnn_encoder) weights")
            if _GRU + "rnn.weight_hh_l0_reverse" in state or _GRU + "rnn.weight_hh_l1" in state:
                raise _refuse(source, "a bidirectional or multi-layer GRU")
            vocab_size, gru_embed = state[_GRU + "we.weight"].shape
            gru_hidden = int(state[_GRU + "rnn.weight_hh_l0"].shape[1])
            if in_dim != gru_hidden:
                raise InputError(source, f"GRU hidden size {gru_hidden} but its transform takes {in_dim}")
            text.append(TextFeature(name, kind, int(vocab_size)))
        else:
            text.append(TextFeature(name, kind, in_dim or head_dim, in_dim is None))
    if not text:
        raise InputError(source, "no text encoder transforms (txt_net.transform_layer.*) found")

    space_dims = {d for _, d, _ in dims.values()}
    if space_dims != {heads * head_dim}:
        if head_dim in space_dims:
            raise _refuse(source, "split_head=False (every head sees the whole vector)")
        raise InputError(source, f"projections to {sorted(space_dims)} dims do not match {heads} heads of {head_dim}")
    norms = {bn for i, _, bn in dims.values() if i is not None}
    if len(norms) > 1:
        with_bn = sorted(p for p, (i, _, bn) in dims.items() if i is not None and bn)
        raise _refuse(source, f"BatchNorm after some projections only ({', '.join(with_bn)})")

    cfg = ModelConfig(
        name="official-laff",
        fusion="laff",
        video=tuple(video),
        text=tuple(text),
        space_dim=heads * head_dim,
        heads=heads,
        dropout=0.2,
        batch_norm=norms == {True},
        gru_embed=int(gru_embed or 500),
        gru_hidden=int(gru_hidden or 1024),
        description="LAFF imported from an official ruc-aimc-lab/LAFF checkpoint",
    )
    model = TextVideoModel(cfg)
    mapping: dict[str, str] = {}

    def link(avs_prefix: str, official_prefix: str) -> None:
        for k in model.state_dict():
            if k.startswith(avs_prefix + "."):
                mapping[k] = official_prefix + k[len(avs_prefix) :]

    def link_transforms(side, tower: str, prefixes: list[str]) -> None:
        for i, (module, prefix) in enumerate(zip(side.transforms, prefixes)):
            if hasattr(module, "norm"):  # TileNorm: the no-transform path
                link(f"{tower}.transforms.{i}.norm", prefix + ".bn1")
            else:
                link(f"{tower}.transforms.{i}.0", prefix + ".fc1")
                if cfg.batch_norm:
                    link(f"{tower}.transforms.{i}.{len(module) - 1}", prefix + ".bn1")
        for h in range(heads):
            link(f"{tower}.fusion.blocks.{h}.logit", f"{_FUSION[tower]}attention_layer.{h}.embedding_common.0")

    link_transforms(model.video, "video", [_VIS + f.name for f in video])
    names = {name: enc for enc, name, _ in _TEXT_ENCODERS}
    link_transforms(model.text, "text", [_TXT + names[f.name] + "_transform" for f in text])
    if model.gru is not None:
        link("gru.embedding", _GRU + "we")
        link("gru.gru", _GRU + "rnn")

    own = model.state_dict()
    missing = [o for a, o in mapping.items() if o not in state]
    wrong = [
        f"{o} {tuple(state[o].shape)} vs {tuple(own[a].shape)}"
        for a, o in mapping.items()
        if o in state and state[o].shape != own[a].shape
    ]
    if missing or wrong or len(mapping) != len(own):
        raise InputError(
            source,
            "official weights do not fit the inferred architecture: "
            + "; ".join(filter(None, [missing and f"missing {missing[0]}", wrong and wrong[0]]))
            or "unmapped parameters",
        )
    used = set(mapping.values())
    ignored = [k for k in state if k not in used and (_DEAD.match(k) or k.startswith(_CLIP_MODEL))]
    extra = [k for k in state if k not in used and k not in set(ignored)]
    if extra:
        raise _refuse(source, f"{len(extra)} weights avs has no place for (first: {', '.join(extra[:3])})")
    return ImportPlan(cfg, mapping, ignored, notes)


def build_model(state: Mapping[str, torch.Tensor], plan: ImportPlan) -> TextVideoModel:
    model = TextVideoModel(plan.config)
    model.load_state_dict(
        {a: state[o].float() if state[o].is_floating_point() else state[o] for a, o in plan.mapping.items()}
    )
    return model.eval()


def _find_vocabs(vocab_dir: Path, cfg: ModelConfig) -> dict:
    if not vocab_dir.is_dir():
        raise InputError(vocab_dir, "no such directory")
    vocabs = {}
    for f in cfg.text:
        if f.kind not in ("bow", "gru"):
            continue
        pattern = "bow_nsw_*.pkl" if f.kind == "bow" else "gru_*.pkl"
        candidates = sorted(vocab_dir.glob(pattern))
        fitting = [v for v in map(read_vocab_pickle, candidates) if len(v) == f.dim]
        if not fitting:
            sizes = ", ".join(f"{p.name}" for p in candidates) or "none"
            raise InputError(
                vocab_dir, f"no {pattern} vocabulary of {f.dim} words for the {f.name} feature (found: {sizes})"
            )
        vocabs[f.name] = fitting[0]
    return vocabs


@dataclass
class ImportedModel:
    out: Path
    config: ModelConfig
    ignored: list[str]
    notes: list[str]
    vocabs: list[str]


def import_official(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    vocab_dir: str | os.PathLike | None = None,
    word2vec: str | os.PathLike | None = None,
    force: bool = False,
) -> ImportedModel:
    """Convert an official LAFF checkpoint into an avs model directory."""
    if Path(out).exists() and not force:
        raise InputError(out, "already exists (use --force to overwrite)")
    if word2vec is not None and not Path(word2vec).exists():
        raise InputError(word2vec, "no such file or directory")
    state, extras = load_checkpoint(checkpoint)
    plan = plan_import(state, extras, checkpoint)
    vocabs = _find_vocabs(Path(vocab_dir), plan.config) if vocab_dir is not None else {}
    model = build_model(state, plan)
    meta = {
        "imported_from": os.fspath(Path(checkpoint).resolve()),
        "import_notes": plan.notes,
        "ignored_official_weights": len(plan.ignored),
    }
    for k in ("epoch", "best_perf"):
        if isinstance(extras.get(k), (int, float)):
            meta[f"official_{k}"] = extras[k]
    if word2vec is not None:
        meta["word2vec"] = os.fspath(Path(word2vec).resolve())
    path = save_model(model, out, vocabs, meta, force)
    return ImportedModel(path, plan.config, plan.ignored, plan.notes, sorted(vocabs))
