"""Run comparison, significance tests and model diagnostics (LAFF supplement Tab. 9, 10, 11, 14)."""

import itertools

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from avs.demo import builtin as D
from avs.demo.synth import write_collection
from avs.eval.diagnostics import jaccard_matrix, weight_moments
from avs.eval.plots import attention_bars, grouped_bars, heatmap
from avs.eval.report import compare_runs, paired_tests, randomization_test
from avs.formats.topics import shipped_dir
from avs.train.ablation import ablation_configs

PNG = b"\x89PNG\r\n\x1a\n"
TOPICS = [641, 642, 643, 644, 645, 646]
# Every topic has one relevant shot r and three non-relevant shots, all judged (one stratum, so infAP = AP
# = 1 / rank of r, see near()). Rank of r per topic: baseline 2 everywhere; the other run 1, except 4 on topic 646.
BASE_RANKS = [2, 2, 2, 2, 2, 2]
RUN_RANKS = [1, 1, 1, 1, 1, 4]
LABELS_TSV = (
    "num\tobject\tperson\taction\tlocation\n641\t1\t0\t0\t1\n642\t1\t1\t1\t1\n643\t0\t1\t1\t0\n"
    "644\t1\t0\t0\t1\n645\t1\t1\t0\t0\n646\t1\t1\t0\t0\n"
)


def near(x):
    # sample_eval's estimator adds 0.00001 smoothing terms: infAP is 1 / rank to about 1e-5
    return pytest.approx(x, abs=1e-4)


def _run_text(ranks, tag):
    lines = []
    for num, rank in zip(TOPICS, ranks):
        order = ["n1", "n2", "n3"]
        order.insert(rank - 1, "r")
        lines += [f"1{num} Q0 {num}_{s} {i} {10 - i} {tag}" for i, s in enumerate(order, 1)]
    return "\n".join(lines) + "\n"


@pytest.fixture
def runs(tmp_path):
    (tmp_path / "q").write_text(
        "".join(f"1{n} 0 {n}_{s} 1 {int(s == 'r')}\n" for n in TOPICS for s in ("r", "n1", "n2", "n3"))
    )
    (tmp_path / "base.trec").write_text(_run_text(BASE_RANKS, "base"))
    (tmp_path / "better.trec").write_text(_run_text(RUN_RANKS, "better"))
    (tmp_path / "labels.tsv").write_text(LABELS_TSV)
    return tmp_path


# ---------------------------------------------------------------------------------------------- paired tests


def test_randomization_exact_hand_checked():
    # differences 0.5 x5 and -0.25, mean 0.375: of the 64 sign flips only the four with all of the first five
    # signs equal reach |sum| >= 2.25 (2.5 +- 0.25 either way), so p = 4/64
    res = randomization_test([1, 1, 1, 1, 1, 0.25], [0.5] * 6)
    assert res.exact and res.permutations == 64 and res.p_value == 4 / 64
    # 0.1 x5 and -0.1: |sum| >= 0.4 needs 0, 1, 5 or 6 plus signs: (1 + 6 + 6 + 1) / 64
    res = randomization_test([0.1] * 5 + [-0.1], [0.0] * 6)
    assert res.p_value == 14 / 64


def test_randomization_matches_enumeration_and_is_seeded():
    rng = np.random.default_rng(7)
    a, b = rng.random(8), rng.random(8)
    d = a - b
    flips = [abs(np.dot(s, d)) >= abs(d.sum()) - 1e-12 for s in itertools.product([1, -1], repeat=8)]
    assert randomization_test(a, b, permutations=256).p_value == pytest.approx(sum(flips) / 256)
    sampled = randomization_test(a, b, permutations=255, seed=3)  # fewer than 2^8: Monte Carlo
    assert not sampled.exact and sampled.permutations == 255
    assert sampled == randomization_test(a, b, permutations=255, seed=3)
    assert abs(sampled.p_value - sum(flips) / 256) < 0.1
    assert randomization_test(a, a).p_value == 1.0


def test_ttest_and_wilcoxon_are_scipys():
    rng = np.random.default_rng(1)
    a, b = rng.random(12), rng.random(12)
    p = paired_tests(a, b, permutations=500, seed=0)
    assert p["p_ttest"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert p["p_wilcoxon"] == pytest.approx(stats.wilcoxon(a, b).pvalue)
    assert paired_tests(a, a)["p_ttest"] == 1.0 and paired_tests(a, a)["p_wilcoxon"] == 1.0


# ---------------------------------------------------------------------------------------------- compare


def test_compare_hand_checked(runs):
    c = compare_runs([runs / "base.trec", runs / "better.trec"], runs / "q", runs / "labels.tsv")
    t = c.per_topic
    assert c.baseline == "base" and list(t.columns[:5]) == ["text", "object", "person", "action", "location"]
    assert t.loc["1646", "better"] == near(0.25) and t.loc["1641", "base"] == near(0.5)
    assert t.loc["1641", "mark:better"] == "+" and t.loc["1646", "mark:better"] == "-"
    assert t.loc["1643", "object"] == "" and t.loc["1643", "person"] == "✓"
    assert t.loc["1642", "text"] == "a person paddling kayak in the water"
    assert t.loc["all", "better"] == near(5.25 / 6)
    m = c.label_means
    assert m.loc["object", "better"] == near(4.25 / 5) and m.loc["person", "better"] == near(0.8125)
    assert m.loc["action", "better"] == near(1.0) and m.loc["object", "better topics"] == 5
    row = c.tests.iloc[0]
    assert row["run"] == "better" and row["topics"] == 6 and row["difference"] == near(0.375)
    assert row["p_randomization"] == 4 / 64 and row["exact"]
    d = np.array([0.5] * 5 + [-0.25])
    assert row["p_ttest"] == pytest.approx(stats.ttest_1samp(d, 0).pvalue, rel=1e-3)


def test_compare_cli_writes_tables_and_plots(run_cli, runs):
    out = runs / "out"
    r = run_cli(
        "eval",
        "compare",
        runs / "better.trec",
        runs / "base.trec",
        "--qrels",
        runs / "q",
        "--labels",
        runs / "labels.tsv",
        "--baseline",
        "base",
        "--out",
        out,
    )
    assert r.exit_code == 0, r.stderr
    assert "0.0625" in r.stdout and "a person paddling kayak in the water" in r.stdout
    for name in ("per_topic.png", "labels.png"):
        assert (out / name).read_bytes().startswith(PNG) and (out / name).stat().st_size > 1000
    per_topic = pd.read_csv(out / "per_topic.csv", dtype={"topic": str})
    assert list(per_topic.columns[:8]) == ["topic", "text", "object", "person", "action", "location", "base", "better"]
    assert pd.read_csv(out / "tests.csv")["p_randomization"].iloc[0] == pytest.approx(0.0625)
    md = (out / "compare.md").read_text()
    assert "| topic | text |" in md and "## Paired tests against base" in md
    again = run_cli("eval", "compare", runs / "better.trec", "--qrels", runs / "q", "--out", out)
    assert again.exit_code == 2 and "already exists" in again.stderr


def test_compare_permutations_option_and_seed(run_cli, runs):
    args = (
        "eval",
        "compare",
        runs / "base.trec",
        runs / "better.trec",
        "--qrels",
        runs / "q",
        "--permutations",
        "20",
        "--seed",
        "5",
    )
    first, second = run_cli(*args), run_cli(*args)
    assert first.exit_code == 0 and first.stdout == second.stdout


def _one_line_error(r, message):
    assert r.exit_code == 2, r.stdout
    assert r.stderr.startswith("avs: error: ") and message in r.stderr and r.stderr.count("\n") == 1


def test_compare_bad_inputs(run_cli, runs):
    _one_line_error(run_cli("eval", "compare", runs / "nope.trec", "--qrels", runs / "q"), "no such run file")
    (runs / "other.trec").write_text("1999 Q0 x 1 1 t\n")
    _one_line_error(
        run_cli("eval", "compare", runs / "base.trec", runs / "other.trec", "--qrels", runs / "q"),
        "no run topic is in the qrels",
    )
    _one_line_error(
        run_cli("eval", "compare", runs / "base.trec", "--qrels", runs / "q", "--baseline", "zzz"),
        "neither one of the runs nor a run file",
    )


# ---------------------------------------------------------------------------------------------- diagnostics


def test_weight_moments_hand_checked():
    w1 = torch.tensor([[[0.2, 0.8], [0.4, 0.6]]])
    w2 = torch.tensor([[[0.6, 0.4], [0.4, 0.6]]])
    t = weight_moments([w1, w2], ["a", "b"], "video").set_index(["feature", "space"])
    assert t.loc[("a", "0"), "mean"] == pytest.approx(0.4) and t.loc[("a", "0"), "std"] == pytest.approx(0.2)
    assert t.loc[("a", "1"), "std"] == pytest.approx(0.0)
    assert t.loc[("a", "all"), "mean"] == pytest.approx(0.4)
    assert t.loc[("a", "all"), "std"] == pytest.approx(np.sqrt(0.02))
    assert t.loc[("b", "all"), "mean"] == pytest.approx(0.6)
    assert weight_moments([None], ["a"], "text") is None


def test_jaccard_hand_checked():
    top = [[{"a", "b", "c"}, {"x", "y"}], [{"a", "b", "d"}, {"x", "z"}], [{"e", "f", "g"}, {"x", "y"}]]
    m = jaccard_matrix(top).to_numpy()
    expected = [[1, (2 / 4 + 1 / 3) / 2, 0.5], [(2 / 4 + 1 / 3) / 2, 1, 1 / 6], [0.5, 1 / 6, 1]]
    np.testing.assert_allclose(m, expected)


def test_plots_are_png():
    df = pd.DataFrame({"a": [0.1, 0.5], "b": [0.3, np.nan]}, index=["x", "y"])
    assert grouped_bars(df, "t", "y").startswith(PNG)
    assert heatmap(pd.DataFrame(np.eye(3)), "t").startswith(PNG)
    st = pd.DataFrame(
        {"side": ["text", "video", "video"], "feature": ["bow", "a", "b"], "mean": [1, 0.7, 0.3], "std": [0, 0.1, 0.1]}
    )
    assert attention_bars(st, "t").startswith(PNG)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo is deterministic per DEMO_VERSION, so one already built on this machine is the same demo
    (and is only read here); otherwise build it, as ``avs demo`` does (about 30 s on an idle machine)."""
    ready = D.Demo(D.default_root())
    return ready if ready.ready() else D.build(tmp_path_factory.mktemp("demo") / "home", progress=False)


def test_demo_weights_appearance_largest(run_cli, demo, tmp_path):
    out = tmp_path / "w"
    r = run_cli(
        "model",
        "weights",
        "--model",
        demo.model,
        "--topics",
        shipped_dir() / "tv20.xml",
        "--store",
        demo.store,
        "--out",
        out,
    )
    assert r.exit_code == 0, r.stderr
    assert "video:appearance" in r.stdout and "text:bow" in r.stdout
    t = pd.read_csv(out / "weights.csv", dtype={"space": str})
    video = t[(t.side == "video") & (t.space == "all")].set_index("feature")["mean"]
    assert video.idxmax() == "appearance" and video.sum() == pytest.approx(1.0)
    assert set(t.space) == {"0", "1", "2", "3", "all"}
    assert (out / "weights.png").read_bytes().startswith(PNG) and "±" in (out / "weights.md").read_text()
    r = run_cli(
        "model", "weights", "--model", demo.model, "--captions", demo.collection / "simval", "--store", demo.store
    )
    assert r.exit_code == 0 and "2000 texts, 1000 videos" in r.stdout
    _one_line_error(run_cli("model", "weights", "--model", demo.model), "exactly one of --topics and --captions")


def test_demo_spaces_jaccard(run_cli, demo, tmp_path):
    out = tmp_path / "s"
    r = run_cli(
        "model",
        "spaces",
        "--model",
        demo.model,
        "--topics",
        shipped_dir() / "tv20.xml",
        "--index",
        demo.index,
        "--out",
        out,
    )
    assert r.exit_code == 0, r.stderr
    m = pd.read_csv(out / "spaces.csv").set_index("space").to_numpy()
    assert m.shape == (4, 4) and np.allclose(np.diag(m), 1) and np.allclose(m, m.T)
    assert ((m >= 0) & (m <= 1)).all()
    assert (out / "spaces.png").read_bytes().startswith(PNG)


# ---------------------------------------------------------------------------------------------- ablation


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_collection(tmp_path_factory.mktemp("tiny") / "c", 400, seed=1, progress=False).out


def test_ablation_configs_share_features():
    cfgs = ablation_configs(["laff", "concat", "mhsa"], features="sim_laff")
    assert {tuple(f.name for f in c.video) for c in cfgs.values()} == {("appearance", "motion", "scene")}
    assert cfgs["concat"].fusion == "concat" and cfgs["concat"].heads == 1 and cfgs["laff"].heads == 8
    assert cfgs["mhsa"].space_dim == 512


def test_ablate_cli(run_cli, tiny, tmp_path):
    out = tmp_path / "abl"
    r = run_cli(
        "ablate",
        "--configs",
        "laff,concat,mhsa,attention_free",
        "--features",
        "sim_laff",
        "--train",
        tiny / "simtrain",
        "--val",
        tiny / "simval",
        "--test",
        tiny / "simval",
        "--store",
        tiny / "store.h5",
        "--epochs",
        "1",
        "--batch-size",
        "128",
        "--out",
        out,
    )
    assert r.exit_code == 0, r.stderr
    t = pd.read_csv(out / "ablation.csv").set_index("config")
    assert list(t.index) == ["laff", "concat", "mhsa", "attention_free"]
    assert list(t.columns) == ["fusion", "R@1", "R@5", "R@10", "MedR", "mAP", "mAP change %"]
    assert t.loc["concat", "mAP change %"] == 0
    for name in ("laff", "mhsa"):
        assert t.loc[name, "mAP change %"] == pytest.approx((t.loc[name, "mAP"] / t.loc["concat", "mAP"] - 1) * 100)
    assert (out / "models" / "laff" / "weights.pt").exists()
    assert "%" in (out / "ablation.md").read_text()


def test_ablate_bad_inputs(run_cli, tiny):
    base = ("--train", tiny / "simtrain", "--val", tiny / "simval", "--test", tiny / "simval")
    _one_line_error(run_cli("ablate", "--configs", "laff,nosuch", *base), "no such model config")
    _one_line_error(run_cli("ablate", "--configs", "laff,mhsa", *base), "baseline 'concat' is not among")
