"""What NIST's submission pipeline demands of a run: its DTD per year, the rules of its submission checker
(CheckAdhocSubmissions, 2025 edition), 2023+ ``algo`` runs, V3C2 shot ids, and the topic lists teams use."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import replace

import numpy as np
import pytest

from avs.errors import InputError
from avs.formats import runs as R
from avs.formats import shots as S
from avs.formats import topics as T

ATTRS = dict(tr_type="D", run_class="F", task="M", novelty="C", pid="TEAMA", priority="1", desc="d")
V3C2_TABLE = "07476 40\n07477 12\n17235 8\n"
M = (None, "no result for topic 762 of the topics file")  # what replacing topic 762 also reports


def xml_run(year: int, run_attrs: str, topics: str) -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n{R.doctype(year)}\n<videoAdhocSearchResults>\n'
        f"<videoAdhocSearchRunResult {run_attrs}>\n{topics}</videoAdhocSearchRunResult>\n"
        "</videoAdhocSearchResults>\n"
    )


def topic(tnum: str, items: list[tuple[str, str]], elapsed: str = "12") -> str:
    body = "".join(f'<item seqNum="{seq}" shotId="{shot}"/>\n' for seq, shot in items)
    return (
        f'<videoAdhocSearchTopicResult tNum="{tnum}" elapsedTime="{elapsed}">\n{body}</videoAdhocSearchTopicResult>\n'
    )


RUN_2025 = 'trType="D" class="F" task="M" novelty="C" algo="V" pid="TEAMA" priority="1" desc="x"'
OK_TOPICS = topic("761", [("1", "shot07476_1"), ("2", "shot07477_12")]) + topic("762", [("1", "shot17235_8")])


def problems(tmp_path, text: str, **kw) -> list[tuple[int | None, str]]:
    p = tmp_path / "run.xml"
    p.write_text(text)
    return [(pr.line, pr.message) for pr in R.validate(p, **kw)]


@pytest.fixture
def aux(tmp_path):
    """NIST's auxiliary files, in their formats: participant list, valid-shot table, the task's topics."""
    (tmp_path / "tv25.pids").write_text("TEAMA\nTEAMB\n")
    (tmp_path / "V3C2.validShotTable").write_text(V3C2_TABLE)
    (tmp_path / "topics.txt").write_text("761 a dog\n762 a cat\n")
    return dict(pids=tmp_path / "tv25.pids", shots=tmp_path / "V3C2.validShotTable", topics=tmp_path / "topics.txt")


def test_a_valid_2025_run(tmp_path, aux):
    assert problems(tmp_path, xml_run(2025, RUN_2025, OK_TOPICS), **aux) == []


CHECKER_RULES = [
    # elapsedTime: NIST's checker reads it with Integer.parseInt and stops with an exception otherwise
    (
        ('elapsedTime="12"', 'elapsedTime="0.004"'),
        (5, "topic 761: elapsedTime '0.004' is not a whole number of seconds (NIST's checker stops on it)"),
    ),
    (('pid="TEAMA"', 'pid=""'), (4, "pid is empty (NIST's checker refuses the run)")),
    (('pid="TEAMA"', 'pid="NOBODY"'), (4, "pid 'NOBODY' is not in the participant list")),
    (('tNum="762"', 'tNum="771"'), [M, (9, "topic 771 is outside 1..770, the topic numbers NIST's checker knows")]),
    (('tNum="762"', 'tNum="763"'), [M, (9, "topic 763 is not in the topics file")]),
    (('tNum="762"', 'tNum="761"'), [M, (9, "topic 761 appears again (first at line 5)")]),
    (('tNum="762"', 'tNum="x"'), [M, (9, "tNum 'x' is not a topic number (a whole number)")]),
    (('seqNum="2"', 'seqNum="0"'), (7, "topic 761: seqNum '0' is not a whole number from 1 to 1000")),
    (('seqNum="2"', 'seqNum="1001"'), (7, "topic 761: seqNum '1001' is not a whole number from 1 to 1000")),
    (('seqNum="2"', 'seqNum="1"'), (7, "topic 761: seqNum 1 appears again (first at line 6)")),
    (('shotId="shot07477_12"', 'shotId="shot07477_13"'), (7, "topic 761: shot07477_13 is not in the valid-shot table")),
    (('shotId="shot07477_12"', 'shotId="shot99999_1"'), (7, "topic 761: shot99999_1 is not in the valid-shot table")),
    (
        ('shotId="shot07477_12"', 'shotId="shot7477_12"'),  # the table writes the video as 07477
        (
            7,
            "topic 761: shot7477_12 is written shot07477_12 in the valid-shot table and in NIST's judgments "
            "(NIST's checker passes it, but it would never match a judged shot)",
        ),
    ),
    (
        ('shotId="shot07477_12"', 'shotId="V3C2_shot07477_12"'),
        (
            7,
            "topic 761: shot id 'V3C2_shot07477_12' has a collection prefix NIST's ids do not have "
            "(shot07477_12; avs run convert removes it)",
        ),
    ),
    (
        ('<item seqNum="1" shotId="shot17235_8"/>', '<item seqNum="1"/>'),
        (10, "not valid against videoAdhocSearchResults-2023.dtd: Element item does not carry attribute shotId"),
    ),
]
# Where avs is stricter than NIST's checker, on purpose (docs/runs.md): a shot id spelled unlike the judgments
PASSED_BY_NIST = {'shotId="shot7477_12"'}


@pytest.mark.parametrize("change, expected", CHECKER_RULES)
def test_checker_rules(tmp_path, aux, change, expected):
    text = xml_run(2025, RUN_2025, OK_TOPICS).replace(*change, 1)
    assert text != xml_run(2025, RUN_2025, OK_TOPICS)
    assert problems(tmp_path, text, **aux) == (expected if isinstance(expected, list) else [expected])


@pytest.mark.skipif(
    not os.environ.get("AVS_NIST_CHECKER") or not shutil.which("java"),
    reason="set AVS_NIST_CHECKER to a folder with NIST's compiled CheckAdhocSubmissions (not shipped)",
)
@pytest.mark.parametrize("change, expected", [((None, None), None), *CHECKER_RULES])
def test_agrees_with_nists_checker(tmp_path, aux, change, expected):
    """avs refuses exactly what NIST's own checker refuses, except where docs/runs.md says avs is stricter."""
    text = xml_run(2025, RUN_2025, OK_TOPICS)
    if change[0] is not None:
        text = text.replace(*change, 1)
    nist_aux = tmp_path / "aux"
    nist_aux.mkdir()
    shutil.copy(aux["pids"], nist_aux / "tv25.pids")
    shutil.copy(aux["shots"], nist_aux / "V3C2.validShotTable")
    (nist_aux / "adhoc.features.M").write_text("761\n762\n")
    run = tmp_path / "nist.xml"  # without the DOCTYPE: the checker would fetch the DTD, and there is no network
    run.write_text("".join(line for line in text.splitlines(True) if not line.startswith("<!DOCTYPE")))
    p = subprocess.run(
        ["java", "-cp", os.environ["AVS_NIST_CHECKER"], "CheckAdhocSubmissions", str(run), str(nist_aux)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    nist_refuses = p.returncode != 0 or "Error" in p.stderr or "Exception" in p.stderr
    avs_refuses = bool(problems(tmp_path, text, **aux))
    assert avs_refuses == (expected is not None)
    assert nist_refuses == (avs_refuses and change[1] not in PASSED_BY_NIST), p.stderr


def test_missing_topic_and_order_rules(tmp_path, aux):
    # Gaps and any order of seqNum are fine for NIST (the order of a topic's items is its seqNums)
    shuffled = topic("761", [("3", "shot07476_1"), ("1", "shot07477_12"), ("7", "shot07476_2")])
    assert problems(tmp_path, xml_run(2025, RUN_2025, shuffled), pids=aux["pids"], shots=aux["shots"]) == []
    assert problems(tmp_path, xml_run(2025, RUN_2025, shuffled), **aux) == [
        (None, "no result for topic 762 of the topics file")
    ]
    run = R.read_run(tmp_path / "run.xml")
    assert [it.shot for it in run.topics[761].items] == ["shot07477_12", "shot07476_1", "shot07476_2"]


def test_more_than_1000_items_counted_once(tmp_path):
    items = [(str(i), f"shot07476_{i}") for i in range(1, 1003)]
    found = problems(tmp_path, xml_run(2025, RUN_2025, topic("761", items)))
    assert found == [(1006, "topic 761 has 1002 items; at most 1000 are allowed")]


@pytest.mark.parametrize("attr", ["trType", "class", "task", "novelty", "algo", "pid", "priority", "desc"])
def test_every_run_attribute_is_required_in_2023_on(tmp_path, attr):
    attrs = " ".join(a for a in RUN_2025.split() if not a.startswith(f"{attr}="))
    found = problems(tmp_path, xml_run(2025, attrs, OK_TOPICS))
    assert found == [
        (
            4,
            "not valid against videoAdhocSearchResults-2023.dtd: Element videoAdhocSearchRunResult "
            f"does not carry attribute {attr}",
        )
    ]


def test_each_year_against_its_own_dtd(tmp_path):
    run_2019 = RUN_2025.replace(' algo="V"', "")
    run_2016 = run_2019.replace(' task="M" novelty="C"', "")
    assert problems(tmp_path, xml_run(2017, run_2016, OK_TOPICS)) == []
    assert problems(tmp_path, xml_run(2021, run_2019, OK_TOPICS)) == []
    assert problems(tmp_path, xml_run(2024, RUN_2025, OK_TOPICS)) == []
    assert problems(tmp_path, xml_run(2021, RUN_2025, OK_TOPICS)) == [
        (
            4,
            "not valid against videoAdhocSearchResults-2019.dtd: No declaration for attribute algo of element "
            "videoAdhocSearchRunResult",
        )
    ]
    assert problems(tmp_path, xml_run(2023, RUN_2025.replace('algo="V"', 'algo="X"'), OK_TOPICS)) == [
        (
            4,
            'not valid against videoAdhocSearchResults-2023.dtd: Value "X" for attribute algo of '
            "videoAdhocSearchRunResult is not among the enumerated set",
        )
    ]
    assert [R.dtd_path(y).name for y in (2016, 2018, 2019, 2022, 2023, 2025)] == [
        "videoAdhocSearchResults-2016.dtd",
        "videoAdhocSearchResults-2016.dtd",
        "videoAdhocSearchResults-2019.dtd",
        "videoAdhocSearchResults-2019.dtd",
        "videoAdhocSearchResults-2023.dtd",
        "videoAdhocSearchResults-2023.dtd",
    ]


def make_run(elapsed: str = "0.004", shot: str = "V3C2_shot07476_1", **attrs) -> R.Run:
    return R.Run(R.RunInfo(**{**ATTRS, **attrs}), {761: R.TopicResult([R.Item(shot, 1.0)], elapsed)})


def test_writing_2023_runs_algo_whole_seconds_and_nist_ids(tmp_path):
    text = R.to_xml(make_run(algo="V"), 2023).decode()
    assert '<!DOCTYPE videoAdhocSearchResults SYSTEM "https://www-nlpir.nist.gov/projects/tv2023/dtds/' in text
    assert (
        '<videoAdhocSearchRunResult trType="D" class="F" task="M" novelty="C" algo="V" pid="TEAMA" '
        'priority="1" desc="d">'
    ) in text
    assert '<videoAdhocSearchTopicResult tNum="761" elapsedTime="1">' in text  # 0.004 s, rounded up
    assert 'shotId="shot07476_1"' in text and "V3C2_" not in text
    with pytest.raises(InputError, match="a 2023 run needs algo"):
        R.to_xml(make_run(), 2023)
    # an earlier year's DTD has no algo: it is left out
    assert "algo" not in R.to_xml(make_run(algo="C"), 2022).decode()
    assert R.to_trec(make_run()).split() == ["1761", "Q0", "shot07476_1", "1", "1.0", "TEAMA"]
    assert [R.whole_seconds(x) for x in (0, 0.004, 1.0, 2.5, "3")] == ["0", "1", "1", "3", "3"]


def test_xml_is_written_as_lxml_writes_it(monkeypatch):
    """to_xml writes the XML as text: lxml reads every attribute back as given, and lxml writing the tree it
    read gives the same bytes (its escaping of & < > " tab, newline and carriage return; UTF-8 kept). What it
    records having written, which its checks run on, is what the run reader reads from the bytes."""
    import io

    from lxml import etree

    from trec_eval_compat import runxml

    recorded = []
    check = R._xml_problems
    monkeypatch.setattr(R, "_xml_problems", lambda *a, **kw: recorded.append(kw["written"]) or check(*a, **kw))

    nasty = "a & b < c > d \"e\" 'f' \t tab \n line \r cr é ✓"
    run = make_run(desc=nasty)
    run.topics[761].items.append(R.Item("shot00001_2", 0.5))
    data = R.to_xml(run, 2022)
    root = etree.fromstring(data)
    assert root[0].get("desc") == nasty and root[0][0][1].get("shotId") == "shot00001_2"
    body = data.split(b"\n", 2)[2]  # past the declaration and the DOCTYPE
    assert etree.tostring(root, encoding="UTF-8") + b"\n" == body
    read = runxml.read_xml(io.BytesIO(data), "x.xml")
    assert replace(recorded[0], path="x.xml") == read and not read.faults


def test_cli_convert_and_validate_2023(tmp_path, run_cli, aux):
    src = tmp_path / "old.xml"
    src.write_text(
        xml_run(2022, RUN_2025.replace(' algo="V"', ""), topic("761", [("1", "V3C2_shot07476_1")], elapsed="0.004"))
    )
    assert run_cli("run", "validate", src).exit_code == 1
    dst = tmp_path / "new.xml"
    r = run_cli("run", "convert", src, dst, "--year", 2025)
    assert r.exit_code == 2 and "a 2025 run needs algo (set with --algo)" in r.output
    r = run_cli("run", "convert", src, dst, "--year", 2025, "--algo", "C")
    assert r.exit_code == 0, r.output
    assert 'algo="C"' in dst.read_text() and 'elapsedTime="1"' in dst.read_text()
    r = run_cli("run", "validate", dst, "--pids", aux["pids"], "--shots", aux["shots"])
    assert r.exit_code == 0 and r.output == f"{dst}: valid\n"


def test_valid_shots_sources(tmp_path):
    (tmp_path / "t").write_text(V3C2_TABLE)
    (tmp_path / "l").write_text("shot07476_1\nshot00001_1\n")
    table, listed = S.read_valid_shots(tmp_path / "t"), S.read_valid_shots(tmp_path / "l")
    assert table.kind == "valid-shot table" and "shot07476_40" in table and "shot07476_41" not in table
    assert "shot07476_0" not in table and "shot17235_8" in table and "shot7476_1" not in table
    assert table.spelled("shot7476_01") == "shot07476_1" and table.spelled("shot07476_41") is None
    assert listed.kind == "shot list" and "shot00001_1" in listed and "shot07476_2" not in listed
    from avs.formats.store import write_store

    write_store(tmp_path / "s.h5", ["shot00001_1", "shot07476_1"], {"f": np.zeros((2, 3), np.float32)})
    store = S.read_valid_shots(tmp_path / "s.h5")
    assert store.kind == "collection store" and "shot07476_1" in store and "shot07476_2" not in store
    for bad, message in [("07476 40 3\n", "expected 'VIDEO MAXSHOT'"), ("07476 40\n07476 2\n", "appears twice")]:
        (tmp_path / "b").write_text(bad)
        with pytest.raises(InputError, match=message):
            S.read_valid_shot_table(tmp_path / "b")


def test_v3c2_ids():
    assert S.v3c_part("shot00001_1") == "V3C1" and S.v3c_part("shot07475_3") == "V3C1"
    assert S.v3c_part("shot07476_1") == "V3C2" and S.v3c_part("V3C2_shot17235_2") == "V3C2"
    assert S.v3c_part("shot17236_1") is None and S.v3c_part("x") is None
    assert S.nist_shot_id("V3C2_shot07476_1") == "shot07476_1" and S.nist_shot_id("V3C2_x") == "V3C2_x"
    # a V3C1+V3C2 store orders by video number across both parts
    assert S.natural_sorted(["shot07476_1", "shot07475_10", "shot07475_2"]) == [
        "shot07475_2",
        "shot07475_10",
        "shot07476_1",
    ]


def test_exclude_lists_for_v3c2(tmp_path):
    (tmp_path / "drop").write_text("V3C2_shot07476_3\nshot07477_1\n")
    assert S.shots_to_exclude(tmp_path / "drop") == {"shot07476_3", "shot07477_1"}
    with pytest.raises(InputError, match="avs ships no dropped-shots list for V3C2"):
        S.shots_to_exclude("V3C2")


def test_unnumbered_2016_2018_list(tmp_path, run_cli):
    """The list teams pass around for 2016-2018 is 90 bare topic texts; --number-from 501 gives NIST's numbers."""
    shipped = [t for y in ("tv16", "tv17", "tv18") for t in T.read_topics(T.shipped_dir() / f"{y}.xml", labels=False)]
    bare = tmp_path / "tv16_17_18.avs.topics.txt"
    bare.write_text("".join(f"{t.text}\n" for t in shipped))
    ts = T.read_topics(bare, labels=False, number_from=501)
    assert len(ts) == 90 and ts.nums == list(range(501, 591))
    assert [t.text for t in ts] == [t.text for t in shipped]
    r = run_cli("topics", "show", bare, "--format", "tsv", "--number-from", 501)
    assert r.exit_code == 0 and r.output.splitlines()[1].startswith("501\ta person playing guitar outdoors\t")
    r = run_cli("topics", "show", bare)
    assert r.exit_code == 2 and "a list of bare topic texts? number them with --number-from N" in r.output
    r = run_cli("topics", "show", T.shipped_dir() / "tv20.xml", "--number-from", 1)
    assert r.exit_code == 2 and "XML topic file carries its own numbers" in r.output


def test_topic_numbers_kept_as_written(tmp_path, run_cli):
    src = tmp_path / "t.txt"
    src.write_text("0661\ta dog\n662\ta cat\n")
    ts = T.read_topics(src, labels=False)
    assert ts.nums == [661, 662] and [t.number for t in ts] == ["0661", "662"]
    assert T.to_text(ts) == "0661\ta dog\n662\ta cat\n"
    out = tmp_path / "t.xml"
    assert (
        run_cli("topics", "convert", src, out, "--year", "2021", "--collection", "V3C1", "--task", "main").exit_code
        == 0
    )
    assert '<videoTopic num="0661">' in out.read_text() and T.read_topics(out, labels=False).nums == [661, 662]
    assert run_cli("topics", "convert", src, tmp_path / "s.txt", "--strip-zeros").exit_code == 0
    assert (tmp_path / "s.txt").read_text() == "661\ta dog\n662\ta cat\n"
    src.write_text("0661\ta dog\n661\ta cat\n")
    with pytest.raises(InputError, match="duplicate topic number 661"):
        T.read_topics(src, labels=False)


def test_shipped_topic_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert T.read_topics("tv20", labels=False).nums == list(range(641, 661))
    assert T.read_topics("tv20.xml", labels=False).year == "2020"
    (tmp_path / "tv20.xml").write_text("1 my own\n")
    assert T.read_topics("tv20.xml", labels=False).nums == [1]  # a file of that name comes first
    with pytest.raises(InputError, match="tv99"):
        T.read_topics("tv99", labels=False)


def test_real_runs_never_default_to_the_simulated_judgments(tmp_path, run_cli, monkeypatch):
    from avs.demo import builtin as demo

    built = []
    monkeypatch.setattr(demo, "ensure", lambda *a, **k: built.append(1))
    real = tmp_path / "real.xml"
    real.write_text(xml_run(2025, RUN_2025, OK_TOPICS))
    trec = tmp_path / "real.trec"
    trec.write_text("1761 Q0 shot07476_1 1 9.5 TEAMA\n")
    for run in (real, trec):
        r = run_cli("eval", "infap", run)
        assert r.exit_code == 2 and "not a run of the SIMULATED demo collection" in r.output
        assert "give NIST's judgments with --qrels" in r.output
    assert built == []  # refused before the demo would be built
    (tmp_path / "d.trec").write_text(f"1641 Q0 shot00001_1 1 2.0 {demo.DEMO_PID}\n")
    (tmp_path / "d.xml").write_text(xml_run(2020, RUN_2025.replace("TEAMA", demo.DEMO_PID), OK_TOPICS))
    assert demo.is_demo_run(tmp_path / "d.trec") and demo.is_demo_run(tmp_path / "d.xml")
    assert not demo.is_demo_run(real) and not demo.is_demo_run(trec)


def test_every_data_file_is_in_the_wheel():
    """Each file under avs/ that is not Python source is matched by setup.cfg's package_data."""
    import configparser
    import fnmatch
    from pathlib import Path

    root = Path(__file__).parent.parent
    cfg = configparser.ConfigParser()
    cfg.read(root / "setup.cfg")
    patterns = {pkg: [p.strip() for p in globs.split(",")] for pkg, globs in cfg["options.package_data"].items()}
    assert "packages = find:" in (root / "setup.cfg").read_text()
    missing = []
    for f in (root / "avs").rglob("*"):
        if f.is_dir() or f.suffix in (".py", ".pyc") or "__pycache__" in f.parts:
            continue
        rel = f.relative_to(root)
        pkg_dir = next(p for p in [rel.parent, *rel.parents] if (root / p / "__init__.py").exists())
        inner = rel.relative_to(pkg_dir).as_posix()
        if not any(fnmatch.fnmatch(inner, g) for g in patterns.get(".".join(pkg_dir.parts), [])):
            missing.append(str(rel))
    assert missing == []


def test_bad_auxiliary_files_one_line(tmp_path, run_cli):
    run = tmp_path / "run.xml"
    run.write_text(xml_run(2025, RUN_2025, OK_TOPICS))
    for name, data, option, message in [
        ("empty", b"", "--pids", "no participant ids (empty file)"),
        ("two", b"TEAMA TEAMB\n", "--pids", "expected one participant id, found 2 words"),
        ("latin1", b"\xe9quipe\n", "--pids", "not UTF-8"),
        ("empty", b"", "--shots", "no shot ids (empty file)"),
        ("table", b"07476 x\n", "--shots", "not a shot id"),
    ]:
        (tmp_path / name).write_bytes(data)
        r = run_cli("run", "validate", run, option, tmp_path / name)
        assert r.exit_code == 2 and message in r.output and len(r.output.splitlines()) == 1, r.output
    (tmp_path / "binary.trec").write_bytes(b"\xff\xfe\x00bad")
    r = run_cli("eval", "infap", tmp_path / "binary.trec")
    assert r.exit_code == 2 and "not a run of the SIMULATED demo collection" in r.output
