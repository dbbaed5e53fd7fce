"""``avs run``: validate, convert and fuse runs (NIST submission XML or TREC 6-column)."""

from __future__ import annotations

import math

import click

from avs.cli.group import cli
from avs.cli.options import number_from_option, read_topics_option
from avs.formats import runs as R
from avs.formats.fileio import check_writable

_prefix = click.option(
    "--topic-prefix", default="1", show_default=True, help="TREC topic id = this prefix + NIST topic number."
)


def _run_attributes(f):
    """Options that set the run attributes of XML output (and --elapsed for topics without a time)."""
    for opt in reversed(
        [
            click.option("--year", type=int, help="TRECVID year of the XML output (default: the input's DOCTYPE)."),
            click.option("--pid", help="Participant id (also the TREC tag)."),
            click.option("--priority", type=click.IntRange(1, 10), help="Run priority 1..10."),
            click.option("--desc", help="Run description."),
            click.option("--tr-type", type=click.Choice(["A", "D", "E", "F"]), help="Training type."),
            click.option("--class", "run_class", type=click.Choice(["M", "F", "R"]), help="Processing type."),
            click.option("--task", type=click.Choice(["M", "P"]), help="Main or progress task (2019 on)."),
            click.option("--novelty", type=click.Choice(["N", "C"]), help="Novelty or common run (2019 on)."),
            click.option(
                "--algo",
                type=click.Choice(["C", "V"]),
                help="2023 on: C concept-based, V other, e.g. embeddings (default: the input's, else V).",
            ),
            click.option(
                "--elapsed", type=click.IntRange(min=0), help="Elapsed whole seconds for topics that have none."
            ),
            click.option("--force", is_flag=True, help="Overwrite OUT."),
        ]
    ):
        f = opt(f)
    return f


def _attrs(opts: dict) -> dict:
    elapsed = opts.pop("elapsed")
    return dict(opts, elapsed=None if elapsed is None else str(elapsed))


def _weights(ctx, param, text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        weights = [float(w) for w in text.split(",")]
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected numbers separated by commas") from None
    if not all(math.isfinite(w) for w in weights):
        raise click.BadParameter(f"{text!r}: weights must be finite numbers")
    return weights


@cli.group("run")
def run_group() -> None:
    """Runs: NIST submission XML (.xml, .xml.gz) or TREC 6-column text."""


@run_group.command("validate")
@click.argument("run", type=click.Path(dir_okay=False))
@click.option("--topics", type=click.Path(dir_okay=False), help="Topic file: the run must answer exactly these.")
@number_from_option
@click.option(
    "--shots",
    type=click.Path(dir_okay=False),
    help="The valid shots: NIST's valid-shot table (VIDEO MAXSHOT per line, e.g. V3C2.validShotTable), "
    "a collection store, or a shot list (one id a line).",
)
@click.option("--pids", type=click.Path(dir_okay=False), help="NIST's participant list (one pid a line).")
@click.option("--year", type=int, help="TRECVID year whose rules apply (default: the DOCTYPE's).")
@_prefix
@click.pass_context
def validate(ctx, run: str, topics, number_from, shots, pids, year, topic_prefix: str) -> None:
    """Check RUN against its year's DTD and the rules of NIST's submission checker; print every problem as
    file:line: problem."""
    problems = R.validate(
        run, topics=read_topics_option(topics, number_from), shots=shots, year=year, prefix=topic_prefix, pids=pids
    )
    for p in problems:
        click.echo(str(p))
    if problems:
        ctx.exit(1)
    click.echo(f"{run}: valid")


@run_group.command("convert")
@click.argument("src", type=click.Path(dir_okay=False))
@click.argument("dst", type=click.Path(dir_okay=False))
@_run_attributes
@click.option("--top", type=click.IntRange(min=1), help="Keep only the best N items per topic.")
@_prefix
def convert(src: str, dst: str, year, force: bool, top, topic_prefix: str, **opts) -> None:
    """Convert a run; DST ending in .xml or .xml.gz gets NIST XML, anything else TREC (.gz compresses)."""
    check_writable(dst, force, inputs=[src])
    run = R.with_attributes(R.read_run(src, prefix=topic_prefix), **_attrs(opts))
    R.write_run(R.top(run, top) if top else run, dst, year=year, force=force, prefix=topic_prefix)


@run_group.command("fuse")
@click.argument("runs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="Output run (.xml or TREC).")
@click.option("--method", type=click.Choice(R.METHODS), default="rrf", show_default=True)
@click.option("--weights", callback=_weights, help="Comma-separated weight per run (default: all 1).")
@click.option("--norm", type=click.Choice(R.NORMS), help="Score normalization (combsum/combmnz; default minmax).")
@click.option("--k", type=click.IntRange(min=0), default=R.RRF_K, show_default=True, help="RRF constant.")
@click.option(
    "--depth", type=click.IntRange(1, R.MAX_ITEMS), default=R.MAX_ITEMS, show_default=True, help="Items kept per topic."
)
@_run_attributes
@_prefix
def fuse(
    runs, out: str, method: str, weights, norm, k: int, depth: int, year, force: bool, topic_prefix: str, **opts
) -> None:
    """Fuse RUNS (late fusion, per topic) into OUT."""
    check_writable(out, force, inputs=runs)
    fused = R.fuse(
        [R.read_run(p, prefix=topic_prefix) for p in runs], method=method, weights=weights, norm=norm, depth=depth, k=k
    )
    R.write_run(R.with_attributes(fused, **_attrs(opts)), out, year=year, force=force, prefix=topic_prefix)
