"""``avs collection``: import pre-extracted features into an HDF5 store, describe and check stores."""

from __future__ import annotations

import json

import click

from avs.cli.group import cli
from avs.cli.render import FORMATS, emit


@cli.group("collection")
def collection_group() -> None:
    """HDF5 feature stores of shot (or video) collections (docs/collection-store.md)."""


@collection_group.group("import")
def import_group() -> None:
    """Build a store from BigFile folders, VISIONE HDF5 files or .npy arrays."""


def _check_name(ctx, param, value: str | None) -> str | None:
    if value is not None and (not value.strip() or not value.isprintable()):
        raise click.BadParameter(f"{value!r}: a collection name needs printable, non-blank text")
    return value


def _common_options(f):
    options = [
        click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="Store to write (.h5)."),
        click.option(
            "--name", callback=_check_name, help="Collection name recorded in the store (default: OUT's stem)."
        ),
        click.option(
            "--dtype",
            type=click.Choice(["float32", "float16"]),
            default="float32",
            show_default=True,
            help="Storage dtype; float32 keeps the input bit for bit.",
        ),
        click.option("--drop-incomplete", is_flag=True, help="Leave out ids that some feature lacks (else an error)."),
        click.option(
            "--exclude",
            "excludes",
            multiple=True,
            metavar="LIST",
            help="File of ids to leave out (e.g. dropped shots); 'V3C1' = the shipped V3C1 dropped-shots list.",
        ),
        click.option("--allow-nonfinite", is_flag=True, help="Store NaN/inf values instead of refusing."),
        click.option("--force", is_flag=True, help="Overwrite OUT."),
    ]
    for opt in reversed(options):
        f = opt(f)
    return f


def _import_kwargs(inputs, out, name, dtype, drop_incomplete, excludes, allow_nonfinite, force) -> dict:
    from avs.formats.fileio import check_writable
    from avs.formats.shots import shots_to_exclude

    check_writable(out, force, inputs=[*inputs, *excludes])  # refuse before reading any input
    exclude: set[str] = set()
    for e in excludes:
        exclude |= shots_to_exclude(e)
    return dict(
        out=out,
        name=name,
        dtype=dtype,
        drop_incomplete=drop_incomplete,
        exclude=exclude,
        allow_nonfinite=allow_nonfinite,
        force=force,
    )


def _report(result) -> None:
    dims = ", ".join(f"{k} ({v})" for k, v in result.features.items())
    frames = "".join(f", {k} ({v}, frames)" for k, v in result.frame_features.items())
    click.echo(f"{result.path}: {result.rows} rows; features {dims}{frames}", err=True)
    if result.dropped_incomplete:
        click.echo(f"  left out {result.dropped_incomplete} ids that some feature lacks", err=True)
    if result.excluded:
        click.echo(f"  left out {result.excluded} excluded ids", err=True)


@import_group.command("bigfile")
@click.argument("dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option(
    "--frames",
    "frame_dirs",
    multiple=True,
    type=click.Path(file_okay=False),
    metavar="DIR",
    help="Frame-level BigFile folder (FeatureData/frame/<name>, ids <videoid>_<frameidx>); repeatable.",
)
@click.option(
    "--max-frames",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="Keep the first this many frames of a video (by frame index), as LAFF-ml does.",
)
@_common_options
def import_bigfile(dirs, frame_dirs, max_frames, **opts) -> None:
    """Import RUC BigFile feature folders (shape.txt, id.txt, feature.bin), aligned by id."""
    from avs.features.importers import import_bigfile as run

    _report(run(dirs, frames=frame_dirs, max_frames=max_frames, **_import_kwargs([*dirs, *frame_dirs], **opts)))


@import_group.command("npy")
@click.argument("arrays", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--ids", required=True, type=click.Path(dir_okay=False), help="Ids of the array rows, one per line.")
@_common_options
def import_npy(arrays, ids, **opts) -> None:
    """Import .npy arrays (rows x dim) whose rows follow --ids; each file stem names a feature."""
    from avs.features.importers import import_npy as run

    _report(run(arrays, ids, **_import_kwargs([*arrays, ids], **opts)))


@import_group.command("visione")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--feature", help="Feature name for all FILES (default: each file's features_name attribute).")
@_common_options
def import_visione(files, feature, **opts) -> None:
    """Import VISIONE per-video HDF5 feature files (datasets ids, data)."""
    from avs.features.importers import import_visione as run

    _report(run(files, feature=feature, **_import_kwargs(files, **opts)))


@collection_group.command("info")
@click.argument("store", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
def info(store: str, fmt: str) -> None:
    """Ids, features, dims, dtypes and size of STORE."""
    import pandas as pd

    from avs.formats.store import info as run

    d = run(store)
    feats = pd.DataFrame(d["features"])
    if fmt == "json":
        click.echo(json.dumps(d, indent=2, ensure_ascii=False))
        return
    if fmt == "table":
        click.echo(
            f"{d['path']}: collection {d['name']}, {d['rows']} ids ({d['first_id']} .. {d['last_id']}), "
            f"{d['size_bytes'] / 1e6:.1f} MB"
        )
    if d["frames"]:  # one table for both levels; frame counts only apply to frame-level rows
        frames = pd.DataFrame(d["frames"]).astype({"frames": "Int64", "max_frames": "Int64"})
        feats = pd.concat([feats.assign(level="video"), frames.assign(level="frame")], ignore_index=True)
    emit(feats, fmt)


@collection_group.command("check")
@click.argument("store", type=click.Path(dir_okay=False))
def check(store: str) -> int:
    """Look for NaN/inf, all-zero rows, duplicate ids and dtype/shape mismatches; exit 1 if any."""
    from avs.formats.store import check as run

    problems = run(store)
    for p in problems:
        click.echo(f"{store}: {p}")
    if not problems:
        click.echo(f"{store}: ok")
    return 1 if problems else 0
