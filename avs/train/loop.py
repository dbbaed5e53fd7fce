"""Training text-to-video models on caption datasets with the official LAFF recipe (laff-method.md §10), and
scoring trained models on caption datasets (§11.1). ``docs/training.md`` describes the recipe, the DATA layout,
the files written and where this differs from the official code.

DATA is one collection directory in RUC's layout (``ROOT/COLLECTION``, e.g. ``~/VisualSearch/msrvtt10ktrain``):
``TextData/COLLECTION.caption.txt``, ``VideoSets/COLLECTION.txt``, and the video features the model config
names, as BigFile folders ``FeatureData/<name>/`` (a LAFF-ml frame feature: ``FeatureData/frame/<name>/``, at
most 50 frames per video) or, with ``store``, features of an avs collection store.
Text features of kind ``clip`` / ``precomputed`` are read by caption id from a BigFile folder
``TextData/<name>/`` when there is one (as the official code reads its fine-tuned CLIP text features); a
``clip`` feature can instead be computed from a user-supplied CLIP checkpoint.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from avs.engine.encode import encode_all, row_batches, text_batches, to_device
from avs.errors import InputError, first_line
from avs.eval.retrieval import METRICS, retrieval_metrics, text_video_metrics
from avs.features.captions import CaptionData, open_data, video_feature_names
from avs.formats.fileio import atomic_dir, atomic_open
from avs.models import ModelConfig, TextVideoModel, check_video_features, load_config, load_model
from avs.models.io import write_model_files
from avs.train.config import TrainConfig
from avs.train.optim import RMSprop

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "avs-train-checkpoint"
CHECKPOINT_VERSION = 1
LOG_NAME = "train_log.jsonl"
VOCAB_KIND = {"bow": "bow_nsw", "gru": "gru"}
# Settings that may change when a training is resumed (e.g. to allow more epochs).
RESUMABLE_CHANGES = ("epochs", "patience", "device")


# ----------------------------------------------------------------------------------------------------------
# Data


def _video_tensors(data: CaptionData, config: ModelConfig) -> dict[str, torch.Tensor]:
    return {f.name: torch.from_numpy(data.dataset.vectors(f.name)) for f in config.video}


def _frame_reader(data: CaptionData, config: ModelConfig):
    """LAFF-ml: a reader of (frames, mask) tensors for video positions in the video list; None for other models.
    Frames are read per batch: all of a collection's frames need not fit in memory."""
    if config.frame is None:
        return None
    name, videos = config.frame.name, data.dataset.videos

    def read(positions: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        frames, mask = data.dataset.frames(name, [videos[i] for i in positions])
        return torch.from_numpy(frames), torch.from_numpy(mask)

    return read


def _caption_video_index(data: CaptionData) -> np.ndarray:
    index = {v: i for i, v in enumerate(data.dataset.videos)}
    return np.array([index[v] for v in data.dataset.captions["video_id"]], dtype=np.int64)


def _featurizer(config: ModelConfig, vocabs: dict, data: CaptionData, w2v, clip):
    """The text featurizer of ``config`` for ``data``; a missing text source is an InputError naming DATA."""
    from avs.features.featurize import TextFeatureSpec, TextFeaturizer

    specs = [TextFeatureSpec(f.name, f.kind, None if f.kind in VOCAB_KIND else f.dim) for f in config.text]
    try:
        return TextFeaturizer(specs, vocabs, w2v=w2v, precomputed=data.text_features, clip=clip)
    except InputError as e:
        if e.path is not None:
            raise
        culprit = next((f for f in config.text if f"{f.name!r}" in e.problem), None)
        hint = ""
        if culprit is not None and culprit.kind == "w2v":
            hint = " (give --word2vec)"
        elif culprit is not None and culprit.kind in ("clip", "precomputed"):
            hint = f" (put a BigFile of caption-id vectors in {data.path / 'TextData' / culprit.name}/"
            hint += " or give --clip-checkpoint)" if culprit.kind == "clip" else ")"
        raise InputError(data.path, e.problem + hint) from None


def _clip_encoder(checkpoint, bpe, device):
    if checkpoint is None:
        return None
    if bpe is None:
        raise InputError(checkpoint, "a CLIP checkpoint needs its BPE vocabulary file too (--clip-bpe)")
    from avs.models.clip_text import ClipTextEncoder

    return ClipTextEncoder.from_checkpoint(checkpoint, bpe, device=device)


# ----------------------------------------------------------------------------------------------------------
# Encoding and scoring


def encode_captions(
    model: TextVideoModel, featurizer, texts: Sequence[str], ids: Sequence[str], batch_size: int = 256, device="cpu"
) -> torch.Tensor:
    """(N, S, d) caption embeddings, on the CPU."""
    return encode_all(model.eval().encode_text, text_batches(featurizer, texts, ids, batch_size), device)


def encode_videos(
    model: TextVideoModel,
    feats: dict[str, torch.Tensor],
    batch_size: int = 256,
    device="cpu",
    frames: Callable | None = None,
) -> torch.Tensor:
    """(V, S, d) video embeddings from video-level features (name -> (V, dim)), on the CPU. LAFF-ml models also
    need ``frames``: video positions -> the (frames, mask) tensors ``TextVideoModel.encode_video`` takes."""
    n = len(next(iter(feats.values())))

    def batches():
        for (block,), start in zip(row_batches(feats, batch_size), range(0, n, batch_size)):
            yield (block,) if frames is None else (block, *frames(range(start, min(start + batch_size, n))))

    return encode_all(model.eval().encode_video, batches(), device)


def score_captions(
    model: TextVideoModel,
    featurizer,
    data: CaptionData,
    video_feats: dict[str, torch.Tensor],
    batch_size: int = 256,
    device="cpu",
    frames: Callable | None = None,
) -> torch.Tensor:
    """(captions, videos) similarity matrix of ``data``, rows in caption-file order, columns in video-list order."""
    caps = data.dataset.captions
    t = encode_captions(model, featurizer, caps["text"].tolist(), caps["caption_id"].tolist(), batch_size, device)
    v = encode_videos(model, video_feats, batch_size, device, frames)
    return model.similarity(t, v)


def evaluate_retrieval(
    model_dir: str | os.PathLike,
    data_path: str | os.PathLike,
    store: str | os.PathLike | None = None,
    device: str = "cpu",
    batch_size: int = 256,
    word2vec: str | os.PathLike | None = None,
    clip_checkpoint=None,
    clip_bpe=None,
) -> dict[str, dict[str, float]]:
    """Text→video and video→text metrics (:mod:`avs.eval.retrieval`) of a trained model on DATA.

    word2vec and the CLIP checkpoint default to those the model was trained with (its ``model.json``).
    """
    from avs.features.word2vec import Word2Vec, word2vec_path

    word2vec = word2vec_path(word2vec)  # a given path must exist, needed or not
    loaded = load_model(model_dir, device)
    cfg = loaded.config
    data = open_data(data_path, cfg, store)
    check_video_features(cfg, data.video_dims(video_feature_names(cfg)), data.path)
    w2v_path = word2vec or loaded.meta.get("word2vec")
    # the GRU's word embeddings are in the weights: only a w2v feature reads word2vec at scoring time
    w2v = Word2Vec.load(w2v_path) if w2v_path and any(f.kind == "w2v" for f in cfg.text) else None
    clip = _clip_encoder(
        clip_checkpoint or loaded.meta.get("clip_checkpoint"), clip_bpe or loaded.meta.get("clip_bpe"), device
    )
    featurizer = _featurizer(cfg, loaded.vocabs, data, w2v, clip)
    _check_text_dims(cfg, featurizer, data.path)
    scores = score_captions(
        loaded.model, featurizer, data, _video_tensors(data, cfg), batch_size, device, _frame_reader(data, cfg)
    )
    return text_video_metrics(scores, _caption_video_index(data))


def _check_text_dims(cfg: ModelConfig, featurizer, source) -> None:
    wrong = [
        f"{f.name} has {featurizer.dims[f.name]} dims, the model expects {f.dim}"
        for f in cfg.text
        if featurizer.dims[f.name] != f.dim
    ]
    if wrong:
        raise InputError(source, f"text features do not match model {cfg.name!r}: " + "; ".join(wrong))


# ----------------------------------------------------------------------------------------------------------
# Training


@dataclass
class TrainResult:
    model_dir: Path
    best_epoch: int
    best_metrics: dict[str, float]
    epochs_run: int
    stopped_early: bool
    log: list[dict]


def _atomic_torch_save(obj, path: Path) -> None:
    with atomic_open(path, "wb", force=True) as f:
        torch.save(obj, f)


def _batches(order: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """Consecutive slices of the shuffled order; a last batch of one caption joins the one before, because
    BatchNorm cannot train on a single sample and a one-caption batch has no negatives."""
    parts = list(order.split(batch_size))
    if len(parts) > 1 and len(parts[-1]) == 1:
        parts[-2:] = [torch.cat(parts[-2:])]
    return parts


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _load_checkpoint(path: Path) -> dict:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt, truncated, or a pickle that would need code to load
        raise InputError(path, f"cannot load the training checkpoint safely: {first_line(e)}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise InputError(path, "not an avs training checkpoint")
    if ckpt.get("version") != CHECKPOINT_VERSION:
        raise InputError(path, f"checkpoint version {ckpt.get('version')} is not {CHECKPOINT_VERSION}")
    return ckpt


@dataclass
class _Paths:
    """Where a training of ``out`` keeps its state until the model directory is complete."""

    out: Path

    @property
    def work(self) -> Path:
        return self.out.with_name(self.out.name + ".training")

    @property
    def checkpoint(self) -> Path:
        return self.work / "checkpoint.pt"

    @property
    def best(self) -> Path:
        return self.work / "best.pt"

    @property
    def log(self) -> Path:
        return self.work / LOG_NAME

    def claim(self, resume: bool, force: bool) -> None:
        if self.out.exists() and not force:
            raise InputError(self.out, "already exists (use --force to overwrite)")
        if resume and not self.checkpoint.is_file():
            raise InputError(self.checkpoint, "no training checkpoint to resume from")
        if not resume and self.work.exists():
            if not force:
                raise InputError(
                    self.work,
                    "holds an interrupted training of this model directory: use --resume to "
                    "continue it or --force to start over",
                )
            shutil.rmtree(self.work)


@dataclass
class _Setup:
    """Everything fixed before the first step: the model config with its input widths, the vocabularies and
    text featurizers, and the settings a resumed training must share."""

    cfg: ModelConfig
    vocabs: dict
    w2v: object
    featurizer: object
    val_featurizer: object
    settings: dict


def _prepare(cfg: ModelConfig, train_data: CaptionData, val_data: CaptionData, recipe: TrainConfig) -> _Setup:
    from avs.features.vocab import build_vocab
    from avs.features.word2vec import Word2Vec

    if cfg.fusion == "clip":
        raise InputError(None, "a zero-shot CLIP model has no parameters to train (make one with `avs model clip`)")
    vnames = video_feature_names(cfg)
    check_video_features(cfg, train_data.video_dims(vnames), train_data.path)
    check_video_features(cfg, val_data.video_dims(vnames), val_data.path)

    # vocabularies from the training captions only
    texts = train_data.dataset.captions["text"].tolist()
    vocabs = {}
    for f in cfg.text:
        if f.kind in VOCAB_KIND:
            vocabs[f.name] = build_vocab(texts, VOCAB_KIND[f.kind], recipe.vocab_threshold)
            if len(vocabs[f.name]) == (4 if f.kind == "gru" else 0):
                raise InputError(
                    train_data.path,
                    f"no word occurs {recipe.vocab_threshold} times in the training "
                    f"captions: the {f.name} vocabulary is empty (lower --vocab-threshold)",
                )
    uses_w2v = any(f.kind in ("w2v", "gru") for f in cfg.text)
    w2v = Word2Vec.load(recipe.word2vec) if recipe.word2vec is not None and uses_w2v else None
    clip = _clip_encoder(recipe.clip_checkpoint, recipe.clip_bpe, recipe.device)
    featurizer = _featurizer(cfg, vocabs, train_data, w2v, clip)
    val_featurizer = _featurizer(cfg, vocabs, val_data, w2v, clip)
    cfg = cfg.with_dims(video=train_data.video_dims(vnames), text=featurizer.dims)
    check_video_features(cfg, val_data.video_dims(vnames), val_data.path)
    _check_text_dims(cfg, val_featurizer, val_data.path)

    def resolved(path):
        return os.fspath(Path(path).resolve())

    settings = {
        "config": cfg.to_dict(),
        "train": train_data.name,
        "val": val_data.name,
        "train_captions": len(texts),
        **{k: getattr(recipe, k) for k in _RECIPE_SETTINGS},
        "device": str(recipe.device),
        "word2vec": None if w2v is None else resolved(recipe.word2vec),
        "clip_checkpoint": None if clip is None else resolved(recipe.clip_checkpoint),
        "clip_bpe": None if clip is None else resolved(recipe.clip_bpe),
    }
    return _Setup(cfg, vocabs, w2v, featurizer, val_featurizer, settings)


# the recipe fields recorded in a checkpoint (resuming needs the same) and in model.json's "training"
_RECIPE_SETTINGS = (
    "epochs",
    "batch_size",
    "lr",
    "seed",
    "mask_same_video",
    "vocab_threshold",
    "patience",
    "grad_clip",
    "metric",
)


class _State:
    """The model, its optimizer and schedulers, the shuffling generator and the early-stopping counters: what a
    checkpoint holds, so that a resumed training gives the weights of an uninterrupted one."""

    def __init__(self, setup: _Setup, recipe: TrainConfig):
        torch.manual_seed(recipe.seed)
        self.model = TextVideoModel(setup.cfg)
        if self.model.gru is not None:
            gru_name = next(f.name for f in setup.cfg.text if f.kind == "gru")
            self.model.gru.init_embeddings(setup.vocabs[gru_name], setup.w2v)
        self.model.to(recipe.device)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = RMSprop(self.params, lr=recipe.lr)  # torch's arithmetic, without its allocations
        self.step_lr = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=1, gamma=0.99)
        self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(self.optimizer, mode="max", factor=0.5, patience=2)
        self.shuffle = torch.Generator().manual_seed(recipe.seed)
        self.epoch, self.best, self.best_epoch, self.since_best = 0, -math.inf, 0, 0
        self.records: list[dict] = []

    def checkpoint(self, settings: dict) -> dict:
        return {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "epoch": self.epoch,
            "settings": json.dumps(settings, sort_keys=True),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step_lr": self.step_lr.state_dict(),
            "plateau": self.plateau.state_dict(),
            "best": self.best,
            "best_epoch": self.best_epoch,
            "since_best": self.since_best,
            "rng": {**_rng_state(), "shuffle": self.shuffle.get_state()},
        }

    def resume(self, paths: _Paths, settings: dict) -> None:
        ckpt = _load_checkpoint(paths.checkpoint)
        before, now = json.loads(ckpt["settings"]), json.loads(json.dumps(settings))
        changed = sorted(
            k for k in set(before) | set(now) if k not in RESUMABLE_CHANGES and before.get(k) != now.get(k)
        )
        if changed:
            raise InputError(
                paths.checkpoint,
                f"was written with other settings or data ({', '.join(changed)} differ); "
                "resume with the same ones, or start over with --force",
            )
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.step_lr.load_state_dict(ckpt["step_lr"])
        self.plateau.load_state_dict(ckpt["plateau"])
        self.epoch, self.best = ckpt["epoch"], ckpt["best"]
        self.best_epoch, self.since_best = ckpt["best_epoch"], ckpt["since_best"]
        _set_rng_state(ckpt["rng"])
        self.shuffle.set_state(ckpt["rng"]["shuffle"])
        if paths.log.exists():  # a log line may be newer than the checkpoint it should follow
            lines = paths.log.read_text().splitlines()
            self.records = [r for r in map(json.loads, lines) if r["epoch"] <= self.epoch]


class _Epochs:
    """One training pass over the captions and one validation, on tensors prepared once."""

    def __init__(self, setup: _Setup, train_data: CaptionData, val_data: CaptionData, recipe: TrainConfig):
        self.setup, self.recipe, self.val_data = setup, recipe, val_data
        caps = train_data.dataset.captions
        self.texts, self.cap_ids = caps["text"].tolist(), caps["caption_id"].tolist()
        self.cap_video = torch.from_numpy(_caption_video_index(train_data))
        self.train_video = _video_tensors(train_data, setup.cfg)
        self.val_video = _video_tensors(val_data, setup.cfg)
        self.train_frames, self.val_frames = _frame_reader(train_data, setup.cfg), _frame_reader(val_data, setup.cfg)
        self.val_caption_video = _caption_video_index(val_data)

    def train(self, state: _State, epoch: int, progress: bool) -> float:
        """The mean loss of one pass over the training captions."""
        recipe, model, device = self.recipe, state.model, self.recipe.device
        model.train()
        batches = _batches(torch.randperm(len(self.texts), generator=state.shuffle), recipe.batch_size)
        total = 0.0
        bar = tqdm(
            batches,
            desc=f"epoch {epoch}/{recipe.epochs}",
            unit="batch",
            leave=False,
            file=sys.stderr,
            disable=None if progress else True,
        )
        for idx in bar:
            rows = idx.tolist()
            texts, ids = [self.texts[i] for i in rows], [self.cap_ids[i] for i in rows]
            text_in = to_device(self.setup.featurizer.featurize(texts, ids), device)
            vids = self.cap_video[idx]
            video_in = {k: v[vids].to(device) for k, v in self.train_video.items()}
            frames_in = () if self.train_frames is None else [t.to(device) for t in self.train_frames(vids.tolist())]
            same = (vids[:, None] == vids[None, :]).to(device) if recipe.mask_same_video else None
            loss = model.loss(model.encode_text(text_in), model.encode_video(video_in, *frames_in), same)
            state.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(state.params, recipe.grad_clip)
            state.optimizer.step()
            batch_loss = loss.item()
            total += batch_loss
            bar.set_postfix(loss=f"{batch_loss:.3f}")
        bar.close()
        return total / len(batches)

    def validate(self, state: _State) -> dict[str, float]:
        scores = score_captions(
            state.model,
            self.setup.val_featurizer,
            self.val_data,
            self.val_video,
            self.recipe.eval_batch_size,
            self.recipe.device,
            self.val_frames,
        )
        return retrieval_metrics(scores, [[int(v)] for v in self.val_caption_video])


def train(
    config: str | os.PathLike | ModelConfig,
    train_data: CaptionData,
    val_data: CaptionData,
    out_dir: str | os.PathLike,
    recipe: TrainConfig | None = None,
    *,
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    on_epoch: Callable[[dict], None] | None = None,
    **options,
) -> TrainResult:
    """Train ``config`` on ``train_data``, select on ``val_data`` (both from :func:`open_data`), write MODEL_DIR.

    The recipe is ``recipe`` (default :class:`TrainConfig`, the official one; docs/training.md) with ``options``
    (``epochs=``, ``lr=``... any :class:`TrainConfig` field) replacing its fields. Training state lives in
    ``<out_dir>.training/`` (``checkpoint.pt`` after every epoch, ``best.pt``, ``train_log.jsonl``) until the
    model directory is complete; then it is renamed into place and the state removed. ``resume`` continues from
    that checkpoint and gives the same weights as an uninterrupted run. ``on_epoch`` is called with each epoch's
    log record after its checkpoint is written.
    """
    from avs.features.word2vec import word2vec_path

    recipe = (recipe or TrainConfig()).replace(**options)
    recipe = recipe.replace(word2vec=word2vec_path(recipe.word2vec)).check()  # a given path must exist
    cfg = config if isinstance(config, ModelConfig) else load_config(config)
    paths = _Paths(Path(out_dir))
    paths.claim(resume, force)
    setup = _prepare(cfg, train_data, val_data, recipe)
    state = _State(setup, recipe)
    if resume:
        state.resume(paths, setup.settings)
        log.info(
            "resuming %s after epoch %d (best %s %.4f at epoch %d)",
            paths.out,
            state.epoch,
            recipe.metric,
            state.best,
            state.best_epoch,
        )
    paths.work.mkdir(parents=True, exist_ok=True)
    _write_log(paths.log, state.records)
    epochs = _Epochs(setup, train_data, val_data, recipe)
    while state.epoch < recipe.epochs and state.since_best < recipe.patience:
        record = _one_epoch(state, epochs, paths, setup, recipe, progress)
        if on_epoch is not None:
            on_epoch(record)
    if state.best_epoch == 0:
        raise InputError(paths.checkpoint, "no epoch was trained (is --epochs below the epochs already done?)")
    return _publish(state, setup, paths, train_data, val_data, recipe)


def _one_epoch(state: _State, epochs: _Epochs, paths: _Paths, setup: _Setup, recipe: TrainConfig, progress: bool):
    state.epoch += 1
    t0 = time.perf_counter()
    lr_now = state.optimizer.param_groups[0]["lr"]
    loss = epochs.train(state, state.epoch, progress)
    val = epochs.validate(state)
    value = val[recipe.metric]
    state.step_lr.step()
    state.plateau.step(value)
    is_best = value > state.best
    if is_best:
        state.best, state.best_epoch, state.since_best = value, state.epoch, 0
        _atomic_torch_save({k: v.detach().cpu() for k, v in state.model.state_dict().items()}, paths.best)
    else:
        state.since_best += 1
    record = {
        "epoch": state.epoch,
        "loss": loss,
        "lr": lr_now,
        **{f"val_{k}": val[k] for k in METRICS},
        "best": is_best,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    state.records.append(record)
    _write_log(paths.log, state.records)
    _atomic_torch_save(state.checkpoint(setup.settings), paths.checkpoint)
    if progress:
        tqdm.write(
            f"epoch {state.epoch}: loss {record['loss']:.4f}, val {recipe.metric} {value:.4f}"
            f"{' (best)' if is_best else ''}, lr {lr_now:.3g}, {record['seconds']:.1f}s",
            file=sys.stderr,
        )
    return record


def _publish(
    state: _State, setup: _Setup, paths: _Paths, train_data: CaptionData, val_data: CaptionData, recipe: TrainConfig
) -> TrainResult:
    """The best epoch's weights as the model directory, with the log; the training state removed."""
    model = state.model
    model.load_state_dict(torch.load(paths.best, map_location="cpu", weights_only=True))
    best_record = next(r for r in state.records if r["epoch"] == state.best_epoch)
    best_metrics = {k: best_record[f"val_{k}"] for k in METRICS}
    stopped_early = state.since_best >= recipe.patience
    settings = setup.settings
    meta = {
        "config_name": setup.cfg.name,
        "train_data": os.fspath(train_data.path.resolve()),
        "val_data": os.fspath(val_data.path.resolve()),
        "word2vec": settings["word2vec"],
        "clip_checkpoint": settings["clip_checkpoint"],
        "clip_bpe": settings["clip_bpe"],
        "best_epoch": state.best_epoch,
        "epochs_run": len(state.records),
        "stopped_early": stopped_early,
        "validation_metric": recipe.metric,
        "validation": best_metrics,
        "training": {k: settings[k] for k in _RECIPE_SETTINGS if k != "metric"},
    }
    with atomic_dir(paths.out, force=True) as staged:
        write_model_files(model, staged, setup.vocabs, meta)
        shutil.copyfile(paths.log, staged / LOG_NAME)
    shutil.rmtree(paths.work)
    return TrainResult(paths.out, state.best_epoch, best_metrics, len(state.records), stopped_early, state.records)


def _write_log(path: Path, records: list[dict]) -> None:
    """Rewrite the JSON-lines log whole (it is small), atomically, so it always matches the checkpoint."""
    with atomic_open(path, force=True) as f:
        f.write("".join(json.dumps(r) + "\n" for r in records))


__all__ = [
    "CaptionData",
    "open_data",
    "train",
    "TrainConfig",
    "TrainResult",
    "evaluate_retrieval",
    "encode_captions",
    "encode_videos",
    "score_captions",
]
