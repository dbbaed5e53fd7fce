"""Approximate search (FAISS): candidates scored exactly, so what comes back is ranked as exact search ranks it;
visiting every list with enough candidates gives the exact ranking itself, sharded or not."""

import numpy as np
import pytest

from avs.engine import index as I
from avs.engine.ann import ann_path, build_ann
from avs.engine.searcher import Searcher
from avs.engine.shards import build_sharded_index
from avs.errors import InputError

from test_search import WORDS, tiny_model_dir, tiny_store

QUERIES = ["dog", "cat car", "person water street", *WORDS]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ann")
    model = tiny_model_dir(tmp / "model")
    tiny_store(tmp / "store.h5", n=2000)
    index = I.build_index(model, tmp / "store.h5", tmp / "index.h5", batch_size=256, progress=False)
    build_ann(index, nlist=16)
    return tmp, model, index


def test_every_list_and_enough_candidates_is_exact(built):
    tmp, model, index = built
    exact, ann = Searcher(model, index), Searcher(model, index, ann=True, nprobe=16, candidates=2000)
    for q in QUERIES:
        a, b = exact.query(q, 1000), ann.query(q, 1000)
        assert a.shots == b.shots and a.scores.tobytes() == b.scores.tobytes()


def test_few_lists_miss_some_but_rank_exactly(built):
    tmp, model, index = built
    exact, ann = Searcher(model, index), Searcher(model, index, ann=True, nprobe=2, candidates=300)
    recalls = []
    for q in QUERIES:
        truth = exact.query(q, 2000)
        score = dict(zip(truth.shots, truth.scores))
        hits = ann.query(q, 100)
        assert [score[s] for s in hits.shots] == list(hits.scores)  # exact scores
        assert list(hits.scores) == sorted(hits.scores, reverse=True)
        recalls.append(len(set(hits.shots) & set(truth.shots[:100])) / 100)
    assert 0 < np.mean(recalls) < 1  # approximate: some found, some missed


def test_sharded_and_excluded(built, tmp_path, run_cli):
    tmp, model, index = built
    out = build_sharded_index(model, tmp / "store.h5", tmp_path / "s.json", 3, batch_size=256, progress=False)
    r = run_cli("index-ann", out, "--nlist", 8)
    assert r.exit_code == 0 and r.output.count("wrote") == 3
    ids = I.open_index(index).ids
    (tmp_path / "ex.txt").write_text("\n".join(ids[::2]) + "\n")
    exact = Searcher(model, index, exclude=tmp_path / "ex.txt")
    ann = Searcher(model, out, exclude=tmp_path / "ex.txt", ann=True, nprobe=8, candidates=2000)
    for q in QUERIES[:4]:
        a, b = exact.query(q, 500), ann.query(q, 500)
        assert a.shots == b.shots and a.scores.tobytes() == b.scores.tobytes()


def test_errors(built, tmp_path, run_cli):
    tmp, model, index = built
    other = I.build_index(model, tmp / "store.h5", tmp_path / "other.h5", batch_size=256, progress=False)
    with pytest.raises(InputError, match="no approximate index beside it"):
        Searcher(model, other, ann=True)
    ann_path(other).write_bytes(b"not faiss")
    with pytest.raises(InputError, match="not a FAISS index"):
        Searcher(model, other, ann=True)
    assert run_cli("index-ann", index).exit_code == 2  # exists: --force
    r = run_cli("index-ann", other, "--nlist", 5000, "--force")
    assert r.exit_code == 2 and "--nlist 5000: give 1 to 2000" in r.stderr
