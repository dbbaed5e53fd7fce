"""``avs train`` and ``avs ablate``: train text-to-video models on caption datasets (one config, or each fusion
config of the ablation, LAFF supplement Tab. 11)."""

from __future__ import annotations

import click

from avs.cli.group import cli
from avs.cli.options import DATA_HELP, data_option, device_option, echo_written, force_files_option
from avs.cli.render import emit


@cli.command("train")
@click.option(
    "--config",
    "config_name",
    default="laff",
    show_default=True,
    help="Shipped model config name (avs model summary --list) or a TOML file.",
)
@data_option("--train", "train_path", DATA_HELP)
@data_option("--val", "val_path", "Validation collection (same layout), used to pick the best epoch.")
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
    from avs.train import TrainConfig, open_data, train

    recipe = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        device=device,
        seed=seed,
        mask_same_video=mask_same_video,
        word2vec=word2vec,
        clip_checkpoint=clip_checkpoint,
        clip_bpe=clip_bpe,
        vocab_threshold=vocab_threshold,
        patience=patience,
    )
    cfg = load_config(config_name)
    train_data, val_data = open_data(train_path, cfg, train_store), open_data(val_path, cfg, val_store)
    result = train(cfg, train_data, val_data, out_dir, recipe, resume=resume, force=force, progress=not quiet)
    stop = "early stop" if result.stopped_early else "last epoch"
    m = result.best_metrics
    click.echo(
        f"{result.model_dir}: best epoch {result.best_epoch} of {result.epochs_run} ({stop}); validation "
        f"mIR {m['mir']:.4f}, R@1 {m['r1']:.2f}, R@5 {m['r5']:.2f}, R@10 {m['r10']:.2f}"
    )


def _names(ctx, param, value: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise click.BadParameter("expected comma-separated config names")
    return names


@cli.command("ablate")
@click.option(
    "--configs",
    required=True,
    callback=_names,
    help="Comma-separated shipped config names or TOML files, e.g. laff,concat,mhsa,attention_free.",
)
@data_option("--train", "train_data", "Training captions (ROOT/COLLECTION, RUC layout).")
@data_option("--val", "val_data", "Validation captions.")
@data_option("--test", "test_data", "Test captions.")
@click.option("--store", type=click.Path(dir_okay=False), help="Collection store with the video features.")
@click.option(
    "--features",
    help="Config (name or TOML) whose features and space size every config takes, so "
    "that only the fusion block differs (e.g. sim_laff for a simulated collection).",
)
@click.option("--baseline", default="concat", show_default=True, help="Config the mAP change is relative to.")
@click.option("--epochs", type=click.IntRange(min=1), default=80, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=2), default=64, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-4, show_default=True)
@click.option("--seed", type=int, default=2, show_default=True)
@click.option("--word2vec", type=click.Path(), help="word2vec model, if the configs' text side uses one.")
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Keep the trained models in DIR/models/ and write ablation.csv / ablation.md there.",
)
@force_files_option
def ablate(out, force, **options) -> None:
    """Train each fusion config on the same data; R@1/5/10, MedR, mAP and mAP change vs the baseline (Tab. 11)."""
    from avs.eval.report import write_outputs
    from avs.train.ablation import ablation_files, run_ablation

    res = run_ablation(out_dir=out, force=force, **options)
    test_data = options["test_data"]
    click.echo(f"fusion blocks, text-to-video on {test_data} (mAP change relative to {res.baseline})")
    emit(res.table, "table")
    if out:
        echo_written(write_outputs(out, ablation_files(res), force))
