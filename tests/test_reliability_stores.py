"""Bad stores, indexes, models, devices, full disks and concurrent writers: one-line InputErrors, nothing
half-written left behind, no existing output damaged (one test or parametrized group per kind of input)."""

import dataclasses
import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from avs.engine import index as I
from avs.engine.encode import text_featurizer
from avs.errors import InputError
from avs.features.importers import import_npy
from avs.features.vocab import build_vocab
from avs.formats.fileio import DestinationLock
from avs.formats.store import check, info, open_store, write_store
from avs.models import TextVideoModel, load_config, load_model, save_model

REPO = Path(__file__).parent.parent
WORDS = "dog cat car boat person water street snow tree bike".split()


def tiny_model_dir(path, seed=0, dims=(("a", 12), ("b", 8)), space_dim=32):
    torch.manual_seed(seed)
    vocab = build_vocab([" ".join(WORDS)] * 2, "bow_nsw", threshold=1)
    cfg = load_config("laff")
    cfg = dataclasses.replace(
        cfg,
        space_dim=space_dim,
        heads=4,
        video=tuple(dataclasses.replace(cfg.video[1], name=n, dim=d) for n, d in dims),
        text=(dataclasses.replace(cfg.text[1], dim=len(vocab)),),
    )
    save_model(TextVideoModel(cfg).eval(), path, vocabs={"bow": vocab}, meta={"config": "laff"})
    return path


def tiny_store(path, n=200, seed=0, nan_row=None):
    rng = np.random.default_rng(seed)
    ids = [f"shot{i // 7 + 1:05d}_{i % 7 + 1}" for i in range(n)]
    feats = {"a": rng.standard_normal((n, 12)).astype(np.float32), "b": rng.standard_normal((n, 8)).astype(np.float32)}
    if nan_row is not None:
        feats["b"][nan_row, 3] = np.nan
    write_store(path, ids, feats, name="tiny", allow_nonfinite=nan_row is not None)
    return ids


def one_line_error(r, *needles):
    """The CLI failed with exit 2 and a single ``avs: error: ...`` line holding every needle."""
    assert r.exit_code == 2, (r.exit_code, r.output)
    assert r.stderr.startswith("avs: error: ") and r.stderr.count("\n") == 1, r.stderr
    for n in needles:
        assert str(n) in r.stderr, r.stderr


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith((".part", ".lock")))


@pytest.fixture
def model_and_store(tmp_path):
    model = tiny_model_dir(tmp_path / "model")
    ids = tiny_store(tmp_path / "store.h5")
    return model, tmp_path / "store.h5", ids


# ---- 1. malformed stores ----------------------------------------------------------------------------------


def _bad_meta(f):
    f.attrs["meta"] = "{not json"


def _bad_version(f):
    f.attrs["format_version"] = "abc"


def _extra_group(f):
    f["features"].create_group("zzz")


def _int_ids(f):
    n = len(f["ids"])
    del f["ids"]
    f["ids"] = np.arange(n)


def _no_features(f):
    del f["features"]


MALFORMED = {
    "meta": (_bad_meta, "root attribute meta is not valid JSON"),
    "format_version": (_bad_version, "format_version 'abc' is not an integer"),
    "extra_group": (_extra_group, "feature zzz: not a 2-D dataset"),
    "integer_ids": (_int_ids, "/ids holds int64 values, not strings"),
    "no_features": (_no_features, "no /features group"),
}


@pytest.mark.parametrize("kind", MALFORMED)
def test_malformed_stores_are_refused_by_every_command(model_and_store, run_cli, kind):
    model, good, _ = model_and_store
    damage, problem = MALFORMED[kind]
    store = good.parent / f"{kind}.h5"
    shutil.copy(good, store)
    with h5py.File(store, "r+") as f:
        damage(f)
    with pytest.raises(InputError, match=problem):
        open_store(store)
    with pytest.raises(InputError, match=problem):
        info(store)
    # check never says ok for what opening refuses, and words it the same way
    assert problem in check(store)[0]
    one_line_error(run_cli("collection", "info", store), store, problem)
    r = run_cli("collection", "check", store)
    assert r.exit_code == 1 and r.stdout == f"{store}: {check(store)[0]}\n" and "ok" not in r.stdout.split(": ")[-1]
    out = store.parent / f"{kind}.index.h5"
    one_line_error(run_cli("index", "--model", model, "--collection", store, "--out", out), store, problem)
    assert not out.exists() and leftovers(store.parent) == []
    topics = store.parent / "t.txt"
    topics.write_text("641 a dog\n")
    one_line_error(
        run_cli(
            "search",
            "--topics",
            topics,
            "--model",
            model,
            "--index",
            store,
            "--year",
            2020,
            "--out",
            store.parent / "r.xml",
        ),
        store,
        "not an avs index",
    )


# ---- 2. bad index files, NaN rows -------------------------------------------------------------------------


@pytest.fixture
def built_index(model_and_store):
    model, store, ids = model_and_store
    return model, I.build_index(model, store, store.parent / "index.h5", batch_size=64, progress=False), ids


def test_truncated_index_files_are_refused(built_index, tmp_path, run_cli):
    model, index, _ = built_index
    data = index.read_bytes()
    cut_file = tmp_path / "cut.h5"
    cuts = sorted({*range(0, len(data), max(1, len(data) // 150)), 1, 7, 8, 512, 2048, len(data) - 1})
    for cut in cuts:
        cut_file.write_bytes(data[:cut])
        with pytest.raises(InputError) as e:
            I.open_index(cut_file)
        assert str(e.value).startswith(str(cut_file)) and "\n" not in str(e.value)
    topics = tmp_path / "t.txt"
    topics.write_text("641 a dog\n")
    cut_file.write_bytes(data[: len(data) // 2])
    one_line_error(
        run_cli(
            "search",
            "--topics",
            topics,
            "--model",
            model,
            "--index",
            cut_file,
            "--year",
            2020,
            "--out",
            tmp_path / "r.xml",
        ),
        cut_file,
    )
    assert not (tmp_path / "r.xml").exists()


def _drop_embeddings(f):
    del f["embeddings"]


def _drop_spaces(f):
    del f.attrs["spaces"]


def _wrong_width(f):
    f.attrs["space_size"] = 4


def _short_ids(f):
    ids = f["ids"].asstr()[()]
    del f["ids"]
    f.create_dataset("ids", data=np.array(ids[:-3], dtype=object), dtype=h5py.string_dtype())


@pytest.mark.parametrize(
    "damage, problem",
    [
        (_drop_embeddings, "no /embeddings dataset"),
        (_drop_spaces, "no root attribute spaces"),
        (_wrong_width, "rows have 32 dims, but spaces x space_size = 4 x 4 = 16"),
        (_short_ids, "197 ids but 200 embedding rows"),
    ],
)
def test_damaged_index_files_are_refused_on_open(built_index, tmp_path, damage, problem):
    _, index, _ = built_index
    bad = tmp_path / "bad.h5"
    shutil.copy(index, bad)
    with h5py.File(bad, "r+") as f:
        damage(f)
    with pytest.raises(InputError, match=problem):
        I.open_index(bad)


def test_index_width_must_match_the_model(built_index):
    model, index, _ = built_index
    idx = I.open_index(index)
    loaded = load_model(model)
    idx.check_model(loaded)
    with pytest.raises(InputError, match="rows of 8 x 4 dims, but model 'laff'"):
        dataclasses.replace(idx, spaces=8, space_size=4).check_model(loaded)


def test_nan_rows_refused_when_building_an_index(tmp_path, run_cli):
    model = tiny_model_dir(tmp_path / "model")
    ids = tiny_store(tmp_path / "nan.h5", nan_row=150)
    out = tmp_path / "i.h5"
    with pytest.raises(InputError, match=rf"nan.h5: feature b: NaN/inf in row 150 \(shot {ids[150]}\)"):
        I.build_index(model, tmp_path / "nan.h5", out, batch_size=64, progress=False)
    assert not out.exists() and leftovers(tmp_path) == []
    one_line_error(
        run_cli("index", "--model", model, "--collection", tmp_path / "nan.h5", "--out", out), "feature b", ids[150]
    )
    assert not out.exists() and leftovers(tmp_path) == []


# ---- 3. unusable devices ----------------------------------------------------------------------------------


@pytest.mark.parametrize("device", ["mps", "meta", "cuda:99", "nonsense"])
def test_unusable_devices_refused_before_any_output(model_and_store, run_cli, device):
    model, store, _ = model_and_store  # cuda:99: no such GPU, or no CUDA at all
    out = store.parent / "sub" / "i.h5"
    with pytest.raises(InputError, match="device"):
        I.build_index(model, store, out, device=device, progress=False)
    with pytest.raises(InputError, match="device"):
        load_model(model, device)
    assert not out.parent.exists()
    r = run_cli("index", "--model", model, "--collection", store, "--out", out, "--device", device)
    assert r.exit_code == 2 and r.stderr.startswith("avs: error: ") and r.stderr.count("\n") == 1, r.stderr
    assert not out.parent.exists()


# ---- 4. full disk -----------------------------------------------------------------------------------------


def _enospc(*a, **kw):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _fail_on_call(monkeypatch, owner, name, at):
    real, calls = getattr(owner, name), {"n": 0}

    def wrapper(*a, **kw):
        calls["n"] += 1
        if calls["n"] == at:
            _enospc()
        return real(*a, **kw)

    monkeypatch.setattr(owner, name, wrapper)


@pytest.mark.parametrize("where", ["rows", "reserve"])
def test_full_disk_while_indexing(model_and_store, monkeypatch, run_cli, where):
    model, store, _ = model_and_store
    out = store.parent / "i.h5"
    out.write_bytes(b"an existing index")  # replaced only by a complete one

    def fill_disk():
        monkeypatch.undo()
        if where == "rows":
            _fail_on_call(monkeypatch, h5py.Dataset, "__setitem__", at=3)
        else:
            monkeypatch.setattr(os, "posix_fallocate", _enospc)

    fill_disk()
    with pytest.raises(InputError, match="i.h5: cannot write: No space left on device"):
        I.build_index(model, store, out, batch_size=64, force=True, progress=False)
    assert out.read_bytes() == b"an existing index" and leftovers(store.parent) == []
    fill_disk()
    one_line_error(
        run_cli("index", "--model", model, "--collection", store, "--out", out, "--force", "--batch-size", 64),
        "No space left on device",
    )
    assert out.read_bytes() == b"an existing index" and leftovers(store.parent) == []
    monkeypatch.undo()
    I.build_index(model, store, out, batch_size=64, force=True, progress=False)
    assert len(I.open_index(out)) == 200


def _npy_source(tmp_path, n=300):
    (tmp_path / "ids.txt").write_text("".join(f"v{i}\n" for i in range(n)))
    np.save(tmp_path / "F.npy", np.random.default_rng(0).standard_normal((n, 6)).astype(np.float32))
    return tmp_path / "F.npy", tmp_path / "ids.txt"


def test_full_disk_while_importing(tmp_path, monkeypatch, run_cli):
    arr, ids = _npy_source(tmp_path)
    out = tmp_path / "s.h5"
    write_store(out, ["x"], {"G": np.ones((1, 2), np.float32)})
    before = out.read_bytes()
    _fail_on_call(monkeypatch, h5py.Dataset, "write_direct", at=2)
    with pytest.raises(InputError, match="s.h5: cannot write: No space left on device"):
        import_npy([arr], ids, out, block_rows=64, force=True, progress=False)
    assert out.read_bytes() == before and leftovers(tmp_path) == []
    monkeypatch.undo()
    _fail_on_call(monkeypatch, h5py.Dataset, "write_direct", at=1)  # one block of rows here
    one_line_error(
        run_cli("collection", "import", "npy", arr, "--ids", ids, "--out", out, "--force"), "No space left on device"
    )
    assert out.read_bytes() == before and leftovers(tmp_path) == []


# ---- 5. two writers of one output -------------------------------------------------------------------------


def _hold_lock(path: Path) -> subprocess.Popen:
    code = (
        "import sys; from avs.formats.fileio import DestinationLock; DestinationLock(sys.argv[1]).acquire(); "
        "print('held', flush=True); sys.stdin.read()"
    )
    p = subprocess.Popen(
        [sys.executable, "-c", code, str(path)], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert p.stdout.readline() == "held\n"
    return p


def test_second_writer_of_an_index_is_refused_and_resume_still_works(model_and_store, monkeypatch, run_cli):
    model, store, _ = model_and_store
    ref = I.build_index(model, store, store.parent / "ref.h5", batch_size=64, progress=False)
    out = store.parent / "i.h5"
    from avs.formats.store import FeatureStore

    real_get, calls = FeatureStore.get, {"n": 0}

    def interrupted_get(self, *a, **kw):
        calls["n"] += 1
        if calls["n"] > 4:
            raise KeyboardInterrupt
        return real_get(self, *a, **kw)

    monkeypatch.setattr(FeatureStore, "get", interrupted_get)
    with pytest.raises(KeyboardInterrupt):
        I.build_index(model, store, out, batch_size=64, progress=False)
    monkeypatch.setattr(FeatureStore, "get", real_get)
    part = store.parent / ".i.h5.part"
    partial = part.read_bytes()
    holder = _hold_lock(out)  # another process is writing OUT
    try:
        with pytest.raises(InputError, match=f"another avs is writing {out}"):
            I.build_index(model, store, out, batch_size=64, progress=False)
        one_line_error(
            run_cli("index", "--model", model, "--collection", store, "--out", out), f"another avs is writing {out}"
        )
        assert part.read_bytes() == partial and not out.exists()  # its file is untouched
    finally:
        holder.communicate("")
    with DestinationLock(out):  # in this process too: flock is per open file, not per process
        with pytest.raises(InputError, match="another avs is writing"):
            I.build_index(model, store, out, batch_size=64, progress=False)
    I.build_index(model, store, out, batch_size=64, progress=False)  # resumes the interrupted build
    np.testing.assert_array_equal(I.open_index(out).embeddings[()], I.open_index(ref).embeddings[()])
    assert leftovers(store.parent) == []


def test_two_concurrent_imports_of_one_store(tmp_path):
    arr, ids = _npy_source(tmp_path, n=20000)
    out = tmp_path / "s.h5"
    cmd = [sys.executable, "-m", "avs", "collection", "import", "npy", str(arr), "--ids", str(ids), "--out", str(out)]
    procs = [
        subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    codes = sorted(rc for rc, _ in results)
    assert codes == [0, 2], results
    loser = next(err for rc, err in results if rc == 2)
    assert loser.count("\n") == 1 and ("another avs is writing" in loser or "already exists" in loser), loser
    assert check(out) == [] and leftovers(tmp_path) == []
    with open_store(out) as s:
        np.testing.assert_array_equal(s.get("F", s.rows([f"v{i}" for i in range(20000)])), np.load(arr))


def test_lock_is_refused_to_a_second_holder_and_cleaned_up(tmp_path):
    out = tmp_path / "x.h5"
    with DestinationLock(out):
        assert (tmp_path / ".x.h5.lock").exists()
        with pytest.raises(InputError, match=f"another avs is writing {out}"):
            DestinationLock(out).acquire()
    assert not (tmp_path / ".x.h5.lock").exists()
    with DestinationLock(out):  # free again
        pass


# ---- 6. model config files --------------------------------------------------------------------------------


def test_non_utf8_toml_config(tmp_path, run_cli):
    p = tmp_path / "c.toml"
    p.write_bytes(b'fusion = "laff"\ndescription = "caf\xe9"\n')
    with pytest.raises(InputError, match="c.toml: not UTF-8 text"):
        load_config(p)
    p.write_text('fusion = "laff"\nspace_dim = "big"\n[[video]]\nname = "a"\n[[text]]\nname = "b"\nkind = "bow"\n')
    with pytest.raises(InputError, match="c.toml: invalid model config: space_dim = 'big' is not an integer"):
        load_config(p)


@pytest.mark.parametrize(
    "name, content, problem",
    [
        ("model.json", b"{not json", "not valid JSON"),
        ("model.json", b"[1, 2]", "not model metadata"),
        ("model.json", b'{"x": "\xff"}', "not UTF-8 text"),
        ("config.json", b"{not json", "not valid JSON"),
        ("config.json", b'"laff"', "not a model config"),
    ],
)
def test_bad_model_json_files_are_named(tmp_path, name, content, problem):
    model = tiny_model_dir(tmp_path / "m")
    (model / name).write_bytes(content)
    with pytest.raises(InputError) as e:
        load_model(model)
    assert str(e.value).startswith(f"{model / name}: {problem}"), str(e.value)


# ---- 7. weights checked against model.json ----------------------------------------------------------------


def test_swapped_weights_are_refused(tmp_path, run_cli):
    a, b = tiny_model_dir(tmp_path / "a", seed=0), tiny_model_dir(tmp_path / "b", seed=1)
    good = load_model(a)
    assert good.fingerprint == json.loads((a / "model.json").read_text())["weights_sha256"]
    shutil.copy(b / "weights.pt", a / "weights.pt")  # same shapes: it loads, but it is not the recorded model
    with pytest.raises(InputError, match=r"weights.pt: sha256 .* is not the .* that model.json records"):
        load_model(a)
    store = tmp_path / "s.h5"
    tiny_store(store)
    one_line_error(run_cli("index", "--model", a, "--collection", store, "--out", tmp_path / "i.h5"), "weights.pt")
    assert not (tmp_path / "i.h5").exists()


# ---- 8. --word2vec PATH that does not exist ---------------------------------------------------------------


def test_missing_word2vec_path_is_an_error(built_index, tmp_path, run_cli):
    model, index, _ = built_index
    missing = tmp_path / "nope" / "w2v.bin"
    with pytest.raises(InputError, match="w2v.bin: no such word2vec file"):
        text_featurizer(load_model(model), word2vec=missing)  # the model uses no word2vec: still refused
    topics = tmp_path / "t.txt"
    topics.write_text("641 a dog\n")
    one_line_error(
        run_cli(
            "search",
            "--topics",
            topics,
            "--model",
            model,
            "--index",
            index,
            "--year",
            2020,
            "--out",
            tmp_path / "r.xml",
            "--word2vec",
            missing,
        ),
        missing,
    )
    assert not (tmp_path / "r.xml").exists()
    from avs.train.loop import evaluate_retrieval, train

    with pytest.raises(InputError, match="no such word2vec file"):
        train("laff", None, None, tmp_path / "out", word2vec=missing)
    with pytest.raises(InputError, match="no such word2vec file"):
        evaluate_retrieval(model, tmp_path, word2vec=missing)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_nonfinite_rows_are_found_by_exponent_bits(dtype):
    """The index build's NaN/inf check (exponent bits for float16/32) finds the first bad row and passes every
    finite value, the largest and the subnormal ones included."""
    x = np.ones((5, 7), dtype)
    assert I._first_nonfinite(x) is None and I._first_nonfinite(x[:0]) is None
    for bad in (np.nan, np.inf, -np.inf):
        y = x.copy()
        y[3, 2] = y[4, 0] = bad
        assert I._first_nonfinite(y) == 3
        assert I._first_nonfinite(y[:, ::2]) == 3  # a strided view
    info_ = np.finfo(dtype)
    y = x.copy()
    y[0, :3] = info_.max, -info_.max, info_.smallest_subnormal
    assert I._first_nonfinite(y) is None
