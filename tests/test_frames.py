"""Frame-level features (LAFF-ml): ragged frames in the store, frame BigFile import, training, index, search."""

import json
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from avs.engine import index as I
from avs.errors import InputError
from avs.features.importers import group_frames, import_bigfile
from avs.formats.runs import validate
from avs.formats.store import FeatureSpec, FrameSpec, StoreWriter, check, info, open_store, write_store
from avs.models import FrameFeature, TextFeature, TextVideoModel, VideoFeature, load_config, load_model
from avs.train.loop import evaluate_retrieval, open_data, train


def make_bigfile(folder: Path, ids, arr) -> np.ndarray:
    folder.mkdir(parents=True)
    arr = np.asarray(arr, dtype="<f4")
    (folder / "shape.txt").write_text(f"{arr.shape[0]} {arr.shape[1]}\n")
    (folder / "id.txt").write_text(" ".join(ids))
    arr.tofile(folder / "feature.bin")
    return arr


def ragged(rng, counts, dim=8):
    return [rng.standard_normal((k, dim)).astype(np.float32) for k in counts]


def tiny_ml_config(frame_name="frames", frame_dim=8):
    return replace(
        load_config("laff_ml"),
        name="tiny_ml",
        space_dim=32,
        heads=4,
        dropout=0.0,
        frame=FrameFeature(frame_name, frame_dim),
        video=(VideoFeature("f1"),),
        text=(TextFeature("bow", "bow"),),
    )


# ---- store ----------------------------------------------------------------------------------------------


def test_store_round_trip_of_ragged_frames(tmp_path):
    rng = np.random.default_rng(0)
    ids = ["v1", "v2", "v3", "v4"]
    frames = ragged(rng, (3, 1, 5, 2))
    write_store(
        tmp_path / "s.h5",
        ids,
        {"a": rng.standard_normal((4, 2)).astype(np.float32)},
        frames={"fr": frames},
        max_frames=50,
    )
    with open_store(tmp_path / "s.h5") as s:
        assert s.frame_features == ("fr",) and s.frame_dims == {"fr": 8} and s.max_frames == {"fr": 50}
        padded, mask = s.frames("fr")
        assert padded.shape == (4, 5, 8) and padded.dtype == np.float32 and mask.sum(1).tolist() == [3, 1, 5, 2]
        for k, f in enumerate(frames):
            assert np.array_equal(padded[k][mask[k]], f) and not padded[k][~mask[k]].any()
        padded, mask = s.frames("fr", [3, 0, 3])  # any order, repeats: padded to the most among them
        assert padded.shape == (3, 3, 8) and np.array_equal(padded[0][mask[0]], frames[3])
        assert np.array_equal(padded[1], frames[0]) and np.array_equal(padded[2], padded[0])
        padded, mask = s.frames("fr", slice(1, 3))
        assert np.array_equal(padded[1], frames[2]) and mask.sum(1).tolist() == [1, 5]
        with pytest.raises(InputError, match="no frame feature 'a'"):
            s.frames("a")
    with h5py.File(tmp_path / "s.h5") as f:  # the layout, read with plain h5py
        assert f["frames/fr/offsets"][()].tolist() == [0, 3, 4, 9, 11]
        assert np.array_equal(f["frames/fr/data"][4:9], frames[2])
    d = info(tmp_path / "s.h5")
    assert d["frames"][0] | {"chunk_rows": None} == {
        "feature": "fr",
        "dim": 8,
        "dtype": "float32",
        "extractor": "fr",
        "frames": 11,
        "max_frames": 50,
        "chunk_rows": None,
        "bytes": 352,
    }
    assert check(tmp_path / "s.h5") == []
    with h5py.File(tmp_path / "s.h5", "r+") as f:
        f["frames/fr/data"][9] = 0
        f["frames/fr/data"][1, 0] = np.nan
    assert check(tmp_path / "s.h5") == [
        "frame feature fr: 1 frames with NaN/inf (first: id v1)",
        "frame feature fr: 1 all-zero frames (first: id v4)",
    ]
    with h5py.File(tmp_path / "s.h5", "r+") as f:
        f["frames/fr/offsets"][2] = 3
    assert "1 ids without frames (first: id v2)" in check(tmp_path / "s.h5")[0]


def test_frame_writes_are_checked_and_all_or_nothing(tmp_path):
    specs, frames = [FeatureSpec("a", 2)], [FrameSpec("fr", 3, rows=4)]
    with pytest.raises(InputError, match="no frames for id y"):
        with StoreWriter(tmp_path / "s.h5", ["x", "y"], specs, frames=frames) as w:
            w.append_frames("fr", [np.ones((4, 3)), np.ones((0, 3))])
    bad = np.ones((2, 3))
    bad[1, 2] = np.inf
    with pytest.raises(InputError, match="NaN/inf in frame 1 of id y"):
        with StoreWriter(tmp_path / "s.h5", ["x", "y"], specs, frames=frames) as w:
            w.append_frames("fr", [np.ones((2, 3)), bad])
    with pytest.raises(ValueError, match="frame features not fully written"):
        with StoreWriter(tmp_path / "s.h5", ["x", "y"], specs, frames=frames) as w:
            w.append("a", np.ones((2, 2)))
            w.append_frames("fr", [np.ones((1, 3)), np.ones((2, 3))])
            w.finish()
    with pytest.raises(InputError, match="every video needs at least one"):
        StoreWriter(tmp_path / "s.h5", ["x", "y"], specs, frames=[FrameSpec("fr", 3, rows=1)])
    with pytest.raises(InputError, match="feature names repeat"):
        StoreWriter(tmp_path / "s.h5", ["x", "y"], specs, frames=[FrameSpec("a", 3, rows=2)])
    assert list(tmp_path.iterdir()) == []


# ---- import ---------------------------------------------------------------------------------------------


def test_group_frames_sorts_by_integer_index_and_truncates():
    ids = ["v1_10", "v1_2", "my_video_3", "v1_1", "my_video_0", "v1_3"]
    groups = group_frames(ids, max_frames=3)
    assert {k: v.tolist() for k, v in groups.items()} == {"v1": [3, 1, 5], "my_video": [4, 2]}
    assert group_frames(ids, max_frames=0)["v1"].tolist() == [3, 1, 5, 0]
    with pytest.raises(InputError, match="'v1x' is not <videoid>_<frameidx>"):
        group_frames(["v1_1", "v1x"])


def test_import_frame_bigfile(tmp_path, run_cli):
    rng = np.random.default_rng(1)
    videos = ["v2", "v1", "v3", "v4"]
    a = make_bigfile(tmp_path / "A", videos, rng.standard_normal((4, 2)))
    fids = ["v1_10", "v1_2", "v2_0", "v1_1", "v3_7", "v1_3", "v2_1"]
    fr = make_bigfile(tmp_path / "frame" / "F", fids, rng.standard_normal((7, 3)))
    with pytest.raises(InputError, match=r"1 of 4 ids are missing from some features: F lacks 1 \(first: v4\)"):
        import_bigfile([tmp_path / "A"], tmp_path / "s.h5", frames=[tmp_path / "frame" / "F"], progress=False)
    r = import_bigfile(
        [tmp_path / "A"],
        tmp_path / "s.h5",
        frames=[tmp_path / "frame" / "F"],
        max_frames=3,
        drop_incomplete=True,
        progress=False,
    )
    assert r.rows == 3 and r.frame_features == {"F": 3} and r.dropped_incomplete == 1
    with open_store(tmp_path / "s.h5") as s:
        assert s.ids == ["v1", "v2", "v3"] and s.max_frames == {"F": 3}
        assert np.array_equal(s.get("A"), a[[1, 0, 2]])
        padded, mask = s.frames("F")
        assert mask.sum(1).tolist() == [3, 2, 1]
        assert np.array_equal(padded[0], fr[[3, 1, 5]])  # v1_1, v1_2, v1_3; v1_10 cut by max_frames
        assert np.array_equal(padded[1][:2], fr[[2, 6]]) and np.array_equal(padded[2][0], fr[4])
        assert str(tmp_path / "frame" / "F") in s.meta["imported_from"]

    r = run_cli(
        "collection",
        "import",
        "bigfile",
        tmp_path / "A",
        "--frames",
        tmp_path / "frame" / "F",
        "--out",
        tmp_path / "t.h5",
    )
    assert r.exit_code == 2 and "F lacks 1 (first: v4)" in r.stderr and "Traceback" not in r.output
    r = run_cli(
        "collection",
        "import",
        "bigfile",
        tmp_path / "A",
        "--frames",
        tmp_path / "frame" / "F",
        "--out",
        tmp_path / "t.h5",
        "--drop-incomplete",
        "--max-frames",
        "2",
    )
    assert r.exit_code == 0, r.output
    assert "3 rows; features A (2), F (3, frames)" in r.stderr
    d = json.loads(run_cli("collection", "info", tmp_path / "t.h5", "--format", "json").stdout)
    assert d["frames"][0]["frames"] == 5 and d["frames"][0]["max_frames"] == 2
    assert "frame" in run_cli("collection", "info", tmp_path / "t.h5").stdout
    assert run_cli("collection", "check", tmp_path / "t.h5").exit_code == 0


# ---- model, training, index, search ---------------------------------------------------------------------


def test_padded_frames_encode_like_unpadded_ones():
    torch.manual_seed(0)
    cfg = replace(tiny_ml_config(), video=(VideoFeature("f1", 6),), text=(TextFeature("bow", "bow", 10),))
    model = TextVideoModel(cfg).eval()
    rng = np.random.default_rng(2)
    frames = ragged(rng, (2, 5, 1))
    feats = torch.from_numpy(rng.standard_normal((3, 6)).astype(np.float32))
    from avs.formats.store import pad_frames

    padded, mask = map(torch.from_numpy, pad_frames(frames, 8))
    padded[~mask] = 7.0  # whatever the padding holds, masked frames do not count
    with torch.no_grad():
        batch = model.encode_video({"f1": feats}, padded, mask)
        for k, f in enumerate(frames):
            alone = model.encode_video(
                {"f1": feats[k : k + 1]}, torch.from_numpy(f)[None], torch.ones(1, len(f), dtype=torch.bool)
            )
            torch.testing.assert_close(batch[k : k + 1], alone, rtol=0, atol=1e-6)


def shot_collection(root: Path, name="mltrain", n=12, seed=3):
    """Videos named like shots, each with a unique caption word, a 6-d video feature and 2..5 8-d frames whose
    mean is the informative signal."""
    rng = np.random.default_rng(seed)
    base = root / name
    (base / "TextData").mkdir(parents=True)
    (base / "VideoSets").mkdir()
    videos = [f"shot{i + 1:05d}_1" for i in range(n)]
    (base / "VideoSets" / f"{name}.txt").write_text("\n".join(videos) + "\n")
    lines = [f"{v}#{k} {t}" for i, v in enumerate(videos) for k, t in enumerate([f"a w{i}", f"w{i} shown"])]
    (base / "TextData" / f"{name}.caption.txt").write_text("\n".join(lines) + "\n")
    make_bigfile(base / "FeatureData" / "f1", videos, rng.standard_normal((n, 6)))
    fids, rows = [], []
    for v in videos:
        k = int(rng.integers(2, 6))
        fids += [f"{v}_{j}" for j in range(k)]
        rows.append(rng.standard_normal((k, 8)))
    make_bigfile(base / "FeatureData" / "frame" / "frames", fids[::-1], np.concatenate(rows)[::-1])
    return base


def test_laff_ml_trains_indexes_and_searches(tmp_path, run_cli):
    data = shot_collection(tmp_path)
    store = tmp_path / "store.h5"
    import_bigfile(
        [data / "FeatureData" / "f1"], store, frames=[data / "FeatureData" / "frame" / "frames"], progress=False
    )
    cfg = tiny_ml_config()
    res = train(
        cfg,
        open_data(data, cfg, store),
        open_data(data, cfg, store),
        tmp_path / "model",
        epochs=2,
        batch_size=8,
        lr=3e-3,
        vocab_threshold=1,
        progress=False,
    )
    assert res.epochs_run == 2
    loaded = load_model(res.model_dir)
    assert loaded.config.frame == FrameFeature("frames", 8)
    # frames from the store and from the BigFile folders score the same
    from_store = evaluate_retrieval(res.model_dir, data, store=store)
    from_bigfile = evaluate_retrieval(res.model_dir, data)
    assert from_store == from_bigfile and from_store["t2v"]["mir"] == pytest.approx(res.best_metrics["mir"])

    out = I.build_index(res.model_dir, store, tmp_path / "index.h5", batch_size=5, progress=False)
    idx = I.open_index(out)
    with open_store(store) as s, torch.no_grad():
        frames, mask = map(torch.from_numpy, s.frames("frames"))
        emb = loaded.model.encode_video({"f1": torch.from_numpy(s.get("f1"))}, frames, mask).numpy()
        assert idx.ids == s.ids
    np.testing.assert_array_equal(idx.embeddings[()], emb.reshape(len(emb), -1).astype(np.float16))

    topics = tmp_path / "t.txt"
    topics.write_text("641 a w3 shown\n642 w7\n")
    r = run_cli(
        "search",
        "--topics",
        topics,
        "--model",
        res.model_dir,
        "--index",
        out,
        "--out",
        tmp_path / "r.xml",
        "--year",
        2020,
        "--topk",
        10,
        "--pid",
        "team",
    )
    assert r.exit_code == 0, r.stderr
    assert validate(tmp_path / "r.xml", topics=topics, year=2020) == []


def test_laff_ml_without_frames_is_refused(tmp_path):
    data = shot_collection(tmp_path)
    cfg = tiny_ml_config(frame_name="other")
    with pytest.raises(InputError, match="features do not match model 'tiny_ml': other is missing"):
        train(cfg, open_data(data, cfg), open_data(data, cfg), tmp_path / "m", vocab_threshold=1, progress=False)
    cfg = tiny_ml_config(frame_dim=4)
    with pytest.raises(InputError, match="frames has dim 8, the model expects 4"):
        train(cfg, open_data(data, cfg), open_data(data, cfg), tmp_path / "m", vocab_threshold=1, progress=False)
