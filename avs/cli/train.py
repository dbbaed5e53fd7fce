"""``avs train`` and ``avs eval retrieval``: train text-to-video models on caption datasets and score them."""

from __future__ import annotations

import json

import click

from avs.cli import cli
from avs.cli.eval import eval_group
from avs.cli.options import device_option
from avs.cli.render import emit

DATA_HELP = "ROOT/COLLECTION in RUC's layout (TextData, VideoSets, FeatureData); see docs/training.md."


@cli.command("train")
@click.option(
    "--config",
    "config_name",
    default="laff",
    show_default=True,
    help="Shipped model config name (avs model summary --list) or a TOML file.",
)
@click.option("--train", "train_path", required=True, type=click.Path(file_okay=False), help=DATA_HELP)
@click.option(
    "--val",
    "val_path",
    required=True,
    type=click.Path(file_okay=False),
    help="Validation collection (same layout), used to pick the best epoch.",
)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Model directory to write.")
@click.option(
    "--train-store",
    type=click.Path(dir_okay=False),
    help="Read the training video features from this avs collection store instead of FeatureData/.",
)
@click.option("--val-store", type=click.Path(dir_okay=False), help="The same for the validation collection.")
@click.option("--epochs", type=click.IntRange(min=1), default=80, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=2), default=64, show_default=True)
@click.option(
    "--lr", type=click.FloatRange(min=0, min_open=True), default=1e-4, show_default=True, help="RMSprop learning rate."
)
@device_option
@click.option("--seed", type=int, default=2, show_default=True)
@click.option("--resume", is_flag=True, help="Continue the interrupted training of --out from its checkpoint.")
@click.option(
    "--mask-same-video",
    is_flag=True,
    help="Do not use captions of the same video as negatives (the official code does).",
)
@click.option(
    "--word2vec",
    type=click.Path(),
    help="word2vec (binary, text or RUC BigFile folder) for w2v features and the GRU's initial embeddings.",
)
@click.option(
    "--clip-checkpoint",
    type=click.Path(dir_okay=False),
    help="CLIP state_dict computing the clip text feature (when DATA has no TextData/<name>/ vectors).",
)
@click.option("--clip-bpe", type=click.Path(dir_okay=False), help="CLIP's BPE vocabulary file.")
@click.option(
    "--vocab-threshold",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Keep words seen at least this often in the training captions.",
)
@click.option(
    "--patience",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Stop after this many epochs without a better validation score.",
)
@click.option("--force", is_flag=True, help="Overwrite --out, or start over an interrupted training.")
@click.option("--quiet", is_flag=True, help="No progress bars or per-epoch lines.")
def train_cmd(
    config_name,
    train_path,
    val_path,
    out_dir,
    train_store,
    val_store,
    epochs,
    batch_size,
    lr,
    device,
    seed,
    resume,
    mask_same_video,
    word2vec,
    clip_checkpoint,
    clip_bpe,
    vocab_threshold,
    patience,
    force,
    quiet,
) -> None:
    """Train a text-to-video model (LAFF recipe) on --train, keeping the epoch best on --val."""
    from avs.models import load_config
    from avs.train.loop import open_data, train

    cfg = load_config(config_name)
    result = train(
        cfg,
        open_data(train_path, cfg, train_store),
        open_data(val_path, cfg, val_store),
        out_dir,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        device=device,
        seed=seed,
        resume=resume,
        force=force,
        mask_same_video=mask_same_video,
        word2vec=word2vec,
        clip_checkpoint=clip_checkpoint,
        clip_bpe=clip_bpe,
        vocab_threshold=vocab_threshold,
        patience=patience,
        progress=not quiet,
    )
    stop = "early stop" if result.stopped_early else "last epoch"
    m = result.best_metrics
    click.echo(
        f"{result.model_dir}: best epoch {result.best_epoch} of {result.epochs_run} ({stop}); validation "
        f"mIR {m['mir']:.4f}, R@1 {m['r1']:.2f}, R@5 {m['r5']:.2f}, R@10 {m['r10']:.2f}"
    )


@eval_group.command("retrieval")
@click.option("--model", "model_dir", required=True, type=click.Path(file_okay=False), help="Model directory.")
@click.option("--data", "data_path", required=True, type=click.Path(file_okay=False), help=DATA_HELP)
@click.option("--store", type=click.Path(dir_okay=False), help="Read the video features from this avs store.")
@device_option
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--word2vec", type=click.Path(), help="Override the word2vec the model was trained with.")
@click.option("--clip-checkpoint", type=click.Path(dir_okay=False), help="Override the model's CLIP checkpoint.")
@click.option("--clip-bpe", type=click.Path(dir_okay=False), help="Override the model's CLIP BPE file.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def retrieval(model_dir, data_path, store, device, batch_size, word2vec, clip_checkpoint, clip_bpe, fmt) -> None:
    """Text-to-video and video-to-text R@1/5/10, MedR, MeanR, mIR and mAP of a model on a caption collection."""
    from avs.eval.retrieval import metrics_table
    from avs.train.loop import evaluate_retrieval

    results = evaluate_retrieval(
        model_dir,
        data_path,
        store=store,
        device=device,
        batch_size=batch_size,
        word2vec=word2vec,
        clip_checkpoint=clip_checkpoint,
        clip_bpe=clip_bpe,
    )
    if fmt == "json":
        click.echo(json.dumps(results, indent=2))
    else:
        emit(metrics_table(results), "table")
