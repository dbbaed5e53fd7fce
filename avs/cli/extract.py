"""``avs extract``: video files to a collection store (shots, keyframes, CLIP image features)."""

from __future__ import annotations

import sys

import click

from avs.cli.group import cli
from avs.cli.options import device_option, executor_options, make_executor


@cli.command("extract")
@click.argument("videos", nargs=-1, required=True, type=click.Path())
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Collection store to write (HDF5).")
@click.option("--checkpoint", required=True, type=click.Path(dir_okay=False), help="CLIP state dict (your file).")
@click.option(
    "--clip-config",
    help="Architecture name (ViT-B-32, ViT-L-14-quickgelu, ...) or open_clip model-config JSON; default: from the "
    "checkpoint's shapes, head width 64.",
)
@click.option("--shots", type=click.Choice(["msb", "transnetv2", "content"]), help="Default: msb with --msb.")
@click.option("--msb", "msb_dir", type=click.Path(file_okay=False), help="V3C master shot files, <video>.tsv.")
@click.option("--msb-out", type=click.Path(file_okay=False), help="Write the shots found here as <video>.tsv.")
@click.option("--frames-per-shot", type=click.IntRange(min=0), default=0, show_default=True, help="Frame feature.")
@click.option("--thumbs", type=click.Path(file_okay=False), help="Write shot<video>_<n>_RKF.jpg keyframes here.")
@click.option("--feature", default="clip", show_default=True, help="Feature name in the store.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@device_option
@executor_options
@click.option("--force", is_flag=True, help="Overwrite --out (and restart an extraction of other settings).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def extract_cmd(videos, out, force, quiet, executor, workers, ray_address, **options) -> None:
    """Extract VIDEOS (files, folders, or .txt lists of paths) into a store; exit 1 if any video was skipped."""
    from avs.extract.pipeline import ExtractConfig, extract, summary

    ex = make_executor(executor, workers, ray_address)
    result = extract(videos, out, ExtractConfig(**options), force=force, progress=not quiet, executor=ex)
    for line in summary(result):
        click.echo(line, err=line.startswith(" ") or line.startswith("skipped"))
    if result.skipped:
        sys.exit(1)
