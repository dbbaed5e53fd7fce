"""Runs: NIST XML and TREC reading/writing, validation against the shipped DTDs and NIST's rules, fusion."""

from __future__ import annotations

import gzip
import os
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from avs.cli import cli
from avs.errors import InputError
from avs.formats import runs as R
from trec_eval_compat import runxml

DATA = Path(__file__).parent / "data" / "runs"
GOOD = DATA / "good_2021.xml"
ATTRS = dict(tr_type="D", run_class="F", task="M", novelty="C", pid="teamA", priority="1", desc="d")


def ranking(run: R.Run) -> dict[int, list[str]]:
    return {n: [it.shot for it in t.items] for n, t in run.topics.items()}


def make_run(topics: dict[int, list[tuple[str, float | None]]], elapsed: str | None = "1", **attrs) -> R.Run:
    return R.Run(
        R.RunInfo(**{**ATTRS, **attrs}),
        {n: R.TopicResult([R.Item(s, sc) for s, sc in items], elapsed) for n, items in topics.items()},
    )


# ----------------------------------------------------------------------------------------------- low-level XML


def test_read_xml_keeps_everything_the_file_says():
    x = runxml.read_xml(GOOD)
    assert x.attrs == {
        "trType": "D",
        "class": "F",
        "task": "M",
        "novelty": "C",
        "pid": "teamA",
        "priority": "1",
        "desc": "two topics",
    }
    assert x.year == 2021 and x.doctype.startswith("<!DOCTYPE videoAdhocSearchResults SYSTEM")
    assert [(t.tnum, t.elapsed, t.line) for t in x.topics] == [("661", "12", 5), ("662", "3", 10)]
    first = x.topics[0].items[0]
    assert (first.seq, first.shot, first.line) == ("1", "shot00001_1", 6)
    assert first.extra == {"timestamp": "3.4", "bbox": "10,20,100,80"}
    assert x.topics[0].items[2].extra == {"frame": "17"}
    assert x.faults == []


def test_xml_run_lines_follow_the_public_converters():
    lines = runxml.xml_run_lines(GOOD)
    assert [(ln.topic, ln.shot, ln.rank, ln.score, ln.tag, ln.line) for ln in lines[:3]] == [
        ("1661", "shot00001_1", "1", 9999.0, "teamA", 6),
        ("1661", "shot00002_7", "2", 9998.0, "teamA", 7),
        ("1661", "shot00001_2", "3", 9997.0, "teamA", 8),
    ]
    assert lines[3].topic == "1662" and len(lines) == 5
    assert runxml.xml_run_lines(GOOD, prefix="2")[0].topic == "2661"


def test_xml_run_lines_refuses_structural_faults():
    with pytest.raises(InputError) as e:
        runxml.xml_run_lines(DATA / "bad_missing_attrs.xml")
    assert (
        str(e.value)
        == f"{DATA / 'bad_missing_attrs.xml'}:5: <videoAdhocSearchTopicResult> has no elapsedTime attribute"
    )
    with pytest.raises(InputError, match=r":6: unexpected <note> inside <videoAdhocSearchTopicResult>"):
        runxml.xml_run_lines(DATA / "bad_nodoctype.xml")


@pytest.mark.parametrize(
    "name, message",
    [
        ("bad_xxe.xml", "entity declarations are not allowed (found secret)"),
        ("bad_laughs.xml", "entity declarations are not allowed (found lol, lol1, lol2)"),
    ],
)
def test_entity_payloads_are_never_loaded(name, message):
    for read in (runxml.read_xml, R.read_run):
        with pytest.raises(InputError) as e:
            read(DATA / name)
        assert e.value.problem == message


# ----------------------------------------------------------------------------------------------- model, round trips


def test_read_run_xml():
    run = R.read_run(GOOD)
    assert run.info == R.RunInfo("D", "F", "M", "C", "teamA", "1", "two topics", None)
    assert run.year == 2021
    assert ranking(run) == {661: ["shot00001_1", "shot00002_7", "shot00001_2"], 662: ["shot00003_1", "shot00003_2"]}
    assert run.topics[661].elapsed == "12" and run.topics[661].items[0].score is None


def test_read_run_trec_orders_like_the_evaluator():
    run = R.read_run(DATA / "good.trec")
    # 0.5 tie: shot ids descending (trecvid-formats §1.4)
    assert ranking(run) == {661: ["shot00001_1", "shot00002_7", "shot00001_2"], 662: ["shot00003_1"]}
    assert run.info.pid == "teamA" and run.topics[661].items[0].score == 0.9


def test_trec_topic_prefix(tmp_path):
    p = tmp_path / "r.trec"
    p.write_text("2661 Q0 shot1_1 1 1 t\n")
    with pytest.raises(InputError) as e:
        R.read_run(p)
    assert e.value.line == 1 and "'2661' is not '1' followed by a topic number" in e.value.problem
    assert list(R.read_run(p, prefix="2").topics) == [661]
    R.write_trec(R.read_run(p, prefix="2"), tmp_path / "o.trec", prefix="2")
    assert (tmp_path / "o.trec").read_text() == "2661 Q0 shot1_1 1 1.0 t\n"


def test_trec_duplicate_shot_is_refused(tmp_path):
    p = tmp_path / "dup.trec"
    p.write_text("1661 Q0 shot00001_1 1 0.9 t\n1661 Q0 shot00001_1 2 0.5 t\n")
    with pytest.raises(InputError) as e:
        R.read_run(p)
    assert (e.value.line, e.value.problem) == (2, "topic 661: shot shot00001_1 appears twice (first at line 1)")


def test_round_trip_xml_trec_xml(tmp_path):
    src = R.read_run(GOOD)
    R.write_trec(src, tmp_path / "r.trec")
    assert (tmp_path / "r.trec").read_text().splitlines()[:2] == [
        "1661 Q0 shot00001_1 1 9999.0 teamA",
        "1661 Q0 shot00002_7 2 9998.0 teamA",
    ]
    back = R.with_attributes(R.read_run(tmp_path / "r.trec"), elapsed="1", **{**ATTRS, "pid": None})
    R.write_xml(back, tmp_path / "r.xml", 2021)
    assert R.validate(tmp_path / "r.xml") == []
    assert ranking(R.read_run(tmp_path / "r.xml")) == ranking(src)
    # The evaluator sees the same lines either way.
    key = [(ln.topic, ln.shot, ln.rank, ln.score) for ln in runxml.xml_run_lines(GOOD)]
    assert [(ln.topic, ln.shot, ln.rank, ln.score) for ln in runxml.xml_run_lines(tmp_path / "r.xml")] == key


def test_xml_round_trip_keeps_item_attributes(tmp_path):
    R.write_xml(R.read_run(GOOD), tmp_path / "r.xml", 2021)
    out = (tmp_path / "r.xml").read_text()
    assert out.splitlines()[:2] == [
        '<?xml version="1.0" encoding="UTF-8"?>',
        "<!DOCTYPE videoAdhocSearchResults SYSTEM "
        '"https://www-nlpir.nist.gov/projects/tv2021/dtds/videoAdhocSearchResults.dtd">',
    ]
    assert '<item seqNum="1" shotId="shot00001_1" timestamp="3.4" bbox="10,20,100,80"/>' in out
    assert runxml.read_xml(tmp_path / "r.xml").topics[0].items[2].extra == {"frame": "17"}
    assert R.validate(tmp_path / "r.xml") == []


def test_gz_round_trip(tmp_path):
    R.write_xml(R.read_run(GOOD), tmp_path / "r.xml.gz", 2021)
    assert gzip.open(tmp_path / "r.xml.gz").read().startswith(b"<?xml")
    R.write_trec(R.read_run(tmp_path / "r.xml.gz"), tmp_path / "r.trec.gz")
    assert gzip.open(tmp_path / "r.trec.gz").read().startswith(b"1661 Q0 shot00001_1 1 9999.0 teamA")
    assert ranking(R.read_run(tmp_path / "r.trec.gz")) == ranking(R.read_run(GOOD))
    assert R.validate(tmp_path / "r.xml.gz") == []


def test_2018_run_round_trip(tmp_path):
    run = R.read_run(DATA / "good_2018.xml")
    assert run.year == 2018 and run.info.task is None
    R.write_run(run, tmp_path / "r.xml")
    assert "tv2018" in (tmp_path / "r.xml").read_text() and R.validate(tmp_path / "r.xml") == []


# ----------------------------------------------------------------------------------------------- writing


def test_write_refuses_overwrite_and_leaves_nothing_on_failure(tmp_path):
    out = tmp_path / "r.xml"
    out.write_text("keep")
    with pytest.raises(InputError, match="already exists"):
        R.write_xml(R.read_run(GOOD), out, 2021)
    assert out.read_text() == "keep"
    R.write_xml(R.read_run(GOOD), out, 2021, force=True)
    assert R.validate(out) == []
    bad = make_run({661: [("shot1_1", None), ("shot1_1", None)]})
    with pytest.raises(InputError, match="not a valid 2021 run: topic 661: shot1_1 appears twice"):
        R.write_xml(bad, tmp_path / "bad.xml", 2021)
    assert sorted(os.listdir(tmp_path)) == ["r.xml"]  # no output, no temporary file


@pytest.mark.parametrize(
    "run, year, message",
    [
        (
            make_run({661: [("shot1_1", None)]}, task=None, desc=None),
            2021,
            "a 2021 run needs task, desc (set with --task, --desc)",
        ),
        (
            make_run({661: [("shot1_1", None)]}, elapsed=None),
            2021,
            "topic 661 has no elapsed time (TREC runs carry none; set it with --elapsed SECONDS)",
        ),
        (
            make_run({661: [(f"shot1_{i}", None) for i in range(1, 1002)]}),
            2021,
            "not a valid 2021 run: topic 661 has 1001 items; at most 1000 are allowed",
        ),
        (
            make_run({661: [("shot1_1.mp4", None)]}),
            2021,
            "not a valid 2021 run: topic 661: shot id 'shot1_1.mp4' is not shot<digits>_<digits>",
        ),
        (
            make_run({661: [("shot1_1", None)]}, run_class="R", task=None, novelty=None),
            2017,
            "not a valid 2017 run: class R (relevance feedback) exists only from 2018 on",
        ),
        (
            make_run({661: [("shot1_1", None)]}, priority="11"),
            2021,
            'not a valid 2021 run: not valid against videoAdhocSearchResults-2019.dtd: Value "11" for attribute '
            "priority of videoAdhocSearchRunResult is not among the enumerated set",
        ),
        (make_run({661: [("shot1_1", None)]}), 2015, "year 2015: AVS runs exist from 2016 on"),
    ],
)
def test_to_xml_refuses_invalid_runs(run, year, message):
    with pytest.raises(InputError) as e:
        R.to_xml(run, year)
    assert e.value.problem == message


def test_item_attributes_need_a_year_that_has_them():
    with pytest.raises(InputError, match="No declaration for attribute timestamp of element item"):
        run = R.read_run(GOOD)
        R.to_xml(replace(run, info=replace(run.info, task=None, novelty=None)), 2018)


def test_to_trec_refuses_scores_against_the_order():
    with pytest.raises(InputError, match="topic 661: the score of rank 2 .shot1_2. does not follow the ranking"):
        R.to_trec(make_run({661: [("shot1_1", 1.0), ("shot1_2", 2.0)]}))
    with pytest.raises(InputError, match="does not follow"):  # a tie the evaluator would break the other way
        R.to_trec(make_run({661: [("shot1_1", 1.0), ("shot1_2", 1.0)]}))
    assert R.to_trec(make_run({661: [("shot1_2", 1.0), ("shot1_1", 1.0)]})).count("\n") == 2


# ----------------------------------------------------------------------------------------------- validation corpus


def _x(name):
    return str(DATA / name)


@pytest.mark.parametrize(
    "name, options, expected",
    [
        (
            "bad_root.xml",
            {},
            [(2, "root element is <videoAdhocSearchRunResult>, not <videoAdhocSearchResults>: not an AVS run file")],
        ),
        (
            "bad_missing_attrs.xml",
            {},
            [
                (
                    4,
                    "not valid against videoAdhocSearchResults-2019.dtd: Element videoAdhocSearchRunResult does not carry "
                    "attribute priority",
                ),
                (
                    4,
                    "not valid against videoAdhocSearchResults-2019.dtd: Element videoAdhocSearchRunResult does not carry "
                    "attribute pid",
                ),
                (
                    5,
                    "not valid against videoAdhocSearchResults-2019.dtd: Element videoAdhocSearchTopicResult does not carry "
                    "attribute elapsedTime",
                ),
                (7, "not valid against videoAdhocSearchResults-2019.dtd: Element item does not carry attribute shotId"),
            ],
        ),
        ("bad_duplicate.xml", {}, [(8, "topic 661: shot00001_1 appears twice (first at line 6)")]),
        (
            "bad_seqnum.xml",
            {},
            [
                (8, "topic 661: seqNum 2 appears again (first at line 7)"),
                (9, "topic 661: seqNum '0' is not a whole number from 1 to 1000"),
            ],
        ),
        (
            "bad_shotid.xml",
            {"shots": _x("shots.txt")},
            [
                (7, "topic 661: shot id '00001_2' is not shot<digits>_<digits>"),
                (8, "topic 661: shot id 'shot00002_7.mp4' is not shot<digits>_<digits>"),
                (9, "topic 661: shot09999_1 is not in the shot list"),
            ],
        ),
        (
            "bad_topics.xml",
            {"topics": _x("topics.txt")},
            [
                (None, "no result for topic 662 of the topics file"),
                (
                    8,
                    "topic 1663 is outside 1..770, the topic numbers NIST's checker knows (an evaluation id? tNum is "
                    "NIST's number, 663)",
                ),
                (11, "topic 661 appears again (first at line 5)"),
            ],
        ),
        (
            "bad_values.xml",
            {},
            [
                (
                    4,
                    'not valid against videoAdhocSearchResults-2016.dtd: Value "B" for attribute trType of '
                    "videoAdhocSearchRunResult is not among the enumerated set",
                ),
                (
                    4,
                    "not valid against videoAdhocSearchResults-2016.dtd: No declaration for attribute task of element "
                    "videoAdhocSearchRunResult",
                ),
                (
                    4,
                    'not valid against videoAdhocSearchResults-2016.dtd: Value "11" for attribute priority of '
                    "videoAdhocSearchRunResult is not among the enumerated set",
                ),
                (4, "class R (relevance feedback) exists only from 2018 on"),
                (5, "topic 531: elapsedTime 'soon' is not a whole number of seconds (NIST's checker stops on it)"),
            ],
        ),
        (
            "bad_nodoctype.xml",
            {},
            [
                (None, "no DOCTYPE line (NIST validates against the DTD it names)"),
                (
                    4,
                    "not valid against videoAdhocSearchResults-2019.dtd: Element videoAdhocSearchTopicResult content does "
                    "not follow the DTD, expecting (item)*, got (item note )",
                ),
                (6, "not valid against videoAdhocSearchResults-2019.dtd: No declaration for element note"),
            ],
        ),
        (
            "bad_truncated.xml",
            {},
            [
                (
                    9,
                    "not well-formed XML: Premature end of data in tag videoAdhocSearchTopicResult line 5, line 9, "
                    "column 1",
                )
            ],
        ),
        ("bad_xxe.xml", {}, [(None, "entity declarations are not allowed (found secret)")]),
        ("bad_laughs.xml", {}, [(None, "entity declarations are not allowed (found lol, lol1, lol2)")]),
        (
            "good_2018.xml",
            {"year": 2021},
            [
                (None, "DOCTYPE names the tv2018 DTD, not tv2021"),
                (
                    4,
                    "not valid against videoAdhocSearchResults-2019.dtd: Element videoAdhocSearchRunResult does not carry "
                    "attribute novelty",
                ),
                (
                    4,
                    "not valid against videoAdhocSearchResults-2019.dtd: Element videoAdhocSearchRunResult does not carry "
                    "attribute task",
                ),
            ],
        ),
        (
            "bad.trec",
            {"topics": _x("topics.txt")},
            [
                (None, "no result for topic 662 of the topics file"),
                (2, "topic 661: shot00001_1 appears twice (first at line 1)"),
                (3, "topic id '661' is not '1' followed by a topic number"),
                (4, "topic 663 is not in the topics file"),
                (4, "topic 663: shot id 'shot_x' is not shot<digits>_<digits>"),
            ],
        ),
    ],
)
def test_bad_runs(name, options, expected):
    problems = R.validate(DATA / name, **options)
    assert [(p.line, p.message) for p in problems] == expected
    assert all(p.path == str(DATA / name) for p in problems)


def test_more_than_1000_items(tmp_path):
    items = "".join(f'<item seqNum="{i}" shotId="shot00001_{i}"/>\n' for i in range(1, 1003))
    text = GOOD.read_text().split("<videoAdhocSearchTopicResult")[0] + (
        f'<videoAdhocSearchTopicResult tNum="661" elapsedTime="1">\n{items}</videoAdhocSearchTopicResult>\n'
        "</videoAdhocSearchRunResult>\n</videoAdhocSearchResults>\n"
    )
    p = tmp_path / "big.xml"
    p.write_text(text)
    assert [(pr.line, pr.message) for pr in R.validate(p)] == [
        (1006, "topic 661 has 1002 items; at most 1000 are allowed")
    ]


@pytest.mark.parametrize("name", ["good_2021.xml", "good_2018.xml", "good.trec"])
def test_good_runs_are_valid(name):
    assert R.validate(DATA / name) == []


def test_good_run_against_topics_and_shots():
    assert R.validate(GOOD, topics=DATA / "topics.txt", shots=DATA / "shots.txt", year=2021) == []


def test_missing_file_is_an_error_not_a_problem(tmp_path):
    with pytest.raises(InputError):
        R.validate(tmp_path / "nope.xml")


# ----------------------------------------------------------------------------------------------- fusion

A = make_run({661: [("shot00001_1", 4.0), ("shot00001_2", 2.0), ("shot00001_3", 0.0)]}, elapsed="1.5")
B = make_run({661: [("shot00001_2", 10.0), ("shot00001_4", 5.0)], 662: [("shot00009_9", 1.0)]}, elapsed="2")


def fused(method, **kw):
    """Topic 661 of A fused with B: the last digit of each shot id, best first, and the fused scores."""
    items = R.fuse([A, B], method=method, **kw).topics[661].items
    return "".join(it.shot[-1] for it in items), pytest.approx([it.score for it in items])


def test_rrf():
    assert fused("rrf") == ("2143", [1 / 62 + 1 / 61, 1 / 61, 1 / 62, 1 / 63])
    # 0.048651, 0.032787, 0.031746, 0.016129
    assert fused("rrf", weights=[2, 1]) == ("2134", [2 / 62 + 1 / 61, 2 / 61, 2 / 63, 1 / 62])
    assert fused("rrf", k=0) == ("2143", [1.5, 1.0, 0.5, 1 / 3])


def test_combsum_and_combmnz_minmax():
    # A -> 1, 0.5, 0; B -> 1, 0. The 0 tie goes to the larger shot id (shot00001_4).
    assert fused("combsum") == ("2143", [1.5, 1.0, 0.0, 0.0])
    assert fused("combmnz") == ("2143", [3.0, 1.0, 0.0, 0.0])


def test_combsum_zscore_and_none_with_weights():
    # A: mean 2, sd sqrt(8/3) -> 1.224745, 0, -1.224745; B: mean 7.5, sd 2.5 -> 1, -1
    z = 2 / (8 / 3) ** 0.5
    assert fused("combsum", norm="zscore") == ("1243", [z, 1.0, -1.0, -z])
    assert fused("combsum", norm="none", weights=[0.5, 2]) == ("2413", [21.0, 10.0, 2.0, 0.0])


def test_fuse_depth_topics_and_elapsed():
    run = R.fuse([A, B], "combmnz", depth=2)
    assert ranking(run) == {661: ["shot00001_2", "shot00001_1"], 662: ["shot00009_9"]}
    assert run.topics[661].elapsed == "4" and run.topics[662].elapsed == "2"  # 3.5 s: whole seconds, rounded up
    assert run.info.desc == "combmnz fusion of teamA, teamA"


def test_fuse_xml_runs_use_rank_scores():
    # XML runs have no scores: 9999, 9998, ... so minmax gives 1, 0.5, 0 for three items.
    run = R.fuse([R.read_run(GOOD)], "combsum")
    assert [it.score for it in run.topics[661].items] == pytest.approx([1.0, 0.5, 0.0])


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(method="borda"), "unknown fusion method 'borda' (use rrf, combsum, combmnz)"),
        (dict(method="rrf", norm="minmax"), "rrf fuses ranks; --norm applies to combsum and combmnz only"),
        (dict(method="combsum", weights=[1.0]), "1 weights for 2 runs"),
    ],
)
def test_fuse_refuses(kw, message):
    with pytest.raises(InputError) as e:
        R.fuse([A, B], **kw)
    assert e.value.problem == message


# ----------------------------------------------------------------------------------------------- CLI


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_cli_validate():
    ok = invoke("run", "validate", GOOD, "--topics", DATA / "topics.txt", "--shots", DATA / "shots.txt")
    assert ok.exit_code == 0 and ok.output == f"{GOOD}: valid\n"
    bad = invoke("run", "validate", DATA / "bad_shotid.xml", "--shots", DATA / "shots.txt")
    assert bad.exit_code == 1
    assert bad.output.splitlines() == [
        f"{DATA / 'bad_shotid.xml'}:7: topic 661: shot id '00001_2' is not shot<digits>_<digits>",
        f"{DATA / 'bad_shotid.xml'}:8: topic 661: shot id 'shot00002_7.mp4' is not shot<digits>_<digits>",
        f"{DATA / 'bad_shotid.xml'}:9: topic 661: shot09999_1 is not in the shot list",
    ]
    missing = invoke("run", "validate", DATA / "nope.xml")
    assert missing.exit_code == 2 and "avs: error:" in missing.output


def test_cli_convert_round_trip(tmp_path):
    trec, xml = tmp_path / "r.trec.gz", tmp_path / "r.xml"
    assert invoke("run", "convert", GOOD, trec).exit_code == 0
    res = invoke(
        "run",
        "convert",
        trec,
        xml,
        "--year",
        2021,
        "--tr-type",
        "D",
        "--class",
        "F",
        "--task",
        "M",
        "--novelty",
        "C",
        "--priority",
        3,
        "--desc",
        "converted",
        "--elapsed",
        7,
    )
    assert res.exit_code == 0, res.output
    run = R.read_run(xml)
    assert ranking(run) == ranking(R.read_run(GOOD))
    assert run.info.priority == "3" and run.topics[661].elapsed == "7"
    again = invoke("run", "convert", GOOD, xml)
    assert again.exit_code == 2 and "already exists (use --force to overwrite)" in again.output
    assert invoke("run", "convert", GOOD, xml, "--force").exit_code == 0
    no_year = invoke("run", "convert", trec, tmp_path / "n.xml")
    assert no_year.exit_code == 2 and "XML output needs the TRECVID year (give --year)" in no_year.output
    top1 = tmp_path / "top1.trec"
    assert invoke("run", "convert", GOOD, top1, "--top", 1).exit_code == 0
    assert len(top1.read_text().splitlines()) == 2


def test_cli_fuse(tmp_path):
    a, b = tmp_path / "a.trec", tmp_path / "b.trec"
    R.write_trec(A, a)
    R.write_trec(B, b)
    out = tmp_path / "f.trec"
    res = invoke("run", "fuse", a, b, "--out", out, "--method", "combsum", "--weights", "0.5,2", "--norm", "none")
    assert res.exit_code == 0, res.output
    assert out.read_text().splitlines()[:2] == ["1661 Q0 shot00001_2 1 21.0 teamA", "1661 Q0 shot00001_4 2 10.0 teamA"]
    bad = invoke("run", "fuse", a, b, "--out", tmp_path / "g.trec", "--weights", "1,x")
    assert (
        bad.exit_code == 2
        and "Invalid value for '--weights': '1,x': expected numbers separated by commas" in bad.output
    )
    xml = tmp_path / "f.xml"
    res = invoke("run", "fuse", GOOD, GOOD, "--out", xml, "--year", 2021, "--desc", "self fusion")
    assert res.exit_code == 0, res.output
    assert R.validate(xml) == [] and R.read_run(xml).topics[661].elapsed == "24"


def test_shipped_dtds_exist():
    for year in (2016, 2018, 2019, 2024):
        assert R.dtd_path(year).is_file()
