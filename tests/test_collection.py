import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from avs.cli import cli
from avs.errors import InputError
from avs.features.captions import open_caption_dataset, read_captions
from avs.features.importers import import_bigfile, import_npy, import_visione, read_bigfile
from avs.formats.shots import natural_sorted
from avs.formats.store import FeatureSpec, StoreWriter, check, info, open_store, write_store

DATA = Path(__file__).parent / "data" / "collection"
# Source order is not natural order: the store must reorder (shot00001_10 after shot00001_2).
IDS = [f"shot{v:05d}_{s}" for v in (2, 1, 5037) for s in range(1, 13)]


def make_bigfile(folder: Path, ids, dim, seed=0, data=None, shape=None, id_sep=" ") -> np.ndarray:
    folder.mkdir(parents=True)
    x = np.random.default_rng(seed).standard_normal((len(ids), dim)).astype("<f4") if data is None else data
    (folder / "shape.txt").write_text(shape if shape is not None else f"{len(ids)} {dim}\n")
    (folder / "id.txt").write_text(id_sep.join(ids))
    x.tofile(folder / "feature.bin")
    return x


def run_cli(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def two_features(tmp_path):
    """BigFiles A (7-d) and B (5-d, rows in a different order), same ids."""
    a = make_bigfile(tmp_path / "A", IDS, 7, seed=1)
    perm = np.random.default_rng(2).permutation(len(IDS))
    b = make_bigfile(tmp_path / "B", [IDS[i] for i in perm], 5, seed=3)
    b_by_id = {IDS[i]: b[k] for k, i in enumerate(perm)}
    a_by_id = dict(zip(IDS, a))
    return tmp_path, a_by_id, b_by_id


def test_bigfile_roundtrip_is_bit_exact(two_features):
    tmp, a, b = two_features
    res = import_bigfile([tmp / "A", tmp / "B"], tmp / "s.h5", name="toy", progress=False, block_rows=8)
    assert res.rows == len(IDS) and res.features == {"A": 7, "B": 5}
    assert not list(tmp.glob(".*.part"))
    with open_store(tmp / "s.h5") as s:
        assert s.ids == natural_sorted(IDS)
        assert s.ids[:3] == ["shot00001_1", "shot00001_2", "shot00001_3"] and s.ids[9] == "shot00001_10"
        assert s.features == ("A", "B") and s.dims == {"A": 7, "B": 5}
        assert s.dtypes["A"] == np.float32 and s.name == "toy"
        assert s.get("A").tobytes() == np.stack([a[i] for i in s.ids]).tobytes()
        assert s.get("B").tobytes() == np.stack([b[i] for i in s.ids]).tobytes()
        # any row order, repeats allowed
        rows = s.rows(["shot05037_3", "shot00001_1", "shot05037_3"])
        assert np.array_equal(s.get("B", rows), np.stack([b["shot05037_3"], b["shot00001_1"], b["shot05037_3"]]))
        blocks = list(s.iter_blocks(["A", "B"], block_rows=10))
        assert [sl.start for sl, _ in blocks] == [0, 10, 20, 30]
        assert np.array_equal(np.concatenate([d["B"] for _, d in blocks]), s.get("B"))
        assert all(arr.shape == (sl.stop - sl.start, 7) for sl, arr in s.iter_blocks("A", 16))
        reused = [arr.copy() for _, arr in s.iter_blocks("A", 16, reuse=True)]
        assert np.array_equal(np.concatenate(reused), s.get("A"))
        with pytest.raises(InputError, match="2 ids not in the store"):
            s.rows(["shot00001_1", "x", "y"])
        with pytest.raises(InputError, match="no feature 'C'"):
            s.get("C")
    assert check(tmp / "s.h5") == []
    d = info(tmp / "s.h5")
    assert d["rows"] == len(IDS) and [f["feature"] for f in d["features"]] == ["A", "B"]
    assert d["features"][0]["extractor"] == "A" and d["meta"]["imported_from"][0].endswith("A")


def test_plain_h5py_can_read_the_layout(two_features):
    tmp, a, _ = two_features
    import_bigfile([tmp / "A", tmp / "B"], tmp / "s.h5", progress=False)
    with h5py.File(tmp / "s.h5", "r") as f:
        assert f.attrs["complete"] == 1 and f.attrs["format"] == "avs-collection"
        ids = f["ids"].asstr()[:]
        ds = f["features/A"]
        assert ds.attrs["dim"] == 7 and ds.attrs["extractor"] == "A" and ds.chunks[1] == 7
        assert np.array_equal(ds[5], a[ids[5]])


def test_float16_store(two_features):
    tmp, a, _ = two_features
    import_bigfile([tmp / "A"], tmp / "s.h5", dtype="float16", progress=False)
    with open_store(tmp / "s.h5") as s:
        assert s.dtypes["A"] == np.float16
        assert np.array_equal(s.get("A"), np.stack([a[i] for i in s.ids]).astype(np.float16))
        assert s.get("A", dtype="float32").dtype == np.float32


def test_float16_overflow_is_refused(tmp_path):
    x = np.ones((3, 2), "<f4")
    x[1, 0] = 1e6
    make_bigfile(tmp_path / "A", ["a", "b", "c"], 2, data=x)
    with pytest.raises(InputError, match="feature A: a value too large for float16 .* id b"):
        import_bigfile([tmp_path / "A"], tmp_path / "s.h5", dtype="float16", progress=False)


def test_missing_ids_are_an_error_or_dropped(tmp_path):
    make_bigfile(tmp_path / "A", IDS, 4)
    make_bigfile(tmp_path / "B", IDS[:-5], 3)
    with pytest.raises(InputError) as e:
        import_bigfile([tmp_path / "A", tmp_path / "B"], tmp_path / "s.h5", progress=False)
    msg = str(e.value)
    assert msg.startswith(str(tmp_path / "B")) and "5 of 36 ids are missing" in msg
    assert "B lacks 5 (first: shot05037_8, shot05037_9, shot05037_10, ...)" in msg and "--drop-incomplete" in msg
    assert not (tmp_path / "s.h5").exists()
    res = import_bigfile([tmp_path / "A", tmp_path / "B"], tmp_path / "s.h5", drop_incomplete=True, progress=False)
    assert res.rows == 31 and res.dropped_incomplete == 5


def test_exclude_dropped_shots_cli(tmp_path):
    make_bigfile(tmp_path / "A", IDS, 4)
    r = run_cli("collection", "import", "bigfile", tmp_path / "A", "--out", tmp_path / "s.h5", "--exclude", "V3C1")
    assert r.exit_code == 0, r.output
    assert "left out 1 excluded ids" in r.stderr
    with open_store(tmp_path / "s.h5") as s:
        assert "shot05037_1" not in s.ids and len(s) == len(IDS) - 1


# ---- bad BigFile input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case, expected",
    [
        (
            "shape_disagrees",
            "feature.bin: 240 bytes, but shape.txt says 6 x 5 float32 = 120 bytes; that is exactly"
            " N x D float64 values, but BigFile holds float32",
        ),
        (
            "truncated",
            "feature.bin: 100 bytes, but shape.txt says 6 x 5 float32 = 120 bytes; truncated? 5 complete rows",
        ),
        ("id_count", "id.txt: 5 ids but shape.txt says 6"),
        ("duplicate_ids", "id.txt:1: id 'b' appears twice"),
        ("bad_shape_txt", "shape.txt: expected one line 'N D' (two counts), got '6 5 2'"),
        ("missing_file", "id.txt: missing (a BigFile folder holds shape.txt, id.txt and feature.bin)"),
    ],
)
def test_bad_bigfile(tmp_path, case, expected):
    ids = list("abcdef")
    d = tmp_path / "F"
    x = np.random.default_rng(0).standard_normal((6, 5)).astype("<f4")
    if case == "shape_disagrees":  # float64 written where float32 belongs (wrong dtype)
        make_bigfile(d, ids, 5, data=x.astype("<f8"))
    elif case == "truncated":
        make_bigfile(d, ids, 5, data=x)
        (d / "feature.bin").write_bytes((d / "feature.bin").read_bytes()[:100])
    elif case == "id_count":
        make_bigfile(d, ids[:5], 5, data=x, shape="6 5\n")
    elif case == "duplicate_ids":
        make_bigfile(d, list("abbdef"), 5, data=x)
    elif case == "bad_shape_txt":
        make_bigfile(d, ids, 5, data=x, shape="6 5 2\n")
    elif case == "missing_file":
        make_bigfile(d, ids, 5, data=x)
        (d / "id.txt").unlink()
    with pytest.raises(InputError) as e:
        import_bigfile([d], tmp_path / "s.h5", progress=False)
    assert str(e.value) == f"{d}/{expected}"
    assert list(tmp_path.glob("*.h5")) == [] and list(tmp_path.glob(".*.part")) == []


def test_newline_separated_ids_and_bigfile_vectors(tmp_path):
    x = make_bigfile(tmp_path / "A", ["a", "b", "c"], 2, id_sep="\n")
    bf = read_bigfile(tmp_path / "A")
    assert bf.ids == ["a", "b", "c"]
    assert np.array_equal(bf.vectors(["c", "a", "c"]), x[[2, 0, 2]])


def test_nonfinite_refused_at_import_unless_allowed(tmp_path):
    x = np.ones((4, 3), "<f4")
    x[2, 1] = np.nan
    make_bigfile(tmp_path / "A", ["a", "b", "c", "d"], 3, data=x)
    with pytest.raises(InputError) as e:
        import_bigfile([tmp_path / "A"], tmp_path / "s.h5", progress=False)
    assert str(e.value) == (
        f"{tmp_path / 'A'}: feature A: NaN/inf in the row of id c (use --allow-nonfinite to import anyway)"
    )
    assert not (tmp_path / "s.h5").exists() and not list(tmp_path.glob(".*.part"))
    import_bigfile([tmp_path / "A"], tmp_path / "s.h5", allow_nonfinite=True, progress=False)
    with open_store(tmp_path / "s.h5") as s:
        assert np.isnan(s.get("A")[2, 1])


def test_interrupted_import_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
    make_bigfile(tmp_path / "A", IDS, 4)
    appended = []
    real_append = StoreWriter.append

    def append_then_interrupt(self, name, block):
        real_append(self, name, block)
        appended.append(len(block))
        if len(appended) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(StoreWriter, "append", append_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        import_bigfile([tmp_path / "A"], tmp_path / "s.h5", block_rows=8, progress=False)
    assert list(tmp_path.iterdir()) == [tmp_path / "A"]


def test_partial_file_is_refused(tmp_path):
    # What a killed import leaves: the .part file, never renamed, complete=0.
    w = StoreWriter(tmp_path / "s.h5", ["a", "b"], [FeatureSpec("F", 2)])
    w.append("F", np.ones((1, 2)))
    w._f.close()
    part = tmp_path / ".s.h5.part"
    assert part.exists() and not (tmp_path / "s.h5").exists()
    with pytest.raises(InputError, match="incomplete store"):
        open_store(part)
    assert check(part)[0].startswith("incomplete")
    with pytest.raises(ValueError, match="not fully written"):
        StoreWriter(tmp_path / "t.h5", ["a"], [FeatureSpec("F", 2)]).finish()


# ---- stores: write_store, non-HDF5, check -----------------------------------------------------------


def test_write_store_and_force(tmp_path):
    ids = ["v2", "v1", "v10"]
    x = np.arange(6, dtype=np.float32).reshape(3, 2)
    write_store(tmp_path / "s.h5", ids, {"F": x}, meta={"split": "test"}, extractors={"F": "clip-vit-b32"})
    with open_store(tmp_path / "s.h5") as s:
        assert s.ids == ids and s.meta == {"split": "test"} and s.extractors == {"F": "clip-vit-b32"}
        assert np.array_equal(s.get("F"), x)
    with pytest.raises(InputError, match="already exists"):
        write_store(tmp_path / "s.h5", ids, {"F": x})
    write_store(tmp_path / "s.h5", ids, {"F": x + 1}, force=True)
    with open_store(tmp_path / "s.h5") as s:
        assert s.get("F")[0, 0] == 1
    with pytest.raises(InputError, match="1 duplicate ids"):
        write_store(tmp_path / "d.h5", ["a", "a"], {"F": x[:2]})
    with pytest.raises(InputError, match="feature name 'a/b' is not usable"):
        write_store(tmp_path / "d.h5", ["a", "b"], {"a/b": x[:2]})


@pytest.mark.parametrize("fn", [open_store, info, check])
def test_non_hdf5_and_foreign_hdf5_refused(tmp_path, fn):
    txt = tmp_path / "x.h5"
    txt.write_text("not hdf5\n")
    with pytest.raises(InputError, match="not an HDF5 file"):
        fn(txt)
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["data"] = np.zeros((2, 2))
    with pytest.raises(InputError, match="not an avs collection store"):
        fn(tmp_path / "other.h5")
    with pytest.raises(InputError, match="no such file"):
        fn(tmp_path / "missing.h5")


def test_check_finds_problems(tmp_path):
    p = tmp_path / "s.h5"
    x = np.ones((4, 3), np.float32)
    x[1] = 0
    x[3, 2] = np.inf
    write_store(p, ["a", "b", "c", "d"], {"F": x, "G": x[:, :2]}, allow_nonfinite=True)
    with h5py.File(p, "r+") as f:  # damage it the ways other tools might
        ids = f["ids"][:]
        ids[2] = ids[0]
        f["ids"][:] = ids
        f["features"].create_dataset("H", data=np.zeros((4, 2), np.float64))
        f["features"].create_dataset("I", data=np.ones((3, 2), np.float32))
        f["features/G"].attrs["dim"] = 5
    problems = check(p)
    assert problems == [
        "ids: 1 duplicate ids (first: a)",
        "feature F: 1 rows with NaN/inf (first: id d)",
        "feature F: 1 all-zero rows (first: id b)",
        "feature G: attribute dim=5 but 2 columns",
        "feature G: 1 all-zero rows (first: id b)",
        "feature H: dtype float64 (expected one of float16, float32)",
        "feature H: 4 all-zero rows (first: id a)",
        "feature I: 3 rows but 4 ids",
    ]
    with pytest.raises(InputError, match="feature I: shape"):
        open_store(p)


# ---- npy and VISIONE ----------------------------------------------------------------------------------


def test_import_npy(tmp_path):
    ids = ["shot00001_2", "shot00001_1", "shot00001_10"]
    (tmp_path / "ids.txt").write_text("\n".join(ids) + "\n")
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    np.save(tmp_path / "clip.npy", x)
    import_npy([tmp_path / "clip.npy"], tmp_path / "ids.txt", tmp_path / "s.h5", progress=False)
    with open_store(tmp_path / "s.h5") as s:
        assert s.ids == ["shot00001_1", "shot00001_2", "shot00001_10"]
        assert s.get("clip").tobytes() == x[[1, 0, 2]].tobytes()


@pytest.mark.parametrize(
    "array, expected",
    [
        (np.zeros((3, 4), np.int64), "dtype int64 is not a floating-point type"),
        (np.zeros((2, 4), np.float32), "2 rows but {ids} has 3 ids"),
        (np.zeros(3, np.float32), "array of shape (3,); expected 2-D (rows x dim)"),
        (None, "not a readable .npy array"),
    ],
)
def test_bad_npy(tmp_path, array, expected):
    (tmp_path / "ids.txt").write_text("a\nb\nc\n")
    p = tmp_path / "f.npy"
    if array is None:
        p.write_bytes(b"\x93NUMPY garbage")
    else:
        np.save(p, array)
    with pytest.raises(InputError) as e:
        import_npy([p], tmp_path / "ids.txt", tmp_path / "s.h5", progress=False)
    assert str(e.value).startswith(f"{p}: " + expected.format(ids=tmp_path / "ids.txt"))


def write_visione(path: Path, ids, data, name="clip"):
    with h5py.File(path, "w") as f:
        f.create_dataset("ids", data=np.array(ids, dtype=object), dtype=h5py.string_dtype())
        f.create_dataset("data", data=data)
        if name:
            f.attrs["features_name"] = name


def test_import_visione(tmp_path):
    rng = np.random.default_rng(0)
    x1, x2 = rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal((2, 4)).astype(np.float32)
    write_visione(tmp_path / "00002.h5", ["shot00002_1", "shot00002_2", "shot00002_3"], x1)
    write_visione(tmp_path / "00001.h5", ["shot00001_2", "shot00001_1"], x2)
    r = run_cli(
        "collection", "import", "visione", tmp_path / "00002.h5", tmp_path / "00001.h5", "--out", tmp_path / "s.h5"
    )
    assert r.exit_code == 0, r.output
    with open_store(tmp_path / "s.h5") as s:
        assert s.features == ("clip",)
        assert s.ids == ["shot00001_1", "shot00001_2", "shot00002_1", "shot00002_2", "shot00002_3"]
        assert s.get("clip").tobytes() == np.concatenate([x2[[1, 0]], x1]).tobytes()
    write_visione(tmp_path / "bad.h5", ["a", "b"], np.zeros((3, 4), np.float32))
    with pytest.raises(InputError, match="2 ids but 3 rows"):
        import_visione([tmp_path / "bad.h5"], tmp_path / "t.h5", progress=False)
    write_visione(tmp_path / "noname.h5", ["a"], np.zeros((1, 4), np.float32), name=None)
    with pytest.raises(InputError, match="no root attribute features_name"):
        import_visione([tmp_path / "noname.h5"], tmp_path / "t.h5", progress=False)
    import_visione([tmp_path / "noname.h5"], tmp_path / "t.h5", feature="dino", progress=False)
    with pytest.raises(InputError, match="not a VISIONE feature file"):
        import_visione([tmp_path / "s.h5"], tmp_path / "u.h5", progress=False)


# ---- CLI ------------------------------------------------------------------------------------------------


def test_cli_import_info_check(two_features):
    tmp = two_features[0]
    out = tmp / "s.h5"
    r = run_cli(
        "collection", "import", "bigfile", tmp / "A", tmp / "B", "--out", out, "--name", "toy", "--dtype", "float16"
    )
    assert r.exit_code == 0, r.output
    assert f"{out}: 36 rows; features A (7), B (5)" in r.stderr
    r = run_cli("collection", "info", out)
    assert r.exit_code == 0
    assert "collection toy, 36 ids (shot00001_1 .. shot05037_12)" in r.stdout and "float16" in r.stdout
    d = json.loads(run_cli("collection", "info", out, "--format", "json").stdout)
    assert d["features"][1] == {
        "feature": "B",
        "dim": 5,
        "dtype": "float16",
        "extractor": "B",
        "chunk_rows": 36,
        "bytes": 360,
    }
    r = run_cli("collection", "check", out)
    assert r.exit_code == 0 and r.stdout == f"{out}: ok\n"
    r = run_cli("collection", "import", "bigfile", tmp / "A", "--out", out)
    assert r.exit_code == 2 and r.stderr == f"avs: error: {out}: already exists (use --force to overwrite)\n"
    r = run_cli("collection", "import", "bigfile", tmp / "A", "--out", out, "--dtype", "float64")
    assert r.exit_code == 2 and "'float64' is not one of" in r.stderr
    (tmp / "zero.h5").unlink(missing_ok=True)
    write_store(tmp / "zero.h5", ["a", "b"], {"F": np.zeros((2, 2), np.float32)})
    r = run_cli("collection", "check", tmp / "zero.h5")
    assert r.exit_code == 1 and "feature F: 2 all-zero rows (first: id a)" in r.stdout
    (tmp / "junk.h5").write_text("x")
    r = run_cli("collection", "info", tmp / "junk.h5")
    assert r.exit_code == 2 and r.stderr == f"avs: error: {tmp / 'junk.h5'}: not an HDF5 file\n"


def test_cli_npy_and_missing_ids(tmp_path):
    make_bigfile(tmp_path / "A", IDS, 4)
    make_bigfile(tmp_path / "B", IDS[3:], 3)
    r = run_cli("collection", "import", "bigfile", tmp_path / "A", tmp_path / "B", "--out", tmp_path / "s.h5")
    assert r.exit_code == 2 and "3 of 36 ids are missing from some features" in r.stderr
    r = run_cli(
        "collection",
        "import",
        "bigfile",
        tmp_path / "A",
        tmp_path / "B",
        "--out",
        tmp_path / "s.h5",
        "--drop-incomplete",
    )
    assert r.exit_code == 0 and "left out 3 ids that some feature lacks" in r.stderr
    (tmp_path / "ids.txt").write_text("x\ny\n")
    np.save(tmp_path / "f.npy", np.ones((2, 3), np.float32))
    r = run_cli(
        "collection", "import", "npy", "--ids", tmp_path / "ids.txt", tmp_path / "f.npy", "-o", tmp_path / "n.h5"
    )
    assert r.exit_code == 0, r.output
    assert open_store(tmp_path / "n.h5").ids == ["x", "y"]


# ---- caption datasets ---------------------------------------------------------------------------------


def test_read_captions_msvd_slice():
    df = read_captions(DATA / "msvd" / "msvdtest" / "TextData" / "msvdtest.caption.txt")
    assert list(df.columns) == ["caption_id", "video_id", "text"]
    assert len(df) == 202 and df["video_id"].nunique() == 20
    first = df.iloc[0]
    assert first.caption_id == "kquB3rIgfGk_640_645#0" and first.video_id == "kquB3rIgfGk_640_645"
    assert df.set_index("caption_id").loc["kquB3rIgfGk_640_645#15", "text"].endswith("“Oh!” in full satisfaction.")


def test_read_captions_edge_cases(tmp_path):
    p = tmp_path / "c.caption.txt"
    p.write_text("v1#0 a dog\nv1#1\n\nvid-2_3_4#0   two  spaces kept inside \n", encoding="utf-8")
    df = read_captions(p)
    assert df.values.tolist() == [
        ["v1#0", "v1", "a dog"],
        ["v1#1", "v1", ""],
        ["vid-2_3_4#0", "vid-2_3_4", "two  spaces kept inside"],
    ]
    p.write_text("v1#0 a\nv1 no hash\n")
    with pytest.raises(InputError) as e:
        read_captions(p)
    assert str(e.value) == f"{p}:2: caption id 'v1' is not <videoid>#<k>"
    p.write_text("v1#0 a\nv1#0 b\n")
    with pytest.raises(InputError, match=":2: caption id v1#0 repeats"):
        read_captions(p)


def test_open_caption_dataset_from_bigfile_and_store(tmp_path):
    shutil.copytree(DATA / "msvd", tmp_path / "root")
    base = tmp_path / "root" / "msvdtest"
    videos = (base / "VideoSets" / "msvdtest.txt").read_text().split()
    x = make_bigfile(base / "FeatureData" / "clip", videos[::-1], 6)[::-1]  # stored in reverse order
    ds = open_caption_dataset(tmp_path / "root", "msvdtest", features=["clip"])
    assert ds.videos == videos and len(ds.captions) == 202 and ds.features == ("clip",)
    assert np.array_equal(ds.vectors("clip"), x)
    assert np.array_equal(ds.vectors("clip", [videos[3]]), x[[3]])

    import_bigfile([base / "FeatureData" / "clip"], tmp_path / "s.h5", progress=False)
    ds2 = open_caption_dataset(tmp_path / "root", "msvdtest", store=tmp_path / "s.h5")
    assert np.array_equal(ds2.vectors("clip"), x)

    make_bigfile(base / "FeatureData" / "short", videos[:-2], 2)
    with pytest.raises(InputError, match=r"short: lacks 2 of the 20 videos"):
        open_caption_dataset(tmp_path / "root", "msvdtest", features=["short"])
    (base / "VideoSets" / "msvdtest.txt").write_text("\n".join(videos[1:]) + "\n")
    with pytest.raises(InputError, match="captions of 1 videos not in"):
        open_caption_dataset(tmp_path / "root", "msvdtest")
