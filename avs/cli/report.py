"""``avs eval compare``, ``avs model weights``, ``avs model spaces`` and ``avs ablate``: the tables of a
notebook paper (LAFF supplement Tab. 9, 10, 11, 14) on the terminal, and as CSV / Markdown / PNG in --out."""

from __future__ import annotations

import click

from avs.cli import cli
from avs.cli.eval import eval_group
from avs.cli.model import model_group
from avs.cli.options import number_from_option, read_topics_option
from avs.cli.render import emit

_out = click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Also write the tables (CSV, Markdown) and plots (PNG) into this directory.",
)
_force = click.option("--force", is_flag=True, help="Overwrite files already in --out.")


def _written(paths) -> None:
    for p in paths:
        click.echo(f"wrote {p}", err=True)


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
@_out
@_force
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
        _written(write_comparison(c, out, force))


@model_group.command("weights")
@click.option("--model", "model_dir", required=True, type=click.Path(file_okay=False), help="Model directory.")
@click.option("--topics", type=click.Path(dir_okay=False), help="Text side over these topics' texts.")
@number_from_option
@click.option(
    "--captions",
    type=click.Path(file_okay=False),
    help="Caption data (ROOT/COLLECTION, RUC layout): text side over its captions, video side over its videos.",
)
@click.option(
    "--store",
    type=click.Path(dir_okay=False),
    help="Collection store: the video features (with --topics: every shot of it).",
)
@click.option("--word2vec", type=click.Path(), help="word2vec model, if the model's text side uses one.")
@_out
@_force
def weights(model_dir, topics, number_from, captions, store, word2vec, out, force) -> None:
    """Mean ± std attention weight of each text and video feature, per space and overall (Tab. 9)."""
    from avs.eval.diagnostics import attention_weights, weights_files
    from avs.eval.report import write_outputs

    if (topics is None) == (captions is None):
        raise click.UsageError("give exactly one of --topics and --captions")
    ws = attention_weights(model_dir, read_topics_option(topics, number_from), captions, store, word2vec)
    click.echo(
        f"attention weights of {ws.model} ({ws.fusion}) over "
        + ", ".join(f"{n} {'texts' if s == 'text' else 'videos'}" for s, n in ws.items.items())
    )
    emit(ws.wide().reset_index(), "table")
    if out:
        _written(write_outputs(out, weights_files(ws), force))


@model_group.command("spaces")
@click.option("--model", "model_dir", required=True, type=click.Path(file_okay=False), help="Model directory.")
@click.option("--topics", required=True, type=click.Path(dir_okay=False), help="Topic file (the queries).")
@number_from_option
@click.option("--index", "index_path", required=True, type=click.Path(dir_okay=False), help="Index built with MODEL.")
@click.option("-k", "k", type=click.IntRange(min=1), default=5, show_default=True, help="Length of the top lists.")
@click.option("--word2vec", type=click.Path(), help="word2vec model, if the model's text side uses one.")
@_out
@_force
def spaces(model_dir, topics, number_from, index_path, k, word2vec, out, force) -> None:
    """Jaccard index between the top-k lists of every pair of embedding spaces, mean over topics (Tab. 10)."""
    from avs.eval.diagnostics import space_overlap, spaces_files
    from avs.eval.report import write_outputs

    so = space_overlap(model_dir, read_topics_option(topics, number_from), index_path, k, word2vec)
    click.echo(f"inter-space Jaccard of the top-{so.k} lists of {so.model} over {so.queries} topics")
    emit(so.matrix.reset_index(), "table")
    if out:
        _written(write_outputs(out, spaces_files(so), force))


def _names(ctx, param, value: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise click.BadParameter("expected comma-separated config names")
    return names


@cli.command("ablate")
@click.option(
    "--configs",
    required=True,
    callback=_names,
    help="Comma-separated shipped config names or TOML files, e.g. laff,concat,mhsa,attention_free.",
)
@click.option(
    "--train",
    "train_data",
    required=True,
    type=click.Path(file_okay=False),
    help="Training captions (ROOT/COLLECTION, RUC layout).",
)
@click.option("--val", "val_data", required=True, type=click.Path(file_okay=False), help="Validation captions.")
@click.option("--test", "test_data", required=True, type=click.Path(file_okay=False), help="Test captions.")
@click.option("--store", type=click.Path(dir_okay=False), help="Collection store with the video features.")
@click.option(
    "--features",
    help="Config (name or TOML) whose features and space size every config takes, so "
    "that only the fusion block differs (e.g. sim_laff for a simulated collection).",
)
@click.option("--baseline", default="concat", show_default=True, help="Config the mAP change is relative to.")
@click.option("--epochs", type=click.IntRange(min=1), default=80, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=2), default=64, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-4, show_default=True)
@click.option("--seed", type=int, default=2, show_default=True)
@click.option("--word2vec", type=click.Path(), help="word2vec model, if the configs' text side uses one.")
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Keep the trained models in DIR/models/ and write ablation.csv / ablation.md there.",
)
@_force
def ablate(
    configs,
    train_data,
    val_data,
    test_data,
    store,
    features,
    baseline,
    epochs,
    batch_size,
    lr,
    seed,
    word2vec,
    out,
    force,
) -> None:
    """Train each fusion config on the same data; R@1/5/10, MedR, mAP and mAP change vs the baseline (Tab. 11)."""
    from avs.eval.report import write_outputs
    from avs.train.ablation import ablation_files, run_ablation

    res = run_ablation(
        configs,
        train_data,
        val_data,
        test_data,
        out,
        features,
        store,
        baseline,
        epochs,
        batch_size,
        lr,
        seed,
        word2vec,
        force,
    )
    click.echo(f"fusion blocks, text-to-video on {test_data} (mAP change relative to {res.baseline})")
    emit(res.table, "table")
    if out:
        _written(write_outputs(out, ablation_files(res), force))
