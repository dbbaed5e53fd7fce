"""``avs model``: inspect model architectures and trained models."""

from __future__ import annotations

import click

from avs.cli import cli
from avs.cli.render import emit


def _name_dims(ctx, param, values: tuple[str, ...]) -> dict[str, int]:
    out = {}
    for v in values:
        name, sep, dim = v.partition("=")
        if not sep or not dim.isdigit() or int(dim) < 1:
            raise click.BadParameter(f"{v!r}: expected NAME=DIM with a positive integer DIM")
        out[name] = int(dim)
    return out


@cli.group("model")
def model_group() -> None:
    """Model architectures (LAFF and its ablation) and trained model directories."""


@model_group.command("summary")
@click.option(
    "--config",
    "config_name",
    default="laff",
    show_default=True,
    help="Shipped config name (see --list) or a TOML file.",
)
@click.option("--bow-vocab", type=click.IntRange(min=1), help="Size of the bow vocabulary.")
@click.option("--gru-vocab", type=click.IntRange(min=1), help="Size of the GRU vocabulary (specials included).")
@click.option("--video-feature", multiple=True, callback=_name_dims, help="NAME=DIM of a video feature.")
@click.option("--text-feature", multiple=True, callback=_name_dims, help="NAME=DIM of a text feature.")
@click.option("--list", "list_only", is_flag=True, help="List the shipped configs and exit.")
def summary(config_name, bow_vocab, gru_vocab, video_feature, text_feature, list_only) -> None:
    """Modules and trainable parameter counts of an architecture."""
    from avs.models import TextVideoModel, count_parameters, list_configs, load_config
    from avs.models.summary import parameter_table

    if list_only:
        for name in list_configs():
            click.echo(f"{name}\t{load_config(name).description}")
        return
    cfg = load_config(config_name)
    text_dims = dict(text_feature)
    for f in cfg.text:
        if f.kind == "bow" and bow_vocab:
            text_dims[f.name] = bow_vocab
        if f.kind == "gru" and gru_vocab:
            text_dims[f.name] = gru_vocab
    cfg = cfg.with_dims(video=video_feature, text=text_dims)
    missing = [f.name for f in (*cfg.video, *cfg.text) if f.dim is None]
    if missing:
        raise click.UsageError(
            f"dimension unknown for {', '.join(missing)} "
            f"(give --bow-vocab / --gru-vocab / --video-feature / --text-feature)"
        )
    model = TextVideoModel(cfg)
    click.echo(f"config: {cfg.name} - {cfg.description}")
    click.echo(f"spaces: {cfg.spaces} x {cfg.space_size}")
    emit(parameter_table(model), "table")
    click.echo(f"trainable parameters: {count_parameters(model)}")
