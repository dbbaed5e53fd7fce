"""``avs serve``: the web UI for interactive search, topic inspection and run comparison."""

from __future__ import annotations

import click

from avs.cli.group import cli
from avs.cli.options import device_option


@cli.command("serve")
@click.option("--index", "index_file", type=click.Path(dir_okay=False), help="Index built with --model.")
@click.option("--model", "model_dir", type=click.Path(file_okay=False), help="Model directory (default: the demo).")
@click.option("--topics", "topics_file", help="Topic file or shipped set (default with the demo: tv20).")
@click.option("--qrels", type=click.Path(dir_okay=False), help="NIST judgments: relevance marks and infAP.")
@click.option("--runs", multiple=True, type=click.Path(dir_okay=False), help="A run to compare (repeat the option).")
@click.option("--thumbs", type=click.Path(file_okay=False), help="Keyframes shot<video>_<n>_RKF.jpg (avs extract).")
@click.option("--store", type=click.Path(dir_okay=False), help="The collection store the index was built from.")
@click.option("--exclude", help="Shot list to leave out of every ranking, or V3C1.")
@click.option("--word2vec", type=click.Path(), help="Word2vec model (default: the one the model was trained with).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every one).")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--ann", is_flag=True, help="Approximate search (FAISS candidates scored exactly; avs index-ann).")
@device_option
def serve_cmd(
    index_file, model_dir, topics_file, qrels, runs, thumbs, store, exclude, word2vec, host, port, ann, device
):
    """Serve a local web page (and its JSON API) to search, inspect topics and compare runs."""
    from avs.serve.app import check_installed, serve
    from avs.serve.session import ServeConfig, ServeSession

    check_installed()
    if (model_dir is None) != (index_file is None):
        raise click.UsageError("give both --model and --index (or neither, for the built-in demo)")
    config = ServeConfig(model_dir, index_file, topics_file, qrels, runs, thumbs, exclude, word2vec, device, store, ann)
    session = ServeSession.open(config)
    what = "the SIMULATED demo collection" if session.simulated else session.info()["collection"]
    serve(session, host, port, ready=lambda url: click.echo(f"avs: serving {what} at {url} (Ctrl-C stops)"))
