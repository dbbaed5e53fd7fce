"""Options shared by several commands."""

from __future__ import annotations

import click


def _device(ctx, param, value: str) -> str:
    import torch

    try:
        device = torch.device(value)
    except RuntimeError:
        raise click.BadParameter(f"{value!r} is not a torch device (e.g. cpu, cuda, cuda:1)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise click.BadParameter(f"{value!r}: this torch build or machine has no CUDA device")
    return value


def read_topics_option(path: str | None, number_from: int | None):
    """The topics of a ``--topics`` file, numbered from ``--number-from`` when it is a list of bare texts."""
    from avs.formats.topics import read_topics

    return None if path is None else read_topics(path, labels=False, number_from=number_from)


number_from_option = click.option(
    "--number-from",
    type=click.IntRange(min=1),
    metavar="N",
    help="The topic file is a list of bare topic texts (one a line, no numbers, e.g. TRECVID 2016-2018's 90 "
    "lines): number them N, N+1, ...",
)

device_option = click.option(
    "--device", default="cpu", show_default=True, callback=_device, help="torch device, e.g. cpu, cuda, cuda:1."
)


out_folder_option = click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Also write the tables (CSV, Markdown) and plots (PNG) into this directory.",
)
force_files_option = click.option("--force", is_flag=True, help="Overwrite files already in --out.")


def echo_written(paths) -> None:
    for p in paths:
        click.echo(f"wrote {p}", err=True)


DATA_HELP = "ROOT/COLLECTION in RUC's layout (TextData, VideoSets, FeatureData); see docs/training.md."


def data_option(flag: str, dest: str, help: str):
    """A required caption-collection folder (ROOT/COLLECTION in RUC's layout)."""
    return click.option(flag, dest, required=True, type=click.Path(file_okay=False), help=help)
