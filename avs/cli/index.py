"""``avs index``: encode a collection store once into a model's joint spaces."""

from __future__ import annotations

import click

from avs.cli.group import cli
from avs.cli.options import device_option, executor_options, make_executor


@cli.command("index")
@click.option("--model", "model_dir", required=True, type=click.Path(file_okay=False), help="Model directory.")
@click.option("--collection", required=True, type=click.Path(dir_okay=False), help="Collection store (HDF5).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Index file to write (HDF5).")
@click.option(
    "--shards",
    type=click.IntRange(min=1),
    help="Split into N shard files beside OUT (OUT.shard<i>of<N>.h5); OUT is their manifest.",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=2048, show_default=True)
@device_option
@executor_options
@click.option("--force", is_flag=True, help="Overwrite OUT.")
def index_cmd(model_dir, collection, out, shards, batch_size, device, executor, workers, ray_address, force) -> None:
    """Encode every shot of COLLECTION once into the model's joint spaces (resumes an interrupted build)."""
    from avs.engine.index import build_index
    from avs.engine.shards import build_sharded_index

    ex = make_executor(executor, workers, ray_address)
    if shards is None:
        if ex is not None:
            raise click.UsageError("--executor builds shards: give --shards N")
        path = build_index(model_dir, collection, out, batch_size=batch_size, device=device, force=force)
    else:
        path = build_sharded_index(model_dir, collection, out, shards, batch_size, device, force, executor=ex)
    click.echo(f"wrote {path}")


@cli.command("index-shards")
@click.argument("shards", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Manifest to write.")
@click.option("--force", is_flag=True, help="Overwrite OUT.")
def index_shards_cmd(shards, out, force) -> None:
    """Gather indexes built apart (other stores, other machines; one model) into one sharded index OUT."""
    from avs.engine.shards import write_manifest

    path = write_manifest(out, shards, force=force)
    click.echo(f"wrote {path}: {len(shards)} shards")


@cli.command("index-ann")
@click.argument("index_file", type=click.Path(dir_okay=False))
@click.option("--nlist", type=click.IntRange(min=1), help="Inverted lists (default about sqrt(shots)).")
@click.option("--force", is_flag=True, help="Overwrite INDEX.faiss.")
def index_ann_cmd(index_file, nlist, force) -> None:
    """Build the FAISS index of INDEX (or of every shard of a manifest) for `avs search --ann` / `avs serve --ann`."""
    from avs.engine.ann import build_ann_all

    for path in build_ann_all(index_file, nlist=nlist, force=force):
        click.echo(f"wrote {path}")
