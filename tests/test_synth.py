"""The SIMULATED collection generator: structure, determinism, NIST-style judgments."""

import filecmp

import numpy as np
import pytest

from avs.demo.synth import build_lexicon, concept_kind, topic_concepts, write_collection
from avs.errors import InputError
from avs.formats.store import open_store
from avs.formats.topics import read_topics
from trec_eval_compat.evaluate import Qrels
from trec_eval_compat.io import read_qrels


def test_concepts_of_topics():
    assert topic_concepts("a person paddling kayak in the water") == ["person", "paddling", "kayak", "water"]
    assert [concept_kind(w) for w in ("person", "paddling", "kayak", "water")] == [
        "person",
        "action",
        "object",
        "location",
    ]
    assert topic_concepts("one or more people skydiving") == ["people", "skydiving"]
    lex = build_lexicon()
    assert len(lex.topics) == 210 and set(lex.kinds) == {"object", "person", "action", "location"}


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    return write_collection(out / "a", 2000, seed=3, progress=False), out


def test_layout_and_judgments(sim):
    res, _ = sim
    store = open_store(res.out / "store.h5")
    assert len(store) == 2000 and store.dims == {"appearance": 512, "motion": 256, "scene": 128}
    assert store.meta["simulated"] is True
    assert "SIMULATED" in (res.out / "README.txt").read_text()
    captions = (res.out / "simtrain" / "TextData" / "simtrain.caption.txt").read_text().splitlines()
    assert len(captions) == 2 * res.train_videos and captions[0].split()[0].endswith("#0")
    rows = read_qrels(res.qrels)
    judg = {q.judgment for q in rows}
    assert judg == {-1, 0, 1} and {q.stratum for q in rows} == {"1", "2", "3"}
    assert all(q.judgment >= 0 for q in rows if q.stratum == "1")  # the top stratum is fully judged
    q = Qrels(rows)
    assert len(q.topics) == 210 and sum(t.num_rel > 0 for t in q.topics.values()) >= 200  # ~5 planted each


def test_relevant_shots_show_all_topic_concepts(sim):
    res, _ = sim
    shows = dict(line.split("\t") for line in (res.out / "concepts.tsv").read_text().splitlines()[2:])
    topics = {
        f"1{t.num}": set(topic_concepts(t.text))
        for t in read_topics(__import__("avs.formats.topics", fromlist=["x"]).shipped_dir() / "tv20.xml", labels=False)
    }
    for q in read_qrels(res.qrels):
        if q.topic in topics and q.judgment >= 0:
            assert (q.judgment == 1) == topics[q.topic].issubset(shows[q.shot].split())


def test_deterministic(sim):
    res, out = sim
    again = write_collection(out / "b", 2000, seed=3, progress=False)
    assert filecmp.cmp(res.qrels, again.qrels, shallow=False)
    a, b = open_store(res.out / "store.h5"), open_store(again.out / "store.h5")
    assert np.array_equal(a.get("motion"), b.get("motion"))


def test_refusals(sim, run_cli):
    res, out = sim
    with pytest.raises(InputError, match="already holds a simulated collection"):
        write_collection(res.out, 2000)
    r = run_cli("synth", "--shots", 10, "--out", out / "c")
    assert r.exit_code == 2
