"""``avs index``: encode a collection store once into a model's joint spaces."""

from __future__ import annotations

import click

from avs.cli.group import cli
from avs.cli.options import device_option


@cli.command("index")
@click.option("--model", "model_dir", required=True, type=click.Path(file_okay=False), help="Model directory.")
@click.option("--collection", required=True, type=click.Path(dir_okay=False), help="Collection store (HDF5).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Index file to write (HDF5).")
@click.option("--batch-size", type=click.IntRange(min=1), default=2048, show_default=True)
@device_option
@click.option("--force", is_flag=True, help="Overwrite OUT.")
def index_cmd(model_dir, collection, out, batch_size, device, force) -> None:
    """Encode every shot of COLLECTION once into the model's joint spaces (resumes an interrupted build)."""
    from avs.engine.index import build_index

    path = build_index(model_dir, collection, out, batch_size=batch_size, device=device, force=force)
    click.echo(f"wrote {path}")
