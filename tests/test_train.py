import json
import os
import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from avs.errors import InputError
from avs.models import TextFeature, VideoFeature, load_config, load_model, save_model
from avs.train.loop import evaluate_retrieval, open_data, score_captions, train

# ---------------------------------------------------------------------------------------------------------
# synthetic collections in RUC's layout


def write_bigfile(folder: Path, ids, arr) -> None:
    folder.mkdir(parents=True)
    arr = np.asarray(arr, dtype="<f4")
    (folder / "shape.txt").write_text(f"{arr.shape[0]} {arr.shape[1]}\n")
    (folder / "id.txt").write_text(" ".join(ids))
    arr.tofile(folder / "feature.bin")


def write_collection(root: Path, name: str, captions: dict[str, list[str]], features: dict[str, np.ndarray]) -> Path:
    """``captions``: video id -> caption texts; ``features``: name -> (videos x dim) rows in ``captions`` order."""
    base = root / name
    (base / "TextData").mkdir(parents=True)
    (base / "VideoSets").mkdir()
    videos = list(captions)
    (base / "VideoSets" / f"{name}.txt").write_text("\n".join(videos) + "\n")
    lines = [f"{v}#{k} {t}" for v in videos for k, t in enumerate(captions[v])]
    (base / "TextData" / f"{name}.caption.txt").write_text("\n".join(lines) + "\n")
    for feat, arr in features.items():
        write_bigfile(base / "FeatureData" / feat, videos, arr)
    return base


def small_config(video=("f1",), text=(("bow", "bow"),), **kw):
    base = load_config("laff")
    opts = dict(space_dim=32, heads=2, gru_hidden=32, gru_embed=16, dropout=0.0)
    opts.update(kw)
    return replace(
        base,
        name="tiny",
        video=tuple(VideoFeature(n) for n in video),
        text=tuple(TextFeature(n, k) for n, k in text),
        **opts,
    )


def identity_data(root: Path, name: str, n_videos=16, seed=0) -> Path:
    """Each video is named by a unique word in its 3 captions; one random 12-d feature per video."""
    rng = np.random.default_rng(seed)
    caps = {f"v{i}": [f"a clip of w{i}", f"w{i} is shown", f"look w{i} here"] for i in range(n_videos)}
    return write_collection(root, name, caps, {"f1": rng.normal(size=(n_videos, 12))})


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A tiny bow-only LAFF fitted on the identity data (shared by the read-only tests)."""
    tmp = tmp_path_factory.mktemp("fitted")
    data = identity_data(tmp, "idtrain")
    cfg = small_config()
    res = train(
        cfg,
        open_data(data, cfg),
        open_data(data, cfg),
        tmp / "model",
        epochs=12,
        batch_size=16,
        lr=3e-3,
        vocab_threshold=1,
        patience=12,
        progress=False,
    )
    return res, data


def test_fits_a_small_dataset(fitted):
    res, data = fitted
    metrics = evaluate_retrieval(res.model_dir, data)
    assert metrics["t2v"]["r1"] == 100.0
    assert metrics["v2t"]["queries"] == 16
    log = [json.loads(x) for x in (res.model_dir / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == list(range(1, res.epochs_run + 1))
    assert {"loss", "lr", "val_mir", "val_r1", "seconds", "best"} <= set(log[0])
    assert log[-1]["loss"] < log[0]["loss"]
    assert not Path(str(res.model_dir) + ".training").exists()  # training state removed once done


def test_checkpoint_round_trip(fitted, tmp_path):
    res, data = fitted
    loaded = load_model(res.model_dir)
    assert loaded.meta["best_epoch"] == res.best_epoch and loaded.meta["config_name"] == "tiny"
    # the saved best weights reproduce the validation scores logged for the best epoch
    metrics = evaluate_retrieval(res.model_dir, data)
    assert metrics["t2v"]["mir"] == pytest.approx(loaded.meta["validation"]["mir"], abs=1e-12)
    # save -> load gives identical scores
    save_model(loaded.model, tmp_path / "copy", loaded.vocabs, loaded.meta)
    again = load_model(tmp_path / "copy")
    from avs.features.featurize import TextFeatureSpec, TextFeaturizer

    feat = TextFeaturizer([TextFeatureSpec("bow", "bow")], loaded.vocabs)
    d = open_data(data, loaded.config)
    video = {"f1": torch.from_numpy(d.dataset.vectors("f1"))}
    a = score_captions(loaded.model, feat, d, video)
    b = score_captions(again.model, feat, d, video)
    assert torch.equal(a, b)


def test_cli_train_and_eval(tmp_path, run_cli, fitted):
    res, data = fitted
    r = run_cli("eval", "retrieval", "--model", res.model_dir, "--data", data)
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0].split() == ["direction", "queries", "R@1", "R@5", "R@10", "MedR", "MeanR", "mIR", "mAP"]
    assert lines[1].split()[:3] == ["t2v", "48", "100.0000"]
    r = run_cli("eval", "retrieval", "--model", res.model_dir, "--data", data, "--format", "json")
    assert json.loads(r.output)["v2t"]["queries"] == 16

    cfg_path = tmp_path / "tiny.toml"
    cfg_path.write_text(
        'fusion = "laff"\nspace_dim = 32\nheads = 2\n[[video]]\nname = "f1"\n[[text]]\nname = "bow"\nkind = "bow"\n'
    )
    args = [
        "train",
        "--config",
        cfg_path,
        "--train",
        data,
        "--val",
        data,
        "--out",
        tmp_path / "m",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--vocab-threshold",
        "1",
        "--quiet",
    ]
    r = run_cli(*args)
    assert r.exit_code == 0, r.output
    assert "best epoch" in r.output and (tmp_path / "m" / "weights.pt").exists()
    r = run_cli(*args)  # exists: refused without --force
    assert r.exit_code == 2 and "already exists" in r.output
    r = run_cli(*args, "--force")
    assert r.exit_code == 0, r.output


def test_user_mistakes_are_input_errors(tmp_path, run_cli):
    data = identity_data(tmp_path, "idtrain", n_videos=4)
    r = run_cli("train", "--config", "laff", "--train", data, "--val", data, "--out", tmp_path / "m")
    assert r.exit_code == 2 and "clip_ft is missing" in r.output and "Traceback" not in r.output
    cfg = small_config(text=(("bow", "bow"), ("w2v", "w2v")))
    with pytest.raises(InputError, match="word2vec"):
        train(cfg, open_data(data, cfg), open_data(data, cfg), tmp_path / "m", vocab_threshold=1, progress=False)
    ml = load_config("laff_ml")
    with pytest.raises(InputError, match="clip_ft_frames is missing"):
        train(ml, open_data(data, ml), open_data(data, ml), tmp_path / "m", vocab_threshold=1, progress=False)
    with pytest.raises(InputError, match="not a collection directory"):
        open_data(tmp_path / "nowhere", small_config())


# ---------------------------------------------------------------------------------------------------------
# determinism and resuming


def _gru_setup(tmp_path):
    """bow + w2v + GRU (embeddings initialised from a tiny text word2vec) on the identity data."""
    data = identity_data(tmp_path, "idtrain", n_videos=10)
    rng = np.random.default_rng(5)
    words = [f"w{i}" for i in range(10)] + ["clip", "shown", "look"]
    w2v = tmp_path / "w2v.txt"
    w2v.write_text("".join(f"{w} " + " ".join(f"{x:.4f}" for x in rng.normal(size=16)) + "\n" for w in words))
    cfg = small_config(text=(("gru", "gru"), ("bow", "bow"), ("w2v", "w2v")), dropout=0.2, batch_norm=True)
    return cfg, data, w2v


def _weights(model_dir):
    return torch.load(Path(model_dir) / "weights.pt", weights_only=True)


def _run(cfg, data, w2v, out, **kw):
    opts = dict(epochs=4, batch_size=8, lr=1e-3, vocab_threshold=1, word2vec=w2v, patience=10, progress=False)
    opts.update(kw)
    return train(cfg, open_data(data, cfg), open_data(data, cfg), out, **opts)


def test_same_seed_same_weights(tmp_path):
    cfg, data, w2v = _gru_setup(tmp_path)
    a = _weights(_run(cfg, data, w2v, tmp_path / "a", epochs=2).model_dir)
    b = _weights(_run(cfg, data, w2v, tmp_path / "b", epochs=2).model_dir)
    c = _weights(_run(cfg, data, w2v, tmp_path / "c", epochs=2, seed=3).model_dir)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    meta = json.loads((tmp_path / "a" / "model.json").read_text())
    assert meta["word2vec"] == str(w2v.resolve())


def test_resume_after_interruption_reproduces_the_run(tmp_path):
    cfg, data, w2v = _gru_setup(tmp_path)
    full = _run(cfg, data, w2v, tmp_path / "full", mask_same_video=True)

    def interrupt(record):
        if record["epoch"] == 2:
            raise KeyboardInterrupt

    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        _run(cfg, data, w2v, out, mask_same_video=True, on_epoch=interrupt)
    assert not out.exists() and (tmp_path / "resumed.training" / "checkpoint.pt").exists()
    with pytest.raises(InputError, match="--resume"):  # neither resumed nor forced
        _run(cfg, data, w2v, out, mask_same_video=True)
    with pytest.raises(InputError, match="mask_same_video"):  # other settings than the checkpoint's
        _run(cfg, data, w2v, out, resume=True)
    res = _run(cfg, data, w2v, out, mask_same_video=True, resume=True)
    a, b = _weights(full.model_dir), _weights(res.model_dir)
    assert all(torch.equal(a[k], b[k]) for k in a)
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in full.log]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in res.log]


# ---------------------------------------------------------------------------------------------------------
# bad checkpoints and mismatched features


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ.get('AVS_TEST_MARKER', '/nonexistent/marker')}",))


def test_bad_checkpoints_fail_cleanly(fitted, tmp_path, monkeypatch):
    import shutil

    res, data = fitted
    marker = tmp_path / "pwned"
    monkeypatch.setenv("AVS_TEST_MARKER", str(marker))

    bad = tmp_path / "corrupt"
    shutil.copytree(res.model_dir, bad)
    (bad / "weights.pt").write_bytes(b"this is not a checkpoint")
    with pytest.raises(InputError, match="weights.pt"):
        evaluate_retrieval(bad, data)

    evil = tmp_path / "evil"
    shutil.copytree(res.model_dir, evil)
    with open(evil / "weights.pt", "wb") as f:
        pickle.dump({"x": _Evil()}, f, protocol=2)
    with pytest.raises(InputError, match="safely"):
        evaluate_retrieval(evil, data)
    torch.save({"x": _Evil()}, evil / "weights.pt")
    with pytest.raises(InputError, match="safely"):
        evaluate_retrieval(evil, data)
    assert not marker.exists()

    wrong = tmp_path / "shape"
    shutil.copytree(res.model_dir, wrong)
    state = _weights(wrong)
    key = next(k for k, v in state.items() if v.ndim == 2)
    state[key] = torch.zeros(state[key].shape[0] + 1, state[key].shape[1])
    torch.save(state, wrong / "weights.pt")
    with pytest.raises(InputError, match="shape mismatch"):
        evaluate_retrieval(wrong, data)

    # a malicious training checkpoint is not executed on --resume either
    cfg = small_config()
    work = tmp_path / "m.training"
    work.mkdir()
    torch.save({"format": "avs-train-checkpoint", "x": _Evil()}, work / "checkpoint.pt")
    with pytest.raises(InputError, match="safely"):
        train(
            cfg,
            open_data(data, cfg),
            open_data(data, cfg),
            tmp_path / "m",
            resume=True,
            vocab_threshold=1,
            progress=False,
        )
    assert not marker.exists()


def test_mismatched_features_fail_cleanly(fitted, tmp_path):
    res, _ = fitted
    caps = {f"v{i}": [f"w{i} here"] for i in range(4)}
    rng = np.random.default_rng(0)
    missing = write_collection(tmp_path, "nofeat", caps, {"other": rng.normal(size=(4, 12))})
    with pytest.raises(InputError, match="f1 is missing"):
        evaluate_retrieval(res.model_dir, missing)
    wrong = write_collection(tmp_path, "wrongdim", caps, {"f1": rng.normal(size=(4, 7))})
    with pytest.raises(InputError, match="f1 has dim 7, the model expects 12"):
        evaluate_retrieval(res.model_dir, wrong)


# ---------------------------------------------------------------------------------------------------------
# LAFF finds the informative feature


def _concept_data(root: Path, name: str, n_videos: int, seed: int, concepts: np.ndarray) -> Path:
    """Each video shows 2 of the concepts; its captions name them. Feature ``sig`` is the sum of the two
    concept vectors, ``n1``..``n3`` are noise unrelated to the captions."""
    rng = np.random.default_rng(seed)
    k = len(concepts)
    caps, sig = {}, []
    for i in range(n_videos):
        a, b = rng.choice(k, size=2, replace=False)
        caps[f"{name}{i}"] = [f"c{a} with c{b}", f"c{b} and c{a}", f"see c{a} c{b}"]
        sig.append(concepts[a] + concepts[b] + 0.1 * rng.normal(size=concepts.shape[1]))
    feats = {"sig": np.array(sig)}
    for n in ("n1", "n2", "n3"):
        feats[n] = 2.0 * rng.normal(size=(n_videos, 32))
    return write_collection(root, name, caps, feats)


def test_laff_attends_to_the_informative_feature_and_beats_averaging(tmp_path):
    concepts = np.random.default_rng(42).normal(size=(8, 16))
    tr = _concept_data(tmp_path, "ctrain", 60, 1, concepts)
    va = _concept_data(tmp_path, "cval", 30, 2, concepts)
    te = _concept_data(tmp_path, "ctest", 30, 3, concepts)
    video = ("sig", "n1", "n2", "n3")
    results = {}
    for fusion in ("laff", "attention_free"):
        cfg = small_config(video=video, fusion=fusion, heads=2 if fusion == "laff" else 1, dropout=0.2, space_dim=64)
        res = train(
            cfg,
            open_data(tr, cfg),
            open_data(va, cfg),
            tmp_path / fusion,
            epochs=30,
            batch_size=32,
            lr=2e-3,
            vocab_threshold=1,
            patience=30,
            progress=False,
        )
        results[fusion] = evaluate_retrieval(res.model_dir, te)["t2v"]
        if fusion == "laff":
            loaded = load_model(res.model_dir)
            d = open_data(te, loaded.config)
            with torch.no_grad():
                _, weights = loaded.model.encode_video(
                    {n: torch.from_numpy(d.dataset.vectors(n)) for n in video}, return_weights=True
                )
            mean = weights.mean(dim=(0, 1))  # over videos and heads
            assert mean[0] > 0.5, mean
            assert int(mean.argmax()) == 0
    assert results["laff"]["mir"] > results["attention_free"]["mir"], results
