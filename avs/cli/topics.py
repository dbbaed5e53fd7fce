"""``avs topics``: show, convert and encode topic files."""

from __future__ import annotations

import re

import click

from avs.cli.group import cli
from avs.cli.options import number_from_option, read_topics_option
from avs.cli.render import emit
from avs.formats import topics as T
from avs.formats.fileio import atomic_write, check_writable


@cli.group("topics")
def topics_group() -> None:
    """TRECVID topic files (XML or NUM<TAB>text lists)."""


def _check_year(value: str | None) -> str | None:
    m = None if value is None else re.fullmatch(r"(20\d\d)(?:-(20\d\d))?", value)
    if value is not None and (m is None or (m.group(2) and m.group(2) <= m.group(1))):
        raise click.BadParameter(f"{value!r}: expected a year (2016) or a range of years, earliest first (2019-2021)")
    return value


_strip_zeros = click.option(
    "--strip-zeros", is_flag=True, help="Write topic numbers without leading zeros (default: as the file writes them)."
)


@topics_group.command("show")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["table", "tsv", "json"]), default="table", show_default=True)
@click.option(
    "--labels",
    type=click.Path(dir_okay=False),
    default=None,
    help="Label table (TSV); default: the shipped topics/labels.tsv.",
)
@number_from_option
@_strip_zeros
def show(file: str, fmt: str, labels: str | None, number_from, strip_zeros) -> None:
    """Print the topics of FILE with their object/person/action/location labels."""
    import pandas as pd

    ts = T.read_topics(file, labels=labels or True, number_from=number_from, strip_zeros=strip_zeros)
    df = T.topics_frame(ts)
    if fmt == "table":
        for lab in T.LABELS:
            df[lab] = df[lab].map(lambda v: "?" if v is None or pd.isna(v) else "x" if v else "")
    emit(df, fmt)


@topics_group.command("convert")
@click.argument("src", type=click.Path(dir_okay=False))
@click.argument("dst", type=click.Path(dir_okay=False))
@click.option(
    "--year",
    callback=lambda ctx, param, v: _check_year(v),
    help="Year(s) the topics were released, YYYY or YYYY-YYYY (XML output; inferred from NIST numbering).",
)
@click.option("--collection", type=click.Choice(["IACC.3", "V3C1", "V3C2"]), help="Collection (XML output).")
@click.option("--task", type=click.Choice(["main", "progress"]), help="Task (XML output).")
@number_from_option
@_strip_zeros
@click.option("--force", is_flag=True, help="Overwrite DST.")
def convert(src: str, dst: str, year, collection, task, number_from, strip_zeros, force: bool) -> None:
    """Convert a topic file; DST ending in .xml gets the canonical XML, anything else NUM<TAB>text."""
    check_writable(dst, force, inputs=[src])
    ts = T.read_topics(src, labels=False, number_from=number_from, strip_zeros=strip_zeros)
    if dst.endswith(".xml"):
        ts = T.with_origin(ts, year=year, collection=collection, task=task)
        atomic_write(dst, T.to_xml(ts), force=force)
    else:
        atomic_write(dst, T.to_text(ts), force=force)


@topics_group.command("encode")
@click.option("--model", "model_dir", required=True, type=click.Path(file_okay=False))
@click.option("--topics", "topics_file", required=True, type=click.Path(dir_okay=False))
@number_from_option
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Output .npy (topics × S·d).")
@click.option("--word2vec", type=click.Path(), help="Word2vec model (default: the model's).")
@click.option("--force", is_flag=True)
def encode_cmd(model_dir, topics_file, number_from, out, word2vec, force) -> None:
    """Write the topic embeddings (rows in topic order; per-space unit vectors, concatenated)."""
    import io

    import numpy as np

    from avs.engine.encode import encode_topics, flatten, text_featurizer
    from avs.formats.fileio import atomic_write, check_writable
    from avs.models import load_model

    check_writable(out, force, inputs=[topics_file, word2vec])
    loaded = load_model(model_dir)
    topics = read_topics_option(topics_file, number_from)
    emb = flatten(encode_topics(loaded, text_featurizer(loaded, word2vec=word2vec), topics))
    buf = io.BytesIO()
    np.save(buf, emb)
    atomic_write(out, buf.getvalue(), force=force)
    click.echo(f"wrote {out}: {emb.shape[0]} topics x {emb.shape[1]}")
