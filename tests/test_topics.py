import json

import pytest
from lxml import etree

from avs.errors import InputError
from avs.formats import topics as T

from conftest import REPO

TOPICS = REPO / "topics"
SHIPPED = {
    "tv16": (501, 530, "2016", "IACC.3", "main"),
    "tv17": (531, 560, "2017", "IACC.3", "main"),
    "tv18": (561, 590, "2018", "IACC.3", "main"),
    "tv19": (611, 640, "2019", "V3C1", "main"),
    "tv20": (641, 660, "2020", "V3C1", "main"),
    "tv21": (661, 680, "2021", "V3C1", "main"),
    "progress_2019_2021": (591, 610, "2019-2021", "V3C1", "progress"),
    "tv22": (701, 730, "2022", "V3C2", "main"),
}

# Table 14 of the LAFF supplement: topic -> (object, person, action, location)
TABLE14 = {
    641: "1001",
    642: "1111",
    643: "0110",
    644: "1001",
    645: "1100",
    646: "1100",
    647: "1110",
    648: "1101",
    649: "0110",
    650: "0110",
    651: "0110",
    652: "0110",
    653: "0110",
    654: "0111",
    655: "0111",
    656: "1100",
    657: "1101",
    658: "1101",
    659: "1001",
    660: "1000",
}


def write(tmp_path, name, content):
    p = tmp_path / name
    p.write_bytes(content.encode() if isinstance(content, str) else content)
    return p


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_files_validate_and_carry_origin(name):
    lo, hi, year, collection, task = SHIPPED[name]
    path = TOPICS / f"{name}.xml"
    dtd = etree.DTD(str(TOPICS / "avs-topics.dtd"))
    assert dtd.validate(etree.parse(str(path))), dtd.error_log
    ts = T.read_topics(path)
    assert ts.nums == list(range(lo, hi + 1))
    assert (ts.year, ts.collection, ts.task) == (year, collection, task)
    assert all(t.text == t.text.strip() and t.text for t in ts)
    assert all(t.labels is not None for t in ts)


def test_shipped_texts_verbatim():
    ts = T.read_topics(TOPICS / "tv21.xml")
    assert ts[0].text == "a hang glider floating in the sky on a sunny day"
    assert T.read_topics(TOPICS / "tv22.xml")[0].text == "A man with a white beard"
    assert T.read_topics(TOPICS / "tv16.xml")[11].text == "palm trees"  # source had a trailing blank


def test_tv20_labels_equal_table14():
    ts = T.read_topics(TOPICS / "tv20.xml")
    got = {t.num: "".join(str(int(lab in t.labels)) for lab in T.LABELS) for t in ts}
    assert got == TABLE14


def test_labels_cover_every_shipped_topic_once():
    labels = T.read_labels(TOPICS / "labels.tsv")
    nums = [n for f in TOPICS.glob("*.xml") for n in T.read_topics(f, labels=False).nums]
    assert sorted(labels) == sorted(nums) and len(nums) == 210


def test_eval_id_mapping():
    assert T.Topic(661, "x").eval_id == "1661"


def test_plain_text_formats(tmp_path):
    p = write(tmp_path, "t.txt", "# comment\n641  an aerial view  \n\n642\ta person paddling kayak\n643 people\n")
    ts = T.read_topics(p)
    assert [(t.num, t.text) for t in ts] == [(641, "an aerial view"), (642, "a person paddling kayak"), (643, "people")]
    assert ts[1].labels == frozenset({"object", "person", "action", "location"})


def test_xml_2008_style_namespaces_encoding_doctype(tmp_path):
    xml = (
        '<?xml version="1.0" encoding="ISO-8859-1"?>\n<!DOCTYPE videoTopics SYSTEM "videoTopics.dtd">\n'
        '<videoTopics xmlns="http://example.org/ns">\n'
        '<videoTopic num="0221"><textDescription text="Find shots of a caf\xe9"/></videoTopic>\n'
        '<videoTopic num="0222">  people   walking </videoTopic>\n</videoTopics>\n'
    ).encode("latin-1")
    ts = T.read_topics(write(tmp_path, "t.xml", xml), labels=False)
    assert [(t.num, t.text) for t in ts] == [(221, "Find shots of a café"), (222, "people walking")]
    assert ts.year is None


@pytest.mark.parametrize(
    "content,message",
    [
        ("", "file is empty"),
        ("  \n\n", "file is empty"),
        ("641 a\n641 b\n", ":2: duplicate topic number 641 (first at line 1)"),
        ("641 a\n642\n", ":2: topic 642 has empty text"),
        ("64x a person\n", ":1: topic number '64x' is not numeric"),
        ("<r><t num='1'>a</t><t num='1'>b</t></r>", ":1: duplicate topic number 1"),
        ("<r><t num='1'><textDescription text=' '/></t></r>", "topic 1 has empty text"),
        ("<r><t num='one'>a</t></r>", "<t>: topic number 'one' is not numeric"),
        ("<r><x>no topics</x></r>", "no topics found"),
        ("<r><t num='1'>a</t>", "not well-formed XML"),
        (
            '<!DOCTYPE avsTopics SYSTEM "avs-topics.dtd"><avsTopics year="2020" collection="V9" task="main">'
            '<videoTopic num="1"><textDescription text="a"/></videoTopic></avsTopics>',
            "does not validate against avs-topics.dtd",
        ),
    ],
)
def test_rejections(tmp_path, content, message):
    p = write(tmp_path, "bad.txt", content)
    with pytest.raises(InputError) as e:
        T.read_topics(p)
    assert str(e.value).startswith(str(p)) and message in str(e.value)


def test_xxe_cannot_read_local_files(tmp_path):
    secret = write(tmp_path, "secret.txt", "TOP-SECRET")
    xxe = f'<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY x SYSTEM "file://{secret}">]>\n<r><t num="1">&x;</t></r>'
    with pytest.raises(InputError, match="entity declarations are not allowed") as e:
        T.read_topics(write(tmp_path, "xxe.xml", xxe))
    assert "TOP-SECRET" not in str(e.value)


def test_billion_laughs_refused(tmp_path):
    ents = "".join(f'<!ENTITY l{i} "{("&l%d;" % (i - 1)) * 10}">' for i in range(1, 10))
    bomb = f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY l0 "lol">{ents}]><r><t num="1">&l9;</t></r>'
    # libxml2 itself may stop the expansion first; either way the file is refused, naming it
    with pytest.raises(InputError, match="bomb.xml.*(entity declarations are not allowed|amplification)"):
        T.read_topics(write(tmp_path, "bomb.xml", bomb))


def test_labels_file_rejections(tmp_path):
    with pytest.raises(InputError, match="header must be"):
        T.read_labels(write(tmp_path, "l.tsv", "num\tobject\n"))
    with pytest.raises(InputError, match=":2: label values must be 0 or 1"):
        T.read_labels(write(tmp_path, "l.tsv", "num\tobject\tperson\taction\tlocation\n1\t2\t0\t0\t0\n"))


def test_convert_round_trip(tmp_path, run_cli):
    src = write(tmp_path, "t.txt", "661 a hang glider\n662 a woman\n")
    r = run_cli("topics", "convert", src, tmp_path / "t.xml")
    assert r.exit_code == 0, r.stderr
    ts = T.read_topics(tmp_path / "t.xml", labels=False)
    assert (ts.year, ts.collection, ts.task, ts.nums) == ("2021", "V3C1", "main", [661, 662])
    r = run_cli("topics", "convert", tmp_path / "t.xml", tmp_path / "back.txt")
    assert (tmp_path / "back.txt").read_text() == "661\ta hang glider\n662\ta woman\n"
    r = run_cli("topics", "convert", src, tmp_path / "t.xml")
    assert r.exit_code == 2 and "already exists (use --force to overwrite)" in r.stderr
    assert run_cli("topics", "convert", src, tmp_path / "t.xml", "--force").exit_code == 0


def test_convert_checks_the_year(tmp_path, run_cli):
    src = write(tmp_path, "t.txt", "9001 something\n")
    r = run_cli("topics", "convert", src, tmp_path / "o.xml", "--year", "abc", "--collection", "V3C2", "--task", "main")
    assert r.exit_code == 2 and "expected a year" in r.stderr and not (tmp_path / "o.xml").exists()


def test_convert_needs_origin_for_unknown_numbers(tmp_path, run_cli):
    src = write(tmp_path, "t.txt", "9001 something\n")
    r = run_cli("topics", "convert", src, tmp_path / "o.xml")
    assert r.exit_code == 2 and "give --year --collection --task" in r.stderr
    assert not (tmp_path / "o.xml").exists()
    r = run_cli(
        "topics", "convert", src, tmp_path / "o.xml", "--year", "2023", "--collection", "V3C2", "--task", "main"
    )
    assert r.exit_code == 0 and T.read_topics(tmp_path / "o.xml").year == "2023"


def test_show_tsv_is_table14(run_cli):
    r = run_cli("topics", "show", TOPICS / "tv20.xml", "--format", "tsv")
    assert r.exit_code == 0
    lines = r.stdout.splitlines()
    assert lines[0] == "num\ttext\tobject\tperson\taction\tlocation" and len(lines) == 21
    for line in lines[1:]:
        num, text, *flags = line.split("\t")
        assert "".join(flags) == TABLE14[int(num)]
    assert lines[2] == "642\ta person paddling kayak in the water\t1\t1\t1\t1"


def test_show_json_and_table(run_cli):
    data = json.loads(run_cli("topics", "show", TOPICS / "tv21.xml", "--format", "json").stdout)
    assert len(data) == 20 and data[0]["num"] == 661
    out = run_cli("topics", "show", TOPICS / "tv20.xml").stdout
    assert "a person paddling kayak in the water" in out


def test_unlabelled_topics_show_unknown(tmp_path, run_cli):
    src = write(tmp_path, "t.txt", "9001 something\n")
    data = json.loads(run_cli("topics", "show", src, "--format", "json").stdout)
    assert data == [
        {"num": 9001, "text": "something", "object": None, "person": None, "action": None, "location": None}
    ]
