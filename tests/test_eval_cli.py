import json

import pytest

from conftest import SAMPLE_EVAL, TV21_QRELS


@pytest.mark.parametrize("cutoffs,script", [((), "avs"), (("--cutoffs", "2012"), "eval")])
@pytest.mark.parametrize("run", ["run1_mixed", "run3_ties", "run5_edgecases"])
def test_sample_eval_format_byte_identical(run_cli, run, cutoffs, script):
    """The default is NIST's AVS script (TV16 on); --cutoffs 2012 the generic one."""
    run_path = SAMPLE_EVAL / f"{run}.txt.gz"
    r = run_cli("eval", "infap", run_path, "--qrels", TV21_QRELS, "--format", "sample_eval", "--per-query", *cutoffs)
    assert r.exit_code == 0 and r.stdout == (SAMPLE_EVAL / f"{run}.{script}.q.txt").read_text()
    r = run_cli("eval", "infap", run_path, "--qrels", TV21_QRELS, "--format", "sample_eval", *cutoffs)
    assert r.stdout == (SAMPLE_EVAL / f"{run}.{script}.all.txt").read_text()


def test_bad_cutoffs_one_line(run_cli):
    r = run_cli("eval", "infap", SAMPLE_EVAL / "tiny.run", "--qrels", SAMPLE_EVAL / "tiny.qrels", "--cutoffs", "0,x")
    assert r.exit_code == 2 and "Invalid value for '--cutoffs'" in r.output


def test_table_with_labels_and_marks(run_cli):
    r = run_cli(
        "eval",
        "infap",
        SAMPLE_EVAL / "run1_mixed.txt.gz",
        SAMPLE_EVAL / "run2_relfirst.txt.gz",
        "--qrels",
        TV21_QRELS,
        "--per-query",
    )
    assert r.exit_code == 0
    lines = r.stdout.splitlines()
    row = next(ln for ln in lines if ln.lstrip().startswith("1663"))
    assert "a person with a tattoo on their arm" in row and "0.0165" in row and "1.3893" in row
    assert row.rstrip().endswith("+")  # run2 is more than 0.1 above run1
    assert any(ln.split()[:3] == ["all", "0.0219", "1.1086"] for ln in lines)
    obj = next(ln.split() for ln in lines if ln.lstrip().startswith("object"))
    assert obj[1] == "0.0227" and obj[2] == "19"


def test_label_means_hand_checked(run_cli, tmp_path):
    labels = tmp_path / "labels.tsv"
    labels.write_text("num\tobject\tperson\taction\tlocation\n661\t1\t0\t0\t0\n662\t1\t1\t0\t0\n")
    r = run_cli(
        "eval",
        "infap",
        SAMPLE_EVAL / "run1_mixed.txt.gz",
        "--qrels",
        TV21_QRELS,
        "--labels",
        labels,
        "--format",
        "json",
    )
    data = json.loads(r.stdout)
    value = {d["topic"]: d["value"] for d in data if d["measure"] == "infAP"}
    per = json.loads(
        run_cli(
            "eval", "infap", SAMPLE_EVAL / "run1_mixed.txt.gz", "--qrels", TV21_QRELS, "--format", "json", "--per-query"
        ).stdout
    )
    t = {d["topic"]: d["value"] for d in per if d["measure"] == "infAP"}
    assert value["label:object"] == pytest.approx((t["1661"] + t["1662"]) / 2)
    assert value["label:person"] == pytest.approx(t["1662"])


def test_csv_format(run_cli):
    r = run_cli("eval", "infap", SAMPLE_EVAL / "run1_mixed.txt.gz", "--qrels", TV21_QRELS, "--format", "csv")
    assert r.stdout.splitlines()[0] == "run,topic,measure,value"
    assert "run1_mixed,all,infAP,0.0218503" in r.stdout


@pytest.mark.parametrize(
    "qrels_text,run_text,message",
    [
        ("1 0 a 1 1\n", "1 Q0 a 1\n", "r:1: expected 6 columns"),
        ("1 0 a 1\n1 0 b 1 1\n", "1 Q0 a 1 2 t\n", "q:2: expected 4 columns like line 1"),
        ("1 0 a 1 7x\n", "1 Q0 a 1 2 t\n", "q:1: judgment '7x' is not an integer"),
        ("", "1 Q0 a 1 2 t\n", "q: no qrels (empty file)"),
        ("1 0 a 1 1\n", "", "r: no run lines (empty file)"),
        ("1 0 a 1 1\n", "2 Q0 a 1 2 t\n", "r: no run topic is in the qrels"),
    ],
)
def test_bad_input_one_line_exit_2(run_cli, tmp_path, qrels_text, run_text, message):
    (tmp_path / "q").write_text(qrels_text)
    (tmp_path / "r").write_text(run_text)
    r = run_cli("eval", "infap", tmp_path / "r", "--qrels", tmp_path / "q")
    assert r.exit_code == 2 and r.stdout == ""
    assert r.stderr.startswith("avs: error: ") and message in r.stderr and r.stderr.count("\n") == 1


def test_binary_run_file(run_cli, tmp_path):
    (tmp_path / "r").write_bytes(bytes(range(256)) * 4)
    r = run_cli("eval", "infap", tmp_path / "r", "--qrels", SAMPLE_EVAL / "tiny.qrels")
    assert r.exit_code == 2 and "binary" in r.stderr


def test_sample_eval_format_needs_one_run(run_cli):
    r = run_cli(
        "eval",
        "infap",
        SAMPLE_EVAL / "tiny.run",
        SAMPLE_EVAL / "tiny.run",
        "--qrels",
        SAMPLE_EVAL / "tiny.qrels",
        "--format",
        "sample_eval",
    )
    assert r.exit_code == 2 and "exactly one run" in r.stderr
