"""``avs model``: architectures and trained models — summary, official checkpoint import, embed, and the
attention-weight and space-agreement reports (LAFF supplement Tab. 9, 10)."""

from __future__ import annotations

import click

from avs.cli.group import cli
from avs.cli.options import (
    echo_written,
    force_files_option,
    number_from_option,
    out_folder_option,
    read_topics_option,
)
from avs.cli.render import emit


def _name_dims(ctx, param, values: tuple[str, ...]) -> dict[str, int]:
    out = {}
    for v in values:
        name, sep, dim = v.partition("=")
        if not sep or not dim.isdigit() or int(dim) < 1:
            raise click.BadParameter(f"{v!r}: expected NAME=DIM with a positive integer DIM")
        out[name] = int(dim)
    return out


@cli.group("model")
def model_group() -> None:
    """Model architectures (LAFF and its ablation) and trained model directories."""


@model_group.command("summary")
@click.option(
    "--config",
    "config_name",
    default="laff",
    show_default=True,
    help="Shipped config name (see --list) or a TOML file.",
)
@click.option("--bow-vocab", type=click.IntRange(min=1), help="Size of the bow vocabulary.")
@click.option("--gru-vocab", type=click.IntRange(min=1), help="Size of the GRU vocabulary (specials included).")
@click.option("--video-feature", multiple=True, callback=_name_dims, help="NAME=DIM of a video feature.")
@click.option("--text-feature", multiple=True, callback=_name_dims, help="NAME=DIM of a text feature.")
@click.option("--list", "list_only", is_flag=True, help="List the shipped configs and exit.")
def summary(config_name, bow_vocab, gru_vocab, video_feature, text_feature, list_only) -> None:
    """Modules and trainable parameter counts of an architecture."""
    from avs.models import TextVideoModel, count_parameters, list_configs, load_config
    from avs.models.summary import parameter_table

    if list_only:
        for name in list_configs():
            click.echo(f"{name}\t{load_config(name).description}")
        return
    cfg = load_config(config_name)
    text_dims = dict(text_feature)
    for f in cfg.text:
        if f.kind == "bow" and bow_vocab:
            text_dims[f.name] = bow_vocab
        if f.kind == "gru" and gru_vocab:
            text_dims[f.name] = gru_vocab
    cfg = cfg.with_dims(video=video_feature, text=text_dims)
    missing = [f.name for f in (*cfg.video, *cfg.text) if f.dim is None]
    if missing:
        raise click.UsageError(
            f"dimension unknown for {', '.join(missing)} "
            f"(give --bow-vocab / --gru-vocab / --video-feature / --text-feature)"
        )
    model = TextVideoModel(cfg)
    click.echo(f"config: {cfg.name} - {cfg.description}")
    click.echo(f"spaces: {cfg.spaces} x {cfg.space_size}")
    emit(parameter_table(model), "table")
    click.echo(f"trainable parameters: {count_parameters(model)}")


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
@out_folder_option
@force_files_option
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
        echo_written(write_outputs(out, weights_files(ws), force))


@model_group.command("spaces")
@click.option("--model", "model_dir", required=True, type=click.Path(file_okay=False), help="Model directory.")
@click.option("--topics", required=True, type=click.Path(dir_okay=False), help="Topic file (the queries).")
@number_from_option
@click.option("--index", "index_path", required=True, type=click.Path(dir_okay=False), help="Index built with MODEL.")
@click.option("-k", "k", type=click.IntRange(min=1), default=5, show_default=True, help="Length of the top lists.")
@click.option("--word2vec", type=click.Path(), help="word2vec model, if the model's text side uses one.")
@out_folder_option
@force_files_option
def spaces(model_dir, topics, number_from, index_path, k, word2vec, out, force) -> None:
    """Jaccard index between the top-k lists of every pair of embedding spaces, mean over topics (Tab. 10)."""
    from avs.eval.diagnostics import space_overlap, spaces_files
    from avs.eval.report import write_outputs

    so = space_overlap(model_dir, read_topics_option(topics, number_from), index_path, k, word2vec)
    click.echo(f"inter-space Jaccard of the top-{so.k} lists of {so.model} over {so.queries} topics")
    emit(so.matrix.reset_index(), "table")
    if out:
        echo_written(write_outputs(out, spaces_files(so), force))


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
    from avs.engine.embed import embed, write_npz
    from avs.formats.fileio import check_writable

    check_writable(out, force, inputs=[features])
    arrays = embed(model_dir, features)
    write_npz(arrays, out, force)
    click.echo(f"wrote {out}: " + ", ".join(f"{k} {tuple(v.shape)}" for k, v in sorted(arrays.items())))


@model_group.command("clip")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--bpe", required=True, type=click.Path(dir_okay=False), help="CLIP's BPE vocabulary file.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Model directory to write.")
@click.option(
    "--clip-config",
    help="Architecture name (ViT-B-32, ViT-L-14-quickgelu, ...) or open_clip model-config JSON: text heads, GELU.",
)
@click.option("--feature", default="clip", show_default=True, help="The store's image feature (avs extract's).")
@click.option("--force", is_flag=True, help="Overwrite --out.")
def clip_cmd(checkpoint, bpe, out, clip_config, feature, force) -> None:
    """A zero-shot CLIP model: CHECKPOINT's text tower against the image features avs extract stored with it."""
    from avs.models.clip_model import make_clip_model

    path = make_clip_model(checkpoint, bpe, out, feature=feature, clip_config=clip_config, force=force)
    click.echo(f"wrote {path} (zero-shot CLIP; index a store extracted with the same checkpoint)")
