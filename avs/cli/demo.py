"""``avs demo`` and ``avs synth``: the SIMULATED demo collection."""

from __future__ import annotations

import click

from avs.cli.group import cli
from avs.cli.render import emit


@cli.command("synth")
@click.option("--shots", type=click.IntRange(min=100), required=True, help="Number of shots (up to V3C1's 1,082,657).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder to write.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--force", is_flag=True, help="Overwrite a collection already in OUT.")
def synth_cmd(shots, out, seed, force) -> None:
    """Write a SIMULATED V3C-like collection: features store, captions, judgments for the shipped topics."""
    from avs.demo.synth import write_collection

    res = write_collection(out, shots, seed=seed, force=force)
    click.echo(
        f"wrote a SIMULATED collection of {res.shots:,} shots to {res.out} ({res.train_videos:,} with "
        f"training captions, {res.val_videos:,} validation; judgments {res.qrels})"
    )


@cli.command("demo")
@click.option("--out", type=click.Path(file_okay=False), help="Where to build (default: the demo cache folder).")
@click.option("--force", is_flag=True, help="Replace a demo already built there.")
def demo_cmd(out, force) -> None:
    """Rebuild the SIMULATED demo from scratch (collection, LAFF model, index) and report on it."""
    from avs.demo import builtin as demo

    d = demo.build(out, force=force or out is None)
    r = demo.report(d)
    secs = r.manifest["seconds"]
    click.echo(
        f"SIMULATED demo built in {d.root}: {r.manifest['shots']:,} shots; simulate {secs['simulate']:.1f} s, "
        f"train {secs['train']:.1f} s, index {secs['index']:.1f} s"
    )
    click.echo(f"demo LAFF on tv20 (SIMULATED judgments): mean infAP {r.evaluation.aggregate['infAP']:.4f}")
    emit(r.label_means.reset_index(), "table")
    click.echo("mean attention weight per video feature: " + ", ".join(f"{k} {v:.3f}" for k, v in r.attention.items()))
