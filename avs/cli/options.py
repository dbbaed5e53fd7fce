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


def executor_options(fn):
    """--executor local|ray, --workers N, --ray-address ADDR: the pieces of work (videos, shards) spread over
    worker processes or a Ray cluster; without --executor everything runs in this process."""
    fn = click.option("--ray-address", help="Ray cluster address (default: $RAY_ADDRESS, else a local cluster).")(fn)
    fn = click.option("--workers", type=click.IntRange(min=1), help="Worker processes (default: one a core).")(fn)
    return click.option(
        "--executor",
        type=click.Choice(["local", "ray"]),
        help="Spread the work over worker processes (local) or a Ray cluster (ray, avs[ray]).",
    )(fn)


def make_executor(executor: str | None, workers: int | None, ray_address: str | None):
    if executor is None:
        if ray_address is not None or workers is not None:
            raise click.UsageError("--workers and --ray-address go with --executor")
        return None
    from avs.engine.executor import Executor

    return Executor(executor, workers=workers, address=ray_address)
