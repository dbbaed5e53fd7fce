"""``avs search``: the yearly job, topics in and a submission-ready run out."""

from __future__ import annotations

import os
from pathlib import Path

import click

from avs.cli.group import cli
from avs.cli.options import executor_options, make_executor, number_from_option, read_topics_option


@cli.command("search")
@click.option("--topics", "topics_file", required=True, type=click.Path(dir_okay=False))
@number_from_option
@click.option("--model", "model_dir", type=click.Path(file_okay=False), help="Model directory.")
@click.option("--index", "index_file", type=click.Path(dir_okay=False), help="Index built with that model.")
@click.option("--run-id", help="Run name (default: <model>_<topic file>).")
@click.option("--out", type=click.Path(dir_okay=False), help="XML run to write (default runs/<run-id>.xml).")
@click.option("--trec", type=click.Path(dir_okay=False), help="Also write the run in TREC format here.")
@click.option("--topk", type=click.IntRange(1, 1000), default=1000, show_default=True)
@click.option("--exclude", help="Shot list file to leave out, or V3C1 for the shipped list of its dropped shots.")
@click.option("--word2vec", type=click.Path(), help="Word2vec model (default: the one the model was trained with).")
@click.option("--pid", help="Participant id.")
@click.option("--priority", type=click.IntRange(1, 10), help="Run priority.")
@click.option("--desc", help="Run description.")
@click.option("--year", type=int, help="TRECVID year (default: the topic file's).")
@click.option("--task", type=click.Choice(["M", "P"]), help="Main or progress task (default: the topic file's).")
@click.option(
    "--algo",
    type=click.Choice(["C", "V"]),
    default="V",
    show_default=True,
    help="2023 on: C concept-based, V other (embeddings, as LAFF).",
)
@click.option(
    "--ann",
    is_flag=True,
    help="Approximate: FAISS candidates (avs index-ann), scored exactly. Interactive use, not submissions.",
)
@executor_options
@click.option("--force", is_flag=True, help="Overwrite existing outputs.")
def search_cmd(
    topics_file,
    number_from,
    model_dir,
    index_file,
    run_id,
    out,
    trec,
    topk,
    exclude,
    word2vec,
    pid,
    priority,
    desc,
    year,
    task,
    algo,
    ann,
    executor,
    workers,
    ray_address,
    force,
) -> None:
    """Rank the collection for every topic and write a submission-ready run."""
    from avs.engine.searcher import search_topics
    from avs.formats.fileio import atomic_write_all, check_writable
    from avs.formats.runs import RunInfo, to_trec, to_xml

    if (model_dir is None) != (index_file is None):
        raise click.UsageError("give both --model and --index (or neither, for the built-in demo)")
    demo = model_dir is None
    if demo:
        from avs.demo.builtin import demo_paths

        model_dir, index_file = demo_paths()
    if run_id is not None and (
        not run_id.strip()
        or run_id.startswith(".")
        or not run_id.isprintable()
        or any(sep in run_id for sep in ("/", "\\", os.sep))
    ):
        raise click.BadParameter(
            f"{run_id!r}: a run name, not a path (use --out to write elsewhere)", param_hint="--run-id"
        )
    run_id = run_id or f"{Path(model_dir).name}_{Path(topics_file).stem}"
    out = out or str(Path("runs") / f"{run_id}.xml")
    if trec and Path(trec).resolve() == Path(out).resolve():
        raise click.UsageError("--out and --trec name the same file")
    for p in (out, trec):
        if p:
            check_writable(p, force, inputs=[topics_file, index_file, exclude, word2vec])
    if demo:
        from avs.demo.builtin import DEMO_PID

        if pid not in (None, DEMO_PID):
            raise click.UsageError(f"a search of the SIMULATED demo has the pid {DEMO_PID}, not {pid}")
        pid, desc = DEMO_PID, desc or "avs demo: LAFF on the SIMULATED demo collection"
    info = RunInfo(pid=pid, priority=None if priority is None else str(priority), desc=desc, task=task, algo=algo)
    res = search_topics(
        read_topics_option(topics_file, number_from),
        model_dir,
        index_file,
        k=topk,
        exclude=exclude,
        word2vec=word2vec,
        info=info,
        year=year,
        progress=True,
        ann=ann,
        executor=make_executor(executor, workers, ray_address),
    )
    if res.run.year is None:
        raise click.UsageError("the topic file does not say its year: give --year")
    if exclude is not None:
        click.echo(
            f"left out {res.excluded} shot(s) of {exclude}"
            + ("" if res.excluded else " - none of its ids is in the index: is it the right list?"),
            err=True,
        )
    atomic_write_all({out: to_xml(res.run, res.run.year), **({trec: to_trec(res.run)} if trec else {})}, force)
    click.echo(
        f"searched {len(res.topics)} topics in {res.seconds:.1f} s; wrote {out}"
        + (f" and {trec}" if trec else "")
        + (" (SIMULATED demo collection; see `avs demo`)" if demo else "")
        + (" - APPROXIMATE (--ann): not for a submission" if ann else "")
    )
