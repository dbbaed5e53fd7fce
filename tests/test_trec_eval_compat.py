"""trec_eval_compat against sample_eval.pl's exact outputs (tests/data/sample_eval/README.md)."""

import gzip
import subprocess
import sys

import pytest

from trec_eval_compat import InputError
from trec_eval_compat.evaluate import Qrels, evaluate, format_sample_eval, parse_cutoffs
from trec_eval_compat.io import read_qrels, read_run_lines
from trec_eval_compat.xinfap import AVS_CUTOFFS, CUTOFFS_2012

from conftest import SAMPLE_EVAL, TV21_QRELS

TV21_RUNS = ["run1_mixed", "run2_relfirst", "run3_ties", "run4_rankcol_reversed", "run5_edgecases"]
SMALL = [("tiny", "tiny"), ("tiny2", "tiny2"), ("fuzz101", "fuzz101"), ("fuzz202", "fuzz202"), ("fuzz303", "fuzz303")]


@pytest.fixture(scope="module")
def tv21():
    return Qrels.read(TV21_QRELS)


# (cutoffs, file infix): the AVS script of TV16 on (the default) and the generic script of 5 Sep 2012
SCRIPTS = [(AVS_CUTOFFS, "avs"), (CUTOFFS_2012, "eval")]


@pytest.mark.parametrize("cutoffs,script", SCRIPTS)
@pytest.mark.parametrize("run", TV21_RUNS)
@pytest.mark.parametrize("per_query,suffix", [(True, "q"), (False, "all")])
def test_tv21_runs_byte_identical(tv21, run, per_query, suffix, cutoffs, script):
    ev = evaluate(tv21, SAMPLE_EVAL / f"{run}.txt.gz", cutoffs=cutoffs)
    assert format_sample_eval(ev, per_query) == (SAMPLE_EVAL / f"{run}.{script}.{suffix}.txt").read_text()


@pytest.mark.parametrize("cutoffs,script", SCRIPTS)
@pytest.mark.parametrize("qrels,run", SMALL)
def test_small_cases_byte_identical(qrels, run, cutoffs, script):
    ev = evaluate(SAMPLE_EVAL / f"{qrels}.qrels", SAMPLE_EVAL / f"{run}.run", cutoffs=cutoffs)
    assert format_sample_eval(ev, True) == (SAMPLE_EVAL / f"{run}.{script}.q.txt").read_text()


def test_avs_cutoffs_are_the_default(tv21):
    ev = evaluate(tv21, SAMPLE_EVAL / "run1_mixed.txt.gz")
    assert ev.cutoffs == (5, 10, 15, 20, 30, 100, 200, 500, 1000)
    assert list(ev.per_topic.columns) == [
        "infAP",
        "infNDCG",
        "iP5",
        "iP10",
        "iP15",
        "iP20",
        "iP30",
        "iP100",
        "iP200",
        "iP500",
        "iP1000",
        "inum_rel_ret",
        "inum_rel",
        "num_ret",
    ]
    assert round(ev.aggregate["iP5"], 4) == 0.1483 and round(ev.aggregate["iP30"], 4) == 0.1270


def test_any_cutoff_list(tv21):
    """A custom list prints its ranks in the order given; each value is the AVS script's at that rank."""
    avs = evaluate(tv21, SAMPLE_EVAL / "run1_mixed.txt.gz")
    mine = evaluate(tv21, SAMPLE_EVAL / "run1_mixed.txt.gz", cutoffs=parse_cutoffs("100,5,2000"))
    text = format_sample_eval(mine, False)
    assert [ln.split("\t")[0] for ln in text.splitlines() if ln.startswith("iP")] == ["iP100", "iP5", "iP2000"]
    assert mine.aggregate["iP100"] == avs.aggregate["iP100"] and mine.aggregate["iP5"] == avs.aggregate["iP5"]
    assert mine.aggregate["iP2000"] == pytest.approx(avs.aggregate["iP1000"] / 2)  # nothing ranks past 1000
    assert parse_cutoffs("2012") == (10, 100, 1000, 1000) and parse_cutoffs("AVS") == AVS_CUTOFFS
    for bad in ("", "0,5", "5,x", "-1"):
        with pytest.raises(InputError, match="cutoffs"):
            parse_cutoffs(bad)


def test_headline_numbers(tv21):
    means = {r: evaluate(tv21, SAMPLE_EVAL / f"{r}.txt.gz").aggregate["infAP"] for r in TV21_RUNS}
    assert {r: round(v, 4) for r, v in means.items()} == {
        "run1_mixed": 0.0219,
        "run2_relfirst": 1.1086,
        "run3_ties": 0.0233,
        "run4_rankcol_reversed": 0.0219,
        "run5_edgecases": 0.0313,
    }


def test_inferred_num_rel_per_topic(tv21):
    rows = (SAMPLE_EVAL / "tv21_inferred_num_rel_by_sample_eval.tsv").read_text().split("\n")[1:]
    expected = dict(r.split("\t") for r in rows if r)
    assert f"{sum(q.num_rel for q in tv21.topics.values()):.4f}" == expected.pop("all")
    assert {t: f"{q.num_rel:.4f}" for t, q in tv21.topics.items()} == expected


def test_tiny_by_hand():
    """trecvid-formats.md §1.9: R̂ = 1·2/2 + 1·4/2 = 3; xinfAP = (1 + 2·0.58333)/3."""
    ev = evaluate(SAMPLE_EVAL / "tiny.qrels", SAMPLE_EVAL / "tiny.run")
    row = ev.per_topic.loc["1"]
    eps = 1e-5
    p_c = 0.25 + 0.25 * ((1 + eps) / (1 + 3 * eps) + eps / (3 * eps))
    assert row.inum_rel == 3.0
    assert row.infAP == pytest.approx((1 + 2 * p_c) / 3, abs=1e-12)
    assert ev.aggregate["inum_rel"] == 4.0  # topic 2 counts though absent from the run


def test_dataframe_api(tv21):
    ev = evaluate(tv21, SAMPLE_EVAL / "run5_edgecases.txt.gz")
    assert list(ev.per_topic.index) == ["1661", "1662", "1663", "1664", "1665"]
    assert ev.per_topic.loc[["1661", "1662", "1663"], "num_ret"].tolist() == [1200, 1000, 50]
    assert ev.aggregate["num_ret"] == 3950
    assert ev.ignored_topics == ["01666", "9999"] and len(ev.missing_topics) == 15


def test_strict_mode_averages_over_all_qrels_topics(tmp_path):
    qrels = tmp_path / "q"
    qrels.write_text("1 0 a 1 1\n1 0 b 1 0\n2 0 x 1 1\n")
    run = tmp_path / "r"
    run.write_text("1 Q0 a 1 2 t\n1 Q0 b 2 1 t\n")
    compat, strict = evaluate(qrels, run), evaluate(qrels, run, strict=True)
    assert compat.aggregate["infAP"] == 1.0 and strict.aggregate["infAP"] == 0.5
    assert strict.missing_topics == ["2"] and strict.per_topic.loc["2", "infAP"] == 0.0


@pytest.mark.parametrize(
    "run_text,message",
    [
        ("1 Q0 a 1 2 t\n1 Q0 a 2 1 t\n", ":2: topic 1: shot a appears twice (strict mode)"),
        ("".join(f"1 Q0 s{i} {i} {-i} t\n" for i in range(1001)), "topic 1: 1001 results, more than 1000"),
        ("1 Q0 a 1 2 t\n7 Q0 a 1 2 t\n", "1 run topic(s) not in the qrels"),
    ],
)
def test_strict_rejections(tmp_path, run_text, message):
    (tmp_path / "q").write_text("1 0 a 1 1\n")
    (tmp_path / "r").write_text(run_text)
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        evaluate(tmp_path / "q", tmp_path / "r", strict=True)
    evaluate(tmp_path / "q", tmp_path / "r")  # compat mode accepts the same file


@pytest.mark.parametrize(
    "reader,text,message",
    [
        (read_qrels, "1 0 a 1\n1 0 b 1 0\n", ":2: expected 4 columns like line 1, found 5"),
        (read_qrels, "1 0 a 1 1 x\n", ":1: expected 5 columns (topic iter shot stratum judgment) or 4"),
        (read_qrels, "1 0 a 1 yes\n", ":1: judgment 'yes' is not an integer"),
        (read_qrels, "1 0 a 1 -2\n", ":1: unknown judgment -2"),
        (read_qrels, "1 0 a 1 0.5\n", ":1: judgment '0.5' is not an integer"),
        (read_qrels, "", "no qrels (empty file)"),
        (read_qrels, "\n\n", "no qrels (empty file)"),
        (read_run_lines, "1 Q0 a 1 2\n", ":1: expected 6 columns (topic Q0 shot rank score tag), found 5"),
        (read_run_lines, "1 Q0 a 1 2 t\n1 Q0 b 2 high t\n", ":2: score 'high' is not a number"),
        (read_run_lines, "1 Q0 a 1 1_000 t\n", ":1: score '1_000' is not a number"),
        (read_run_lines, "1 Q0 a 1 nan t\n", ":1: score is NaN"),
        (read_run_lines, "", "no run lines (empty file)"),
    ],
)
def test_malformed_files(tmp_path, reader, text, message):
    p = tmp_path / "f"
    p.write_text(text)
    with pytest.raises(InputError) as e:
        reader(p)
    assert str(e.value).startswith(str(p)) and message in str(e.value)


def test_binary_and_truncated_gzip(tmp_path):
    b = tmp_path / "b"
    b.write_bytes(b"\x00\x01\x02abc\xff\xfe")
    with pytest.raises(InputError, match="not UTF-8 text|binary data"):
        read_run_lines(b)
    z = tmp_path / "r.gz"
    lines = "".join(f"1 Q0 shot{i:05d}_{i} {i} {1 / (i + 1)} t\n" for i in range(5000)).encode()
    z.write_bytes(gzip.compress(lines)[:2000])
    with pytest.raises(InputError, match="cannot read"):
        read_run_lines(z)


def test_no_evaluable_topic(tmp_path):
    (tmp_path / "q").write_text("1 0 a 1 1\n")
    (tmp_path / "r").write_text("5 Q0 a 1 2 t\n")
    with pytest.raises(InputError, match="no run topic is in the qrels"):
        evaluate(tmp_path / "q", tmp_path / "r")


def _main(*args):
    return subprocess.run([sys.executable, "-m", "trec_eval_compat", *map(str, args)], capture_output=True, text=True)


def test_module_cli_drop_in():
    p = _main("-q", SAMPLE_EVAL / "tiny2.qrels", SAMPLE_EVAL / "tiny2.run")
    assert p.returncode == 0 and p.stdout == (SAMPLE_EVAL / "tiny2.avs.q.txt").read_text()
    p = _main("-q", "--cutoffs", "2012", SAMPLE_EVAL / "tiny2.qrels", SAMPLE_EVAL / "tiny2.run")
    assert p.returncode == 0 and p.stdout == (SAMPLE_EVAL / "tiny2.eval.q.txt").read_text()
    p = _main("--cutoffs", "5,x", SAMPLE_EVAL / "tiny2.qrels", SAMPLE_EVAL / "tiny2.run")
    assert p.returncode == 2 and p.stderr.startswith("trec_eval_compat: error: cutoffs '5,x'")


def test_module_cli_clear_error_instead_of_division_by_zero(tmp_path):
    (tmp_path / "r").write_text("\n5 Q0 a 1 2 t\n")
    p = _main(SAMPLE_EVAL / "tiny.qrels", tmp_path / "r")
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.startswith("trec_eval_compat: error:") and "no run topic is in the qrels" in p.stderr
