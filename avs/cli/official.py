"""``avs model import-official`` and ``avs model embed``: official LAFF checkpoints and pre-featurised inputs."""

from __future__ import annotations

import click

from avs.cli.model import model_group


@model_group.command("import-official")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Model directory to write.")
@click.option(
    "--vocab-dir",
    type=click.Path(file_okay=False),
    help="Folder with the official bow_nsw_<t>.pkl / gru_<t>.pkl vocabularies (to encode raw text).",
)
@click.option("--word2vec", type=click.Path(), help="Word2vec the model was trained with (recorded, not copied).")
@click.option("--force", is_flag=True, help="Overwrite --out.")
def import_official_cmd(checkpoint, out, vocab_dir, word2vec, force) -> None:
    """Convert an official LAFF model_best.pth.tar (or state_dict) into an avs model directory.

    The checkpoint is read without running any pickled code."""
    from avs.models.official import import_official

    res = import_official(checkpoint, out, vocab_dir=vocab_dir, word2vec=word2vec, force=force)
    cfg = res.config
    click.echo(f"wrote {res.out}")
    click.echo(f"spaces: {cfg.spaces} x {cfg.space_size}")
    click.echo("video: " + ", ".join(f"{f.name} ({f.dim}{', tile+BN' if f.no_transform else ''})" for f in cfg.video))
    click.echo("text: " + ", ".join(f"{f.name} ({f.dim}{', tile+BN' if f.no_transform else ''})" for f in cfg.text))
    click.echo(f"vocabularies: {', '.join(res.vocabs) or 'none (pre-featurised inputs only)'}")
    click.echo(f"ignored official weights: {len(res.ignored)} (unused LayerNorms, with_ave scalars, frozen CLIP)")
    for note in res.notes:
        click.echo(f"note: {note}")


@model_group.command("embed")
@click.option("--model", "model_dir", required=True, type=click.Path(file_okay=False), help="Model directory.")
@click.option(
    "--features",
    required=True,
    type=click.Path(dir_okay=False),
    help="Input .npz (bow, w2v, gru_ids, gru_lengths, clip_text, vid__<feature>).",
)
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="Output .npz.")
@click.option("--force", is_flag=True, help="Overwrite --out.")
def embed_cmd(model_dir, features, out, force) -> None:
    """Embed pre-featurised texts and/or videos: per-space embeddings, fusion weights, text-to-video scores."""
    from avs.formats.fileio import check_writable
    from avs.models.official import embed, write_npz

    check_writable(out, force, inputs=[features])
    arrays = embed(model_dir, features)
    write_npz(arrays, out, force)
    click.echo(f"wrote {out}: " + ", ".join(f"{k} {tuple(v.shape)}" for k, v in sorted(arrays.items())))
