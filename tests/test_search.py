"""Index building and exact search: the top-k equals a float64 brute force, order and ties included."""

import dataclasses

import h5py
import numpy as np
import pytest
import torch

from avs.engine import index as I
from avs.engine import search as S
from avs.engine.encode import encode_topics, text_featurizer, weighted_queries
from avs.engine.search import brute_force, search
from avs.errors import InputError
from avs.features.vocab import build_vocab
from avs.formats.runs import validate
from avs.formats.store import write_store
from avs.formats.topics import Topic, TopicSet
from avs.models import TextVideoModel, load_config, load_model, save_model

WORDS = "dog cat car boat person water street snow tree bike".split()


def tiny_model_dir(path, seed=0, dims=(("a", 12), ("b", 8))):
    torch.manual_seed(seed)
    vocab = build_vocab([" ".join(WORDS)] * 2, "bow_nsw", threshold=1)
    cfg = load_config("laff")
    cfg = dataclasses.replace(
        cfg,
        space_dim=32,
        heads=4,
        video=tuple(dataclasses.replace(cfg.video[1], name=n, dim=d) for n, d in dims),
        text=(dataclasses.replace(cfg.text[1], dim=len(vocab)),),
    )
    save_model(TextVideoModel(cfg).eval(), path, vocabs={"bow": vocab}, meta={"config": "laff"})
    return path


def tiny_store(path, n=500, seed=0, dims=(("a", 12), ("b", 8))):
    rng = np.random.default_rng(seed)
    ids = [f"shot{i // 7 + 1:05d}_{i % 7 + 1}" for i in range(n)]
    feats = {name: rng.standard_normal((n, d)).astype(np.float32) for name, d in dims}
    for v in feats.values():
        v[10:20] = v[5]  # identical shots -> tied scores
    write_store(path, ids, feats, name="tiny")
    return ids, feats


@pytest.fixture
def built(tmp_path):
    model = tiny_model_dir(tmp_path / "model")
    ids, feats = tiny_store(tmp_path / "store.h5")
    out = I.build_index(model, tmp_path / "store.h5", tmp_path / "index.h5", batch_size=64, progress=False)
    return tmp_path, out, ids, feats


def test_index_rows_are_the_model_embeddings(built):
    tmp, out, ids, feats = built
    idx = I.open_index(out)
    loaded = load_model(tmp / "model")
    with torch.no_grad():
        emb = loaded.model.encode_video({k: torch.from_numpy(v) for k, v in feats.items()}).numpy()
    assert idx.ids == ids and idx.spaces == 4 and idx.space_size == 8
    np.testing.assert_array_equal(idx.embeddings[()], emb.reshape(len(ids), -1).astype(np.float16))
    assert idx.model_fingerprint == loaded.fingerprint and idx.memmap() is not None


def test_interrupted_build_resumes_to_the_same_index(tmp_path, monkeypatch):
    model = tiny_model_dir(tmp_path / "model")
    tiny_store(tmp_path / "store.h5")
    ref = I.build_index(model, tmp_path / "store.h5", tmp_path / "ref.h5", batch_size=64, progress=False)
    from avs.formats.store import FeatureStore

    real_get, calls = FeatureStore.get, {"n": 0}

    def failing_get(self, *a, **kw):
        calls["n"] += 1
        if calls["n"] > 6:  # two features per block: dies in the 4th block
            raise KeyboardInterrupt
        return real_get(self, *a, **kw)

    monkeypatch.setattr(FeatureStore, "get", failing_get)
    with pytest.raises(KeyboardInterrupt):
        I.build_index(model, tmp_path / "store.h5", tmp_path / "idx.h5", batch_size=64, progress=False)
    assert not (tmp_path / "idx.h5").exists()
    part = tmp_path / ".idx.h5.part"
    with h5py.File(part, "r") as f:
        assert f.attrs["rows_done"] == 192 and f.attrs["complete"] == 0
    with pytest.raises(InputError, match="incomplete index"):
        I.open_index(part)
    monkeypatch.setattr(FeatureStore, "get", real_get)
    I.build_index(model, tmp_path / "store.h5", tmp_path / "idx.h5", batch_size=64, progress=False)
    np.testing.assert_array_equal(I.open_index(tmp_path / "idx.h5").embeddings[()], I.open_index(ref).embeddings[()])


def test_search_equals_float64_brute_force(built):
    tmp, out, ids, _ = built
    idx = I.open_index(out)
    rng = np.random.default_rng(3)
    q = rng.standard_normal((4, 4, 8)).astype(np.float32)
    q /= np.linalg.norm(q, axis=2, keepdims=True)
    q[0] = idx.embeddings[5].astype(np.float32).reshape(4, 8)  # shots 5 and 10..19 tie at the top
    queries = weighted_queries(q, idx.space_weights)
    got = search(idx, queries, k=100, block_rows=37)
    ref = brute_force(idx, queries, k=100)
    for g, r in zip(got, ref):
        assert g.shots == r.shots and np.array_equal(g.scores, r.scores)
    top = got[0].shots[:11]
    assert sorted(top, reverse=True) == top and set(top) == {ids[5], *ids[10:20]}


def test_chunked_index_gives_the_same_ranking(built, tmp_path):
    """An index written by another tool with a chunked layout is read through h5py, with the same result."""
    tmp, out, ids, _ = built
    chunked = tmp_path / "chunked.h5"
    with h5py.File(out, "r") as src, h5py.File(chunked, "w") as dst:
        dst.attrs.update(src.attrs)
        dst.create_dataset("ids", data=src["ids"][()])
        dst.create_dataset("embeddings", data=src["embeddings"][()], chunks=(64, 32))
    a, b = I.open_index(out), I.open_index(chunked)
    assert b.memmap() is None
    q = weighted_queries(np.random.default_rng(5).standard_normal((3, 4, 8)).astype(np.float32), a.space_weights)
    for x, y in zip(search(a, q, k=40, block_rows=50), search(b, q, k=40, block_rows=50)):
        assert x.shots == y.shots and np.array_equal(x.scores, y.scores)


def test_exclude_and_small_collections(built):
    tmp, out, ids, _ = built
    idx = I.open_index(out)
    q = weighted_queries(idx.embeddings[5:6].astype(np.float32).reshape(1, 4, 8), idx.space_weights)
    hits = search(idx, q, k=1000, exclude=[ids[5], ids[19]])[0]
    assert len(hits.shots) == len(ids) - 2 and ids[5] not in hits.shots and ids[19] not in hits.shots


def test_mismatched_features_and_models_refused(tmp_path):
    model = tiny_model_dir(tmp_path / "model")
    tiny_store(tmp_path / "store.h5", dims=(("a", 12), ("c", 8)))
    with pytest.raises(InputError, match="features do not match model 'laff': b is missing"):
        I.build_index(model, tmp_path / "store.h5", tmp_path / "i.h5", progress=False)
    tiny_store(tmp_path / "good.h5")
    I.build_index(model, tmp_path / "good.h5", tmp_path / "i.h5", progress=False)
    with pytest.raises(InputError, match="already exists"):
        I.build_index(model, tmp_path / "good.h5", tmp_path / "i.h5", progress=False)
    other = tiny_model_dir(tmp_path / "other", seed=1)
    with pytest.raises(InputError, match="built with model 'laff'"):
        I.open_index(tmp_path / "i.h5").check_model(load_model(other))
    with pytest.raises(InputError, match="not an avs index"):
        I.open_index(tmp_path / "good.h5")


def test_search_cli_writes_valid_runs(built, run_cli):
    tmp, out, ids, _ = built
    topics = tmp / "t.txt"
    topics.write_text("641 a dog near water\n642 a person on a bike in the snow\n")
    r = run_cli(
        "search",
        "--topics",
        topics,
        "--model",
        tmp / "model",
        "--index",
        out,
        "--out",
        tmp / "r.xml",
        "--trec",
        tmp / "r.trec",
        "--year",
        2020,
        "--topk",
        50,
        "--pid",
        "team",
    )
    assert r.exit_code == 0, r.stderr
    assert validate(tmp / "r.xml", topics=topics, year=2020) == []
    from avs.formats.runs import read_run

    xml, trec = read_run(tmp / "r.xml"), read_run(tmp / "r.trec")
    assert [i.shot for i in xml.topics[641].items] == [i.shot for i in trec.topics[641].items]
    assert len(xml.topics[642].items) == 50 and float(xml.topics[641].elapsed) >= 0
    # the run is the exact ranking of the encoded topics
    loaded = load_model(tmp / "model")
    idx = I.open_index(out)
    emb = encode_topics(loaded, text_featurizer(loaded), TopicSet([Topic(641, "a dog near water")]))
    ref = brute_force(idx, weighted_queries(emb, idx.space_weights), k=50)[0]
    assert [i.shot for i in xml.topics[641].items] == ref.shots
    r = run_cli(
        "search", "--topics", topics, "--model", tmp / "model", "--index", out, "--out", tmp / "r.xml", "--year", 2020
    )
    assert r.exit_code == 2 and "already exists" in r.stderr
    excl = tmp / "excl.txt"
    excl.write_text(f"{ids[0]}\n{ids[1]}\n")
    r = run_cli(
        "search",
        "--topics",
        topics,
        "--model",
        tmp / "model",
        "--index",
        out,
        "--out",
        tmp / "e.xml",
        "--year",
        2020,
        "--exclude",
        excl,
    )
    assert r.exit_code == 0 and "left out 2 shot(s)" in r.stderr
    assert ids[0] not in {i.shot for t in read_run(tmp / "e.xml").topics.values() for i in t.items}
    r = run_cli(
        "search",
        "--topics",
        topics,
        "--model",
        tmp / "model",
        "--index",
        out,
        "--out",
        tmp / "v.xml",
        "--year",
        2020,
        "--exclude",
        "V3C1",
    )
    assert r.exit_code == 0 and "none of its ids is in the index" in r.stderr


def test_topics_encode_cli(built, run_cli):
    tmp, *_ = built
    topics = tmp / "t.txt"
    topics.write_text("641 a dog\n642 a cat\n")
    r = run_cli("topics", "encode", "--model", tmp / "model", "--topics", topics, "--out", tmp / "q.npy")
    assert r.exit_code == 0, r.stderr
    q = np.load(tmp / "q.npy")
    assert q.shape == (2, 32)
    assert np.allclose(np.linalg.norm(q.reshape(2, 4, 8), axis=2), 1, atol=1e-5)


def test_index_cli_errors(tmp_path, run_cli):
    r = run_cli("index", "--model", tmp_path / "nope", "--collection", tmp_path / "s.h5", "--out", tmp_path / "i.h5")
    assert r.exit_code == 2 and "not a model directory" in r.stderr


def sim_index(path, emb: np.ndarray, spaces: int) -> I.Index:
    """An index file holding ``emb`` (rows unit per space) as the builder lays it out."""
    n = len(emb)
    with h5py.File(path, "w") as f:
        f.attrs.update(
            format=I.FORMAT,
            format_version=I.FORMAT_VERSION,
            spaces=spaces,
            space_size=emb.shape[1] // spaces,
            space_weights=np.full(spaces, 1 / spaces),
            model_fingerprint="test",
            model_name="test",
            collection_fingerprint="test",
            collection_name="test",
            rows_done=n,
            complete=1,
        )
        f.create_dataset("ids", data=np.array([f"shot{i // 9 + 1:05d}_{i % 9 + 1}" for i in range(n)], dtype=object))
        f.create_dataset("embeddings", data=emb.astype(np.float16))
    return I.open_index(path)


def unit(x: np.ndarray, spaces: int) -> np.ndarray:
    x = x.reshape(len(x), spaces, -1)
    return (x / np.linalg.norm(x, axis=2, keepdims=True)).reshape(len(x), -1).astype(np.float32)


@pytest.mark.parametrize("first_pass", ["bfloat16", "float32"])
@pytest.mark.parametrize("layout", ["clustered", "packed"])
def test_first_passes_rank_exactly_as_float64(tmp_path, monkeypatch, first_pass, layout):
    """Both first passes give the float64 ranking, ties and exclusions included. On clustered rows the bfloat16
    pass re-scores few rows in float32; on one tight cluster it falls back to float32 blocks."""
    spaces, n = 4, 6000
    rng = np.random.default_rng(11)
    if layout == "clustered":
        centres = rng.standard_normal((30, spaces * 64))
        emb = unit(centres[rng.integers(0, 30, n)] + 0.5 * rng.standard_normal((n, spaces * 64)) / 8, spaces)
        q = unit(centres[:5] + 0.5 * rng.standard_normal((5, spaces * 64)) / 8, spaces)
    else:  # one cluster: every score within the bfloat16 error bound of the others
        c = rng.standard_normal(spaces * 64)
        emb = unit(c + 0.05 * rng.standard_normal((n, spaces * 64)), spaces)
        q = unit(c + 0.05 * rng.standard_normal((5, spaces * 64)), spaces)
    emb[100:110] = emb[7]  # tied rows
    idx = sim_index(tmp_path / "index.h5", emb, spaces)
    q[0] = idx.embeddings[7].astype(np.float32)
    queries = weighted_queries(q.reshape(5, spaces, 64), idx.space_weights)
    scored = []
    fp32 = S._Scan._fp32
    monkeypatch.setattr(
        S._Scan,
        "_fp32",
        lambda self, half, rows: scored.append(len(half if rows is None else rows)) or fp32(self, half, rows),
    )
    exclude = [idx.ids[i] for i in (3, 104, 5999)]
    got = search(idx, queries, k=20, exclude=exclude, block_rows=500, first_pass=first_pass)
    ref = brute_force(idx, queries, k=20, exclude=exclude)
    for g, r in zip(got, ref):
        assert g.shots == r.shots and np.array_equal(g.scores, r.scores)
    assert got[0].shots[:10] == sorted(idx.ids[i] for i in (7, *range(100, 110)) if i != 104)[::-1]
    share = sum(scored) / n
    if first_pass == "float32":
        assert share == 1
    elif layout == "clustered":
        assert share < 0.4  # the bfloat16 bound rules out the rows of the other 25 clusters
    else:
        assert share > 0.5  # too tight to rule out: blocks scored in float32


def test_bfloat16_scores_stay_within_the_error_bound():
    """The bound the bfloat16 pass prunes with holds (without its safety margin) on rows and queries built to
    round badly: every element an odd bfloat16 value plus half a step, so that rounding moves all of them up."""
    spaces, d = 8, 512
    rng = np.random.default_rng(2)
    x = unit(np.abs(rng.standard_normal((2048, spaces * d))), spaces).astype(np.float16)
    v = (x.view(np.uint16) & 0xFFF0 | 0x000C).view(np.float16).astype(np.float32)
    q = unit(np.abs(rng.standard_normal((6, spaces * d))), spaces) / spaces
    q = (q.view(np.uint32) & 0xFFFE0000 | 0x00018000).view(np.float32)
    a = torch.mm(torch.from_numpy(q).bfloat16(), torch.from_numpy(v).bfloat16().T).float().numpy()
    exact = q.astype(np.float64) @ v.astype(np.float64).T
    assert (a > exact).all()
    # the slack is proportional to the rows' norms per space, taken as at most 1 + 2^-9; these are a little off
    norm = np.linalg.norm(v.reshape(len(v), spaces, d).astype(np.float64), axis=2).max() / (1 + 2.0**-9)
    bound = S.BF16_U1 * np.abs(a) + S._bf16_slack(q, spaces)[:, None] / 1.25 * norm
    assert (a - exact <= bound).all()
    assert (a - exact).max() > 0.3 * bound.max()  # the test does exercise rounding


@pytest.mark.parametrize("chunks", [None, (64, 32)])
def test_gather_reads_runs_and_single_rows(tmp_path, chunks):
    """Rows are read run by run (consecutive rows in one call): the rows come back as stored, in order."""
    emb = np.random.default_rng(5).standard_normal((500, 64)).astype(np.float16)
    path = tmp_path / "i.h5"
    sim_index(path, emb, 2)
    if chunks:
        with h5py.File(path, "a") as f:
            del f["embeddings"]
            f.create_dataset("embeddings", data=emb, chunks=chunks)
    idx = I.open_index(path)
    assert (idx.offset is None) == bool(chunks)
    rows = np.array([0, 1, 2, 7, 9, 10, 11, 12, 200, 498, 499])
    assert np.array_equal(S._gather(idx, rows), emb[rows])
    assert S._gather(idx, np.empty(0, np.int64)).shape == (0, 64)


def test_exact_scores_keep_every_input_bit():
    """float16 and float32 rows are widened exactly; float64 rows are used as they are (never through float32);
    a row scores the same bits alone as among others."""
    rng = np.random.default_rng(8)
    q = rng.standard_normal((2, 100))
    for dtype in (np.float16, np.float32, np.float64):
        rows = rng.standard_normal((130, 100)).astype(dtype)
        want = np.stack([(rows.astype(np.float64) * qj).sum(axis=1) for qj in q], axis=1)
        assert np.array_equal(S.exact_scores(rows, q), want)
        assert np.array_equal(S.exact_scores(rows[77:78], q), want[77:78])
