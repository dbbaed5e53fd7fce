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
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from avs.errors import InputError
from avs.eval.retrieval import METRICS, retrieval_metrics, text_video_metrics
from avs.features.captions import CaptionDataset, open_caption_dataset
from avs.models import ModelConfig, TextVideoModel, check_video_features, load_config, load_model, save_model

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "avs-train-checkpoint"
CHECKPOINT_VERSION = 1
LOG_NAME = "train_log.jsonl"
VOCAB_KIND = {"bow": "bow_nsw", "gru": "gru"}
# Settings that may change when a training is resumed (e.g. to allow more epochs).
RESUMABLE_CHANGES = ("epochs", "patience", "device")


# ----------------------------------------------------------------------------------------------------------
# Data


@dataclass
class CaptionData:
    """A caption dataset opened for a model: captions, videos, video features and per-caption text vectors."""

    path: Path
    dataset: CaptionDataset
    text_features: dict = field(default_factory=dict)  # text feature name -> avs.text.PrecomputedTextFeatures

    @property
    def name(self) -> str:
        return self.dataset.name

    def video_dims(self, names: Sequence[str]) -> dict[str, int]:
        """Dimensions of the named video (and frame) features this dataset has (absent ones are left out)."""
        ds, first = self.dataset, self.dataset.videos[:1]
        dims = {n: int(ds.vectors(n, first).shape[1]) for n in names if n in ds.features}
        dims.update({n: ds.frame_dim(n) for n in names if n in ds.frame_features and n not in dims})
        return dims


def _video_names(config: ModelConfig) -> list[str]:
    """The video-side features ``config`` reads, its frame feature included."""
    return [f.name for f in config.video] + ([config.frame.name] if config.frame is not None else [])


def open_data(path: str | os.PathLike, config: ModelConfig, store: str | os.PathLike | None = None) -> CaptionData:
    """Open DATA (``ROOT/COLLECTION``, RUC layout) with the video features and precomputed text features that
    ``config`` names. Features the data lacks are left out here and reported by :func:`check_video_features`."""
    from avs.features.precomputed import PrecomputedTextFeatures

    p = Path(path)
    if not p.is_dir():
        raise InputError(p, "not a collection directory (expected ROOT/COLLECTION in RUC's layout)")
    names = [f.name for f in config.video]
    present = [n for n in names if (p / "FeatureData" / n).is_dir()] if store is None else ()
    frames = (
        [config.frame.name]
        if config.frame is not None and store is None and (p / "FeatureData" / "frame" / config.frame.name).is_dir()
        else []
    )
    dataset = open_caption_dataset(p.parent, p.name, present, store, frame_features=frames)
    if dataset.captions.empty:
        raise InputError(p / "TextData" / f"{p.name}.caption.txt", "no captions")
    text = {}
    for f in config.text:
        folder = p / "TextData" / f.name
        if f.kind in ("clip", "precomputed") and folder.is_dir():
            text[f.name] = PrecomputedTextFeatures(folder)
    return CaptionData(p, dataset, text)


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


def _to(batch: dict[str, torch.Tensor], device) -> dict[str, torch.Tensor]:
    # GRU lengths stay on the CPU: pack_padded_sequence wants them there.
    return {k: v if k == "gru_lengths" else v.to(device) for k, v in batch.items()}


@torch.no_grad()
def encode_captions(
    model: TextVideoModel, featurizer, texts: Sequence[str], ids: Sequence[str], batch_size: int = 256, device="cpu"
) -> torch.Tensor:
    """(N, S, d) caption embeddings, on the CPU."""
    model.eval()
    out = [
        model.encode_text(_to(featurizer.featurize(texts[i : i + batch_size], ids[i : i + batch_size]), device)).cpu()
        for i in range(0, len(texts), batch_size)
    ]
    return torch.cat(out)


@torch.no_grad()
def encode_videos(
    model: TextVideoModel,
    feats: dict[str, torch.Tensor],
    batch_size: int = 256,
    device="cpu",
    frames: Callable | None = None,
) -> torch.Tensor:
    """(V, S, d) video embeddings from video-level features (name -> (V, dim)), on the CPU. LAFF-ml models also
    need ``frames``: video positions -> the (frames, mask) tensors ``TextVideoModel.encode_video`` takes."""
    model.eval()
    n = len(next(iter(feats.values())))
    out = []
    for i in range(0, n, batch_size):
        extra = () if frames is None else [t.to(device) for t in frames(range(i, min(i + batch_size, n)))]
        out.append(model.encode_video({k: v[i : i + batch_size].to(device) for k, v in feats.items()}, *extra).cpu())
    return torch.cat(out)


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
    """Text→video and video→text metrics (:mod:`avs.metrics`) of a trained model on DATA.

    word2vec and the CLIP checkpoint default to those the model was trained with (its ``model.json``).
    """
    from avs.features.word2vec import Word2Vec, word2vec_path

    word2vec = word2vec_path(word2vec)  # a given path must exist, needed or not
    loaded = load_model(model_dir, device)
    cfg = loaded.config
    data = open_data(data_path, cfg, store)
    check_video_features(cfg, data.video_dims(_video_names(cfg)), data.path)
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
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
        raise InputError(path, f"cannot load the training checkpoint safely: {str(e).splitlines()[0]}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise InputError(path, "not an avs training checkpoint")
    if ckpt.get("version") != CHECKPOINT_VERSION:
        raise InputError(path, f"checkpoint version {ckpt.get('version')} is not {CHECKPOINT_VERSION}")
    return ckpt


def train(
    config: str | os.PathLike | ModelConfig,
    train_data: CaptionData,
    val_data: CaptionData,
    out_dir: str | os.PathLike,
    *,
    epochs: int = 80,
    batch_size: int = 64,
    lr: float = 1e-4,
    device: str = "cpu",
    seed: int = 2,
    resume: bool = False,
    force: bool = False,
    mask_same_video: bool = False,
    word2vec: str | os.PathLike | None = None,
    clip_checkpoint: str | os.PathLike | None = None,
    clip_bpe: str | os.PathLike | None = None,
    vocab_threshold: int = 5,
    patience: int = 10,
    grad_clip: float = 2.0,
    metric: str = "mir",
    eval_batch_size: int = 256,
    progress: bool = True,
    on_epoch: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Train ``config`` on ``train_data``, select on ``val_data`` (both from :func:`open_data`), write MODEL_DIR.

    The recipe is the official one (docs/training.md). Training state lives in ``<out_dir>.training/``
    (``checkpoint.pt`` after every epoch, ``best.pt``, ``train_log.jsonl``) until the model directory is
    complete; then it is renamed into place and the state removed. ``resume`` continues from that checkpoint
    and gives the same weights as an uninterrupted run. ``on_epoch`` is called with each epoch's log record
    after its checkpoint is written.
    """
    from avs.features.vocab import build_vocab
    from avs.features.word2vec import Word2Vec, word2vec_path

    word2vec = word2vec_path(word2vec)  # a given path must exist, needed or not
    cfg = config if isinstance(config, ModelConfig) else load_config(config)
    if metric not in METRICS:
        raise InputError(None, f"validation metric {metric!r} is not one of {', '.join(METRICS)}")
    if epochs < 1 or batch_size < 2 or lr <= 0 or patience < 1:
        raise InputError(None, "epochs and patience must be >= 1, batch size >= 2 and the learning rate > 0")
    out = Path(out_dir)
    work = out.with_name(out.name + ".training")
    ckpt_path, best_path, log_path = work / "checkpoint.pt", work / "best.pt", work / LOG_NAME
    if out.exists() and not force:
        raise InputError(out, "already exists (use --force to overwrite)")
    if resume and not ckpt_path.is_file():
        raise InputError(ckpt_path, "no training checkpoint to resume from")
    if not resume and work.exists():
        if not force:
            raise InputError(
                work,
                "holds an interrupted training of this model directory: use --resume to "
                "continue it or --force to start over",
            )
        shutil.rmtree(work)

    vnames = _video_names(cfg)
    check_video_features(cfg, train_data.video_dims(vnames), train_data.path)
    check_video_features(cfg, val_data.video_dims(vnames), val_data.path)

    # vocabularies from the training captions only
    texts = train_data.dataset.captions["text"].tolist()
    vocabs = {}
    for f in cfg.text:
        if f.kind in VOCAB_KIND:
            vocabs[f.name] = build_vocab(texts, VOCAB_KIND[f.kind], vocab_threshold)
            if len(vocabs[f.name]) == (4 if f.kind == "gru" else 0):
                raise InputError(
                    train_data.path,
                    f"no word occurs {vocab_threshold} times in the training "
                    f"captions: the {f.name} vocabulary is empty (lower --vocab-threshold)",
                )
    uses_w2v = any(f.kind in ("w2v", "gru") for f in cfg.text)
    w2v = Word2Vec.load(word2vec) if word2vec is not None and uses_w2v else None
    clip = _clip_encoder(clip_checkpoint, clip_bpe, device)
    featurizer = _featurizer(cfg, vocabs, train_data, w2v, clip)
    val_featurizer = _featurizer(cfg, vocabs, val_data, w2v, clip)
    vdims = train_data.video_dims(vnames)
    cfg = cfg.with_dims(video=vdims, text=featurizer.dims)
    check_video_features(cfg, val_data.video_dims(vnames), val_data.path)
    _check_text_dims(cfg, val_featurizer, val_data.path)

    settings = {
        "config": cfg.to_dict(),
        "train": train_data.name,
        "val": val_data.name,
        "train_captions": len(texts),
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "mask_same_video": mask_same_video,
        "vocab_threshold": vocab_threshold,
        "patience": patience,
        "grad_clip": grad_clip,
        "metric": metric,
        "device": str(device),
        "word2vec": None if w2v is None else os.fspath(Path(word2vec).resolve()),
        "clip_checkpoint": None if clip is None else os.fspath(Path(clip_checkpoint).resolve()),
        "clip_bpe": None if clip is None else os.fspath(Path(clip_bpe).resolve()),
    }

    torch.manual_seed(seed)
    model = TextVideoModel(cfg)
    if model.gru is not None:
        gru_name = next(f.name for f in cfg.text if f.kind == "gru")
        model.gru.init_embeddings(vocabs[gru_name], w2v)
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.RMSprop(params, lr=lr)
    step_lr = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.99)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.5, patience=2)
    shuffle = torch.Generator().manual_seed(seed)
    start, best, best_epoch, since_best, records = 0, -math.inf, 0, 0, []

    if resume:
        ckpt = _load_checkpoint(ckpt_path)
        before, now = json.loads(ckpt["settings"]), json.loads(json.dumps(settings))
        changed = sorted(
            k for k in set(before) | set(now) if k not in RESUMABLE_CHANGES and before.get(k) != now.get(k)
        )
        if changed:
            raise InputError(
                ckpt_path,
                f"was written with other settings or data ({', '.join(changed)} differ); "
                "resume with the same ones, or start over with --force",
            )
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        step_lr.load_state_dict(ckpt["step_lr"])
        plateau.load_state_dict(ckpt["plateau"])
        start, best, best_epoch, since_best = ckpt["epoch"], ckpt["best"], ckpt["best_epoch"], ckpt["since_best"]
        _set_rng_state(ckpt["rng"])
        shuffle.set_state(ckpt["rng"]["shuffle"])
        if log_path.exists():  # a log line may be newer than the checkpoint it should follow
            records = [r for r in map(json.loads, log_path.read_text().splitlines()) if r["epoch"] <= start]
        log.info("resuming %s after epoch %d (best %s %.4f at epoch %d)", out, start, metric, best, best_epoch)
    work.mkdir(parents=True, exist_ok=True)
    _write_log(log_path, records)

    caps = train_data.dataset.captions
    cap_ids = caps["caption_id"].tolist()
    cap_video = torch.from_numpy(_caption_video_index(train_data))
    train_video = _video_tensors(train_data, cfg)
    val_video = _video_tensors(val_data, cfg)
    train_frames, val_frames = _frame_reader(train_data, cfg), _frame_reader(val_data, cfg)
    val_caption_video = _caption_video_index(val_data)
    stopped_early = since_best >= patience
    for epoch in range(start + 1, epochs + 1):
        if stopped_early:
            break
        t0 = time.perf_counter()
        model.train()
        lr_now = optimizer.param_groups[0]["lr"]
        batches = _batches(torch.randperm(len(texts), generator=shuffle), batch_size)
        total = 0.0
        bar = tqdm(
            batches,
            desc=f"epoch {epoch}/{epochs}",
            unit="batch",
            leave=False,
            file=sys.stderr,
            disable=None if progress else True,
        )
        for idx in bar:
            rows = idx.tolist()
            text_in = _to(featurizer.featurize([texts[i] for i in rows], [cap_ids[i] for i in rows]), device)
            vids = cap_video[idx]
            video_in = {k: v[vids].to(device) for k, v in train_video.items()}
            frames_in = () if train_frames is None else [t.to(device) for t in train_frames(vids.tolist())]
            same = (vids[:, None] == vids[None, :]).to(device) if mask_same_video else None
            loss = model.loss(model.encode_text(text_in), model.encode_video(video_in, *frames_in), same)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
            optimizer.step()
            batch_loss = loss.item()
            total += batch_loss
            bar.set_postfix(loss=f"{batch_loss:.3f}")
        bar.close()

        scores = score_captions(model, val_featurizer, val_data, val_video, eval_batch_size, device, val_frames)
        val = retrieval_metrics(scores, [[int(v)] for v in val_caption_video])
        value = val[metric]
        step_lr.step()
        plateau.step(value)
        is_best = value > best
        if is_best:
            best, best_epoch, since_best = value, epoch, 0
            _atomic_torch_save({k: v.detach().cpu() for k, v in model.state_dict().items()}, best_path)
        else:
            since_best += 1
        record = {
            "epoch": epoch,
            "loss": total / len(batches),
            "lr": lr_now,
            **{f"val_{k}": val[k] for k in METRICS},
            "best": is_best,
            "seconds": round(time.perf_counter() - t0, 3),
        }
        records.append(record)
        _write_log(log_path, records)
        _atomic_torch_save(
            {
                "format": CHECKPOINT_FORMAT,
                "version": CHECKPOINT_VERSION,
                "epoch": epoch,
                "settings": json.dumps(settings, sort_keys=True),
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "step_lr": step_lr.state_dict(),
                "plateau": plateau.state_dict(),
                "best": best,
                "best_epoch": best_epoch,
                "since_best": since_best,
                "rng": {**_rng_state(), "shuffle": shuffle.get_state()},
            },
            ckpt_path,
        )
        if progress:
            tqdm.write(
                f"epoch {epoch}: loss {record['loss']:.4f}, val {metric} {value:.4f}"
                f"{' (best)' if is_best else ''}, lr {lr_now:.3g}, {record['seconds']:.1f}s",
                file=sys.stderr,
            )
        if on_epoch is not None:
            on_epoch(record)
        stopped_early = since_best >= patience

    if best_epoch == 0:
        raise InputError(ckpt_path, "no epoch was trained (is --epochs below the epochs already done?)")
    model.load_state_dict(torch.load(best_path, map_location="cpu", weights_only=True))
    best_record = next(r for r in records if r["epoch"] == best_epoch)
    best_metrics = {k: best_record[f"val_{k}"] for k in METRICS}
    meta = {
        "config_name": cfg.name,
        "train_data": os.fspath(train_data.path.resolve()),
        "val_data": os.fspath(val_data.path.resolve()),
        "word2vec": settings["word2vec"],
        "clip_checkpoint": settings["clip_checkpoint"],
        "clip_bpe": settings["clip_bpe"],
        "best_epoch": best_epoch,
        "epochs_run": len(records),
        "stopped_early": stopped_early,
        "validation_metric": metric,
        "validation": best_metrics,
        "training": {
            k: settings[k]
            for k in (
                "epochs",
                "batch_size",
                "lr",
                "seed",
                "mask_same_video",
                "vocab_threshold",
                "patience",
                "grad_clip",
            )
        },
    }
    staged = save_model(model, work / "model", vocabs, meta, force=True)
    shutil.copyfile(log_path, staged / LOG_NAME)
    if out.exists():
        shutil.rmtree(out)
    os.replace(staged, out)
    shutil.rmtree(work)
    return TrainResult(out, best_epoch, best_metrics, len(records), stopped_early, records)


def _write_log(path: Path, records: list[dict]) -> None:
    """Rewrite the JSON-lines log whole (it is small), atomically, so it always matches the checkpoint."""
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
    os.replace(tmp, path)


__all__ = [
    "CaptionData",
    "open_data",
    "train",
    "TrainResult",
    "evaluate_retrieval",
    "encode_captions",
    "encode_videos",
    "score_captions",
]
