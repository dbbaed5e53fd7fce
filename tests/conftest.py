from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
SAMPLE_EVAL = DATA / "sample_eval"
TV21_QRELS = SAMPLE_EVAL / "avs.qrels.main.tv21.gz"
REPO = Path(__file__).parent.parent
TINY_CLIP = DATA / "open_clip_tiny"  # a tiny open_clip model with open_clip's own outputs (its README)
# CLIP's BPE merges for a handful of words: enough for the tiny model's 1,000-token vocabulary, whose own BPE file is
# not shipped (a real checkpoint comes with open_clip's / OpenAI's bpe_simple_vocab_16e6.txt.gz)
TINY_MERGES = ["t h", "th e</w>", "d o", "do g</w>", "c a", "ca t</w>"]


@pytest.fixture
def tiny_bpe(tmp_path):
    """A BPE vocabulary file in CLIP's format (gzip, a version line, one merge a line) for the tiny CLIP model."""
    import gzip

    path = tmp_path / "bpe.txt.gz"
    path.write_bytes(gzip.compress(("#version: 0.2\n" + "\n".join(TINY_MERGES) + "\n").encode()))
    return path


@pytest.fixture(scope="session", autouse=True)
def private_home_dirs(tmp_path_factory):
    """Nothing a test runs may read or write the user's own demo or caches: the demo is built (once, on first use)
    in this session's temp folder, and whatever else looks under $XDG_CACHE_HOME / $XDG_CONFIG_HOME (matplotlib,
    torch) looks there too. Set in os.environ, so the subprocesses tests start inherit it; a test's own
    monkeypatch.setenv still wins."""
    base = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AVS_DEMO_DIR", str(base / "demo"))
        mp.setenv("XDG_CACHE_HOME", str(base / "cache"))
        mp.setenv("XDG_CONFIG_HOME", str(base / "config"))
        yield


@pytest.fixture
def run_cli():
    """Invoke the ``avs`` CLI in-process; returns click's Result (exit_code, stdout, stderr)."""
    from click.testing import CliRunner

    from avs.cli import cli

    def invoke(*args):
        return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)

    return invoke


def two_demo_runs(folder):
    """Two runs of tv20 on the (SIMULATED) demo, for comparisons: the demo model's (``laff.xml``), and
    ``other.trec`` with each topic's top 100 reversed and its last 100 dropped. Returns (paths, the model's Run)."""
    from avs.demo.builtin import ensure
    from avs.engine.searcher import Searcher
    from avs.formats.runs import Item, Run, TopicResult, to_trec, write_xml

    demo = ensure()
    run = Searcher(demo.model, demo.index).run("tv20").run
    write_xml(run, folder / "laff.xml", 2020)
    other = Run(
        run.info,
        {
            n: TopicResult(
                [Item(i.shot, float(1000 - k)) for k, i in enumerate(t.items[:100][::-1] + t.items[100:900])]
            )
            for n, t in run.topics.items()
        },
    )
    (folder / "other.trec").write_text(to_trec(other))
    return (folder / "laff.xml", folder / "other.trec"), run
