"""``avs eval``: score runs as NIST does (``infap``), compare runs (``compare``), score a model on captions
(``retrieval``)."""

from __future__ import annotations

import json

import click

from avs.cli.group import cli
from avs.cli.options import DATA_HELP, device_option, echo_written, force_files_option, out_folder_option
from avs.cli.render import emit


def _cutoffs(ctx, param, spec: str) -> tuple[int, ...]:
    from trec_eval_compat.evaluate import InputError, parse_cutoffs

    try:
        return parse_cutoffs(spec)
    except InputError as e:
        raise click.BadParameter(e.problem) from None


@cli.group("eval")
def eval_group() -> None:
    """Evaluate runs (NIST xinfAP, per-category breakdown)."""


@eval_group.command("infap")
@click.argument("runs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--qrels",
    type=click.Path(dir_okay=False),
    help="NIST qrels (5 or 4 columns, .gz ok); default: the SIMULATED demo collection's.",
)
@click.option("--per-query", is_flag=True, help="Per-topic lines as well as the overall ones.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "sample_eval", "csv", "json"]),
    default="table",
    show_default=True,
    help="sample_eval: byte-identical to NIST's sample_eval.pl (one run).",
)
@click.option("--labels", type=click.Path(dir_okay=False), help="Topic label table; default: topics/labels.tsv.")
@click.option(
    "--strict",
    is_flag=True,
    help="Refuse duplicates, >1000 results, unknown topics; average over all qrels topics (missing = 0).",
)
@click.option("--topic-prefix", default="1", show_default=True, help="XML tNum -> qrels topic id prefix.")
@click.option(
    "--cutoffs",
    default="avs",
    show_default=True,
    callback=_cutoffs,
    help="iP ranks: avs (NIST's AVS sample_eval.pl: 5,10,15,20,30,100,200,500,1000), 2012 (the generic "
    "script: 10,100,1000,1000) or a list such as 5,10,100.",
)
def infap(runs, qrels, per_query, fmt, labels, strict, topic_prefix, cutoffs) -> None:
    """Evaluate RUNS (TREC 6-column or NIST XML) with NIST's extended inferred AP."""
    from avs.eval import infap as E

    if fmt == "sample_eval" and len(runs) != 1:
        raise click.UsageError("--format sample_eval takes exactly one run")
    simulated = qrels is None
    if simulated:
        from avs.demo.builtin import demo_qrels

        qrels = demo_qrels(runs)
        click.echo(f"avs: no --qrels: evaluating against the SIMULATED demo judgments ({qrels})", err=True)
    evals = E.evaluate_runs(list(runs), qrels, strict=strict, prefix=topic_prefix, cutoffs=cutoffs)
    if fmt == "sample_eval":
        ev = next(iter(evals.values()))
        click.echo(E.format_sample_eval(ev, per_query), nl=False)
        return
    label_table = E.load_labels(labels)
    if fmt in ("csv", "json"):
        df = E.tidy(evals, label_table, topic_prefix)
        if not per_query:
            df = df[~df.topic.isin(set().union(*(ev.per_topic.index for ev in evals.values())))]
        emit(df, fmt)
        return
    table = E.infap_table(evals, topic_prefix)
    if not per_query:
        table = table.loc[["all"]]
    click.echo(
        "infAP (NIST xinfAP)"
        + (" - strict mode" if strict else "")
        + (" against the SIMULATED demo judgments" if simulated else "")
    )
    for name, ev in evals.items():  # before the tables, so that the output ends with them
        if ev.mode == "strict" and ev.missing_topics:
            click.echo(f"strict: {name}: {len(ev.missing_topics)} qrels topic(s) missing from the run, scored 0")
        elif ev.missing_topics:
            click.echo(
                f"note: {name}: {len(ev.missing_topics)} qrels topic(s) not in the run are left out of "
                f"the means (as sample_eval.pl does; --strict counts them as 0)"
            )
        if ev.ignored_topics:
            click.echo(f"note: {name}: run topic(s) not in the qrels ignored: {', '.join(ev.ignored_topics[:5])}")
    emit(table.reset_index(), "table")
    click.echo("\nmean infAP per topic label")
    emit(E.label_means(evals, label_table, topic_prefix).reset_index(), "table")


@eval_group.command("compare")
@click.argument("runs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--qrels", required=True, type=click.Path(dir_okay=False), help="NIST qrels (5 or 4 columns, .gz ok).")
@click.option("--labels", type=click.Path(dir_okay=False), help="Topic label table; default: topics/labels.tsv.")
@click.option(
    "--baseline",
    help="The run the others are marked and tested against: one of RUNS (path or run "
    "name) or another run file; default: the first run.",
)
@click.option(
    "--permutations",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Sign flips of the randomization test (all 2^topics when that is not more).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the randomization test.")
@click.option("--strict", is_flag=True, help="Score qrels topics missing from a run as 0 (NIST's strict mode).")
@click.option("--topic-prefix", default="1", show_default=True, help="XML tNum -> qrels topic id prefix.")
@out_folder_option
@force_files_option
def compare(runs, qrels, labels, baseline, permutations, seed, strict, topic_prefix, out, force) -> None:
    """Per-topic infAP of RUNS with the topic labels, mean per label, and paired tests against the baseline."""
    from avs.eval.report import COMPARISON_FILES, check_outputs, compare_runs, write_comparison

    if out:
        check_outputs(out, COMPARISON_FILES, force)  # before the work, not after
    c = compare_runs(list(runs), qrels, labels, baseline, permutations, seed, strict, topic_prefix)
    click.echo(f"infAP per topic (+/-: more than 0.1 above/below the baseline {c.baseline})")
    emit(c.per_topic.reset_index(), "table")
    click.echo("\nmean infAP per topic label")
    emit(c.label_means.reset_index(), "table")
    if len(c.tests):
        click.echo(f"\npaired tests against {c.baseline} (two-sided p-values)")
        emit(c.tests, "table")
    if out:
        echo_written(write_comparison(c, out, force))


@eval_group.command("retrieval")
@click.option("--model", "model_dir", required=True, type=click.Path(file_okay=False), help="Model directory.")
@click.option("--data", "data_path", required=True, type=click.Path(file_okay=False), help=DATA_HELP)
@click.option("--store", type=click.Path(dir_okay=False), help="Read the video features from this avs store.")
@device_option
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--word2vec", type=click.Path(), help="Override the word2vec the model was trained with.")
@click.option("--clip-checkpoint", type=click.Path(dir_okay=False), help="Override the model's CLIP checkpoint.")
@click.option("--clip-bpe", type=click.Path(dir_okay=False), help="Override the model's CLIP BPE file.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def retrieval(model_dir, data_path, store, device, batch_size, word2vec, clip_checkpoint, clip_bpe, fmt) -> None:
    """Text-to-video and video-to-text R@1/5/10, MedR, MeanR, mIR and mAP of a model on a caption collection."""
    from avs.eval.retrieval import metrics_table
    from avs.train.loop import evaluate_retrieval

    results = evaluate_retrieval(
        model_dir,
        data_path,
        store=store,
        device=device,
        batch_size=batch_size,
        word2vec=word2vec,
        clip_checkpoint=clip_checkpoint,
        clip_bpe=clip_bpe,
    )
    if fmt == "json":
        click.echo(json.dumps(results, indent=2))
    else:
        emit(metrics_table(results), "table")
