"""Sharded indexes: search over shards gives the same ranking, to the last bit and ties included, as one index of
all the shots; shards built apart are gathered later; what does not hold together is refused."""

import json

import numpy as np
import pytest

from avs.engine import index as I
from avs.engine.searcher import Searcher
from avs.engine.shards import build_sharded_index, open_searchable, shard_paths, shard_rows, write_manifest
from avs.errors import InputError
from avs.formats.store import write_store

from test_search import WORDS, tiny_model_dir, tiny_store

QUERIES = ["dog", "cat car", "person water street", "snow tree bike boat"]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("shards")
    model = tiny_model_dir(tmp / "model")
    ids, feats = tiny_store(tmp / "store.h5", n=700)  # rows 10..19 copy row 5: ties across shard borders
    whole = I.build_index(model, tmp / "store.h5", tmp / "whole.h5", batch_size=64, progress=False)
    return tmp, model, whole, ids, feats


def rankings(model, index, k=1000, exclude=None):
    s = Searcher(model, index, exclude=exclude)
    return [s.query(q, k) for q in QUERIES + WORDS]


def assert_same(a, b):
    for x, y in zip(a, b, strict=True):
        assert x.shots == y.shots
        assert x.scores.tobytes() == y.scores.tobytes()


@pytest.mark.parametrize("n", [2, 3, 7, 11])
def test_sharded_search_equals_one_index(base, n):
    tmp, model, whole, ids, _ = base
    out = build_sharded_index(model, tmp / "store.h5", tmp / f"s{n}.json", n, batch_size=64, progress=False)
    index = open_searchable(out)
    assert [len(s) for s in index.shards] == [b - a for a, b in shard_rows(700, n, 64)]
    assert [s.path.name for s in index.shards] == [f"s{n}.shard{i}of{n}.h5" for i in range(1, n + 1)]
    assert all(a % 64 == 0 for a, _ in shard_rows(700, n, 64))
    assert index.ids == ids and len(index) == 700
    for k in (1, 13, 700, 1000):
        assert_same(rankings(model, out, k), rankings(model, whole, k))
    ties = rankings(model, out)[0]
    tied = [s for s in ties.shots if s in {ids[i] for i in range(10, 20)} | {ids[5]}]
    assert tied == sorted(tied, reverse=True)  # ties by shot id descending, across shards


def test_exclusion_and_the_run_file(base, tmp_path, run_cli):
    tmp, model, whole, ids, _ = base
    (tmp_path / "ex.txt").write_text("\n".join(ids[::3]) + "\n")
    out = build_sharded_index(model, tmp / "store.h5", tmp_path / "s.json", 5, batch_size=64, progress=False)
    assert_same(rankings(model, out, exclude=tmp_path / "ex.txt"), rankings(model, whole, exclude=tmp_path / "ex.txt"))
    (tmp_path / "t.txt").write_text("".join(f"{700 + i} {q}\n" for i, q in enumerate(QUERIES)))
    trec = {}
    for name, index in (("whole", whole), ("sharded", out)):
        r = run_cli(
            "search", "--topics", tmp_path / "t.txt", "--model", model, "--index", index, "--year", "2022",
            "--out", tmp_path / f"{name}.xml", "--trec", tmp_path / f"{name}.trec",
        )  # fmt: skip
        assert r.exit_code == 0, r.output
        trec[name] = (tmp_path / f"{name}.trec").read_bytes()
    assert trec["sharded"] == trec["whole"] and len(trec["whole"].splitlines()) == 4 * 700


def test_shards_built_apart_are_gathered(base, tmp_path):
    tmp, model, _, ids, feats = base
    # two stores (say V3C1 and V3C2), indexed apart, searched as one (split at a batch border, so that the rows
    # are encoded in the very batches of the whole index)
    write_store(tmp_path / "p1.h5", ids[:320], {k: v[:320] for k, v in feats.items()}, name="part1")
    write_store(tmp_path / "p2.h5", ids[320:], {k: v[320:] for k, v in feats.items()}, name="part2")
    for p in ("p1", "p2"):
        I.build_index(model, tmp_path / f"{p}.h5", tmp_path / f"{p}.idx.h5", batch_size=64, progress=False)
    (tmp_path / "m").mkdir()
    out = write_manifest(tmp_path / "m" / "all.json", [tmp_path / "p2.idx.h5", tmp_path / "p1.idx.h5"])
    assert json.loads(out.read_text())["shards"] == ["../p2.idx.h5", "../p1.idx.h5"]  # relative: movable together
    assert open_searchable(out).collection_name == "part2+part1"
    assert_same(rankings(model, out), rankings(model, tmp / "whole.h5"))
    Searcher(model, out).index.check_store(tmp_path / "p1.h5")
    with pytest.raises(InputError, match="not a collection any shard"):
        Searcher(model, out).index.check_store(tmp / "store.h5")


def test_what_does_not_hold_together_is_refused(base, tmp_path, run_cli):
    tmp, model, whole, ids, feats = base
    with pytest.raises(InputError, match="700 shots are in two shards"):
        write_manifest(tmp_path / "twice.json", [whole, whole])
    other = tiny_model_dir(tmp_path / "other", seed=1)
    write_store(tmp_path / "x.h5", ["shotX_1", "shotX_2"], {k: v[:2] for k, v in feats.items()}, name="x")
    I.build_index(other, tmp_path / "x.h5", tmp_path / "x.idx.h5", progress=False)
    with pytest.raises(InputError, match="built with another model"):
        write_manifest(tmp_path / "mixed.json", [whole, tmp_path / "x.idx.h5"])
    for text, message in [
        ("{not json", "not a shard manifest"),
        ('{"format": "x"}', "format is not 'avs-index-shards'"),
        ('{"format": "avs-index-shards", "format_version": 9, "shards": ["a"]}', "version 9"),
        ('{"format": "avs-index-shards", "format_version": 1, "shards": []}', "'shards' is not a list"),
        ('{"format": "avs-index-shards", "format_version": 1, "shards": ["gone.h5"]}', "gone.h5: no such file"),
    ]:
        (tmp_path / "bad.json").write_text(text)
        with pytest.raises(InputError, match=message):
            open_searchable(tmp_path / "bad.json")
    r = run_cli("index", "--model", model, "--collection", tmp / "store.h5", "--out", model / "weights.pt", "--force")
    assert r.exit_code == 2 and "an input of this command" in r.stderr  # the model's own weights
    copy = tmp_path / "copy.h5"
    copy.write_bytes((tmp / "store.h5").read_bytes())
    r = run_cli("index", "--model", model, "--collection", copy, "--out", copy, "--force", "--shards", 2)
    assert r.exit_code == 2 and "is also an input" in r.stderr and copy.read_bytes() == (tmp / "store.h5").read_bytes()
    args = ("index", "--model", model, "--collection", tmp / "store.h5", "--out", tmp_path / "z.json")
    r = run_cli(*args, "--shards", 3, "--batch-size", 512)  # 700 shots are two batches of 512
    assert r.exit_code == 2 and "3 shards of its 700 shots: give 1 to 2" in r.stderr
    assert run_cli(*args, "--shards", 2, "--batch-size", 512).exit_code == 0
    r = run_cli("index-shards", whole, whole, "--out", tmp_path / "w.json")
    assert r.exit_code == 2 and "in two shards" in r.stderr


def test_an_interrupted_sharded_build_keeps_its_finished_shards(base, tmp_path, monkeypatch):
    tmp, model, whole, _, _ = base
    from avs.engine import shards

    built = []
    real = shards.build_index

    def build_two_then_stop(*args, **kwargs):
        if len(built) == 2:
            raise KeyboardInterrupt
        built.append(args[2])
        return real(*args, **kwargs)

    monkeypatch.setattr(shards, "build_index", build_two_then_stop)
    with pytest.raises(KeyboardInterrupt):
        build_sharded_index(model, tmp / "store.h5", tmp_path / "s.json", 4, batch_size=64, progress=False)
    paths = shard_paths(tmp_path / "s.json", 4)
    assert [p.exists() for p in paths] == [True, True, False, False] and not (tmp_path / "s.json").exists()
    built.clear()
    monkeypatch.setattr(shards, "build_index", lambda *a, **kw: built.append(a[2]) or real(*a, **kw))
    out = build_sharded_index(model, tmp / "store.h5", tmp_path / "s.json", 4, batch_size=64, progress=False)
    assert built == paths[2:]  # the two finished shards were kept
    assert_same(rankings(model, out), rankings(model, whole))
    assert np.array_equal(open_searchable(out).shards[0].embeddings[()], I.open_index(whole).embeddings[:128])
