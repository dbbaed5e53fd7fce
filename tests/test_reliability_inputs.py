"""Bad input gives one line naming the file (and line) and the problem, never a traceback.

One test (or a few) per kind of input: Unicode digits, non-UTF-8 text, characters XML cannot carry, long
parser messages, UTF-16 XML, gzip bombs, what sample_eval.pl reads differently, Ctrl-C.
"""

import gzip
import io
import os
import shutil
import signal
import subprocess
import sys
import time
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from avs.errors import InputError
from avs.formats import runs
from avs.formats.topics import parse_text, parse_xml, read_labels, read_topics, to_xml, with_origin
from trec_eval_compat import io as tio
from trec_eval_compat import xmlsafe
from trec_eval_compat.__main__ import main as tec_main
from trec_eval_compat.evaluate import _numeric_key, evaluate, load_run
from trec_eval_compat.runxml import xml_run_lines

from conftest import DATA, REPO

GOOD_XML_RUN = DATA / "runs" / "good_2021.xml"
LABEL_HEADER = "num\tobject\tperson\taction\tlocation\n"
FIXED = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Characters Python's int() or str.isdigit() take as digits that are not ASCII: '²' (isdigit, int fails),
# '١' and '１' (int reads them)
unicode_digits = st.sampled_from([chr(c) for c in range(0x80, sys.maxunicode + 1) if chr(c).isdigit()])
one_line_chars = st.characters(exclude_characters="\r\n")
not_xml_chars = st.sampled_from([*map(chr, range(9)), "\x0e", "\x1b", "\ufffe", "\uffff"])


def one_line(e: InputError) -> str:
    text = str(e)
    assert "\n" not in text and "\r" not in text
    return text


# ------------------------------------------------------------------------------------ 1. Unicode digits


@FIXED
@given(lead=st.sampled_from(["", "66"]), digit=unicode_digits)
def test_unicode_digit_topic_numbers_are_refused(tmp_path, lead, digit):
    num = lead + digit
    with pytest.raises(InputError, match="is not numeric \\(ASCII digits only\\)$") as e:
        parse_text(f"{num}\ta dog\n", "t.txt")
    assert one_line(e.value).startswith("t.txt:1: ")
    xml = f'<videoTopics><videoTopic num="{num}"><textDescription text="a dog"/></videoTopic></videoTopics>'
    with pytest.raises(InputError, match="is not numeric"):
        parse_xml(xml.encode(), "t.xml")
    labels = tmp_path / "labels.tsv"
    labels.write_text(f"{LABEL_HEADER}{num}\t1\t0\t0\t0\n", encoding="utf-8")
    with pytest.raises(InputError, match="is not numeric") as e:
        read_labels(labels)
    assert one_line(e.value).startswith(f"{labels}:2: ")


@FIXED
@given(field=st.text(max_size=12))
def test_any_topic_field_parses_or_is_an_input_error(field):
    for source in (f"{field}\ta dog\n", f"661\t{field}\n"):
        try:
            ts = parse_text(source, "t.txt")
        except InputError as e:
            one_line(e)
        else:
            to_xml(with_origin(ts, "2021", "V3C1", "main"))  # whatever is read can be written


@FIXED
@given(attr=st.sampled_from(["tNum", "seqNum", "elapsedTime"]), digit=unicode_digits)
def test_unicode_digits_in_run_xml_are_refused(tmp_path, attr, digit):
    old = {"tNum": 'tNum="661"', "seqNum": 'seqNum="2"', "elapsedTime": 'elapsedTime="12"'}[attr]
    p = tmp_path / "run.xml"
    p.write_text(GOOD_XML_RUN.read_text().replace(old, f'{attr}="6{digit}"', 1), encoding="utf-8")
    for read in (xml_run_lines, runs.read_run, lambda path: load_run(path)):
        with pytest.raises(InputError, match=f"{attr} .* is not a number \\(ASCII digits only\\)") as e:
            read(p)
        assert one_line(e.value).startswith(f"{p}:")


# ------------------------------------------------------------------------------------ 2. Latin-1 files


def test_latin1_label_and_topic_files_name_the_line(tmp_path):
    labels = tmp_path / "labels.tsv"
    labels.write_bytes(f"{LABEL_HEADER}661\t1\t0\t0\t0\n".encode() + b"662\t0\t1\t0\t0 caf\xe9\n")
    with pytest.raises(InputError) as e:
        read_labels(labels)
    assert one_line(e.value) == f"{labels}:3: not UTF-8 text (byte 0xe9; save the file as UTF-8)"
    topics = tmp_path / "topics.txt"
    topics.write_bytes(b"\xef\xbb\xbf661\ta dog\n662\ta caf\xe9\n")
    with pytest.raises(InputError) as e:
        read_topics(topics, labels=False)
    assert one_line(e.value) == f"{topics}:2: not UTF-8 text and not XML (byte 0xe9; save the file as UTF-8)"


def test_latin1_labels_on_the_cli(run_cli, tmp_path):
    labels = tmp_path / "labels.tsv"
    labels.write_bytes(LABEL_HEADER.encode() + b"661\t1\t0\t0\t0 \xe9\n")
    topics = tmp_path / "t.txt"
    topics.write_text("661\ta dog\n")
    r = run_cli("topics", "show", topics, "--labels", labels)
    assert r.exit_code == 2
    assert r.stderr == f"avs: error: {labels}:2: not UTF-8 text (byte 0xe9; save the file as UTF-8)\n"


# ------------------------------------------------------------------------------ 3. characters XML lacks


@FIXED
@given(bad=not_xml_chars, before=st.text(one_line_chars, max_size=5), after=st.text(one_line_chars, max_size=5))
def test_topic_text_xml_cannot_carry_is_refused(bad, before, after):
    with pytest.raises(InputError) as e:
        parse_text(f"661\ta{before}{bad}{after}b\n", "t.txt")
    assert one_line(e.value).startswith("t.txt:1: topic 661 text holds U+")
    assert one_line(e.value).endswith(", a character XML cannot carry")


def test_topic_writer_refuses_what_xml_cannot_carry():
    ts = with_origin(parse_text("661\ta dog\n"), "2021", "V3C1", "main")
    with pytest.raises(InputError, match="^year holds U\\+0001, a character XML cannot carry$"):
        to_xml(with_origin(ts, year="20\x0121"))


@pytest.mark.parametrize("desc", ["x\x01y", "tab\x0bbed", "\ufffe"])
def test_run_desc_xml_cannot_carry_names_the_option(run_cli, tmp_path, desc):
    r = run_cli("run", "convert", "--force", "--desc", desc, GOOD_XML_RUN, tmp_path / "out.xml")
    assert r.exit_code == 2 and r.stderr.count("\n") == 1
    assert r.stderr.startswith(f"avs: error: {GOOD_XML_RUN}: desc (set with --desc) holds U+")
    assert not (tmp_path / "out.xml").exists()


def test_run_shot_id_xml_cannot_carry_is_refused(tmp_path):
    trec = tmp_path / "r.trec"
    trec.write_bytes(b"1661 Q0 shot0\x01001_1 1 1 t\n")
    run = runs.with_attributes(
        runs.read_run(trec),
        elapsed="1",
        tr_type="D",
        run_class="F",
        task="M",
        novelty="C",
        pid="p",
        priority="1",
        desc="d",
    )
    with pytest.raises(InputError, match="topic 661: item 1 holds U\\+0001") as e:
        runs.to_xml(run, 2021)
    one_line(e.value)


# ---------------------------------------------------------------------------------- 4. one-line messages


@FIXED
@given(text=st.text(), limit=st.integers(10, 300))
def test_one_line_is_one_line_within_the_limit(text, limit):
    out = xmlsafe.one_line(text, limit)
    assert len(out) <= limit and not any(c in out for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")


def test_huge_attribute_error_is_one_line(tmp_path):
    p = tmp_path / "topics.xml"
    p.write_text(
        f'<videoTopics><videoTopic num="661"><textDescription text="{"x" * (11 << 20)}"/></videoTopic></videoTopics>\n'
    )
    with pytest.raises(InputError, match="not well-formed XML") as e:
        read_topics(p, labels=False)
    assert len(one_line(e.value)) < 300


def test_long_values_are_shortened_in_messages(tmp_path):
    p = tmp_path / "run.xml"
    p.write_text(GOOD_XML_RUN.read_text().replace('seqNum="2"', f'seqNum="{"9" * 100000}x"', 1))
    with pytest.raises(InputError, match="seqNum .* is not a positive integer") as e:
        xml_run_lines(p)
    assert len(one_line(e.value)) < 200


# ---------------------------------------------------------------------------------------- 5. UTF-16 XML

TOPICS_XML = (
    '<?xml version="1.0" encoding="{enc}"?>\n<videoTopics><videoTopic num="661">'
    '<textDescription text="a dög"/></videoTopic></videoTopics>\n'
)


@pytest.mark.parametrize(
    "codec,declared",
    [
        ("utf-16", "UTF-16"),
        ("utf-16-le", "UTF-16"),
        ("utf-16-be", "UTF-16"),
        ("utf-8-sig", "UTF-8"),
        ("latin-1", "ISO-8859-1"),
    ],
)
def test_topic_xml_in_its_declared_encoding(tmp_path, codec, declared):
    p = tmp_path / "topics.xml"
    p.write_bytes(TOPICS_XML.format(enc=declared).encode(codec))
    ts = read_topics(p, labels=False)
    assert [(t.num, t.text) for t in ts] == [(661, "a dög")]


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_utf16_entity_declarations_are_refused(tmp_path, codec):
    p = tmp_path / "topics.xml"
    p.write_bytes(
        (
            '<?xml version="1.0" encoding="UTF-16"?>\n<!DOCTYPE x [<!ENTITY boom "aaaa">]>\n'
            '<videoTopics><videoTopic num="661"><textDescription text="&boom;"/></videoTopic>'
            "</videoTopics>\n"
        ).encode(codec)
    )
    with pytest.raises(InputError) as e:
        read_topics(p, labels=False)
    assert one_line(e.value) == f"{p}: entity declarations are not allowed (found boom)"


def test_entity_scan_reads_the_head_as_announced():
    for codec in ("utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be", "utf-8"):
        head = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY  % p "x">]><x/>'.encode(codec)
        with pytest.raises(InputError, match="found p"):
            xmlsafe.parse(io.BytesIO(head), "x.xml")


# ----------------------------------------------------------------------------------- 6. gzip bombs


def _gzip_of(chunk: bytes, times: int) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    return b"".join([*(c.compress(chunk) for _ in range(times)), c.flush()])


@pytest.mark.parametrize("chunk", [b" " * (1 << 20), b"1661 Q0 shot00001_1 1 1 t\n" * 40000])
def test_gzip_bomb_is_refused(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(tio, "GUNZIP_FREE_BYTES", 4 << 20)
    p = tmp_path / "bomb.gz"
    p.write_bytes(_gzip_of(chunk, 8))  # 8 MB at several hundred to one
    with pytest.raises(InputError, match="gzip data expands past .*: refused as a decompression bomb") as e:
        tio.read_run_columns(p)
    assert one_line(e.value).startswith(f"{p}: ")


def test_gzip_absolute_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(tio, "GUNZIP_MAX_BYTES", 1000)
    p = tmp_path / "run.gz"
    p.write_bytes(gzip.compress("".join(f"1661 Q0 shot{i}_1 1 {i} t\n" for i in range(1000)).encode()))
    with pytest.raises(InputError, match="past 1,000 bytes, more than any run or qrels file holds"):
        tio.read_run_lines(p)


def test_real_gzip_files_stay_readable():
    rows = tio.read_qrels(DATA / "sample_eval" / "avs.qrels.main.tv21.gz")
    assert len(rows) > 10000


@FIXED
@given(cut=st.integers(0, 4000))
def test_truncated_gzip_and_xml_give_input_errors(tmp_path, cut):
    data = gzip.compress(GOOD_XML_RUN.read_bytes())
    for content in (data[: cut * len(data) // 4000], GOOD_XML_RUN.read_bytes()[: cut * 1000 // 4000]):
        p = tmp_path / "run.xml.gz"
        p.write_bytes(content)
        try:
            runs.read_run(p)
        except InputError as e:
            one_line(e)


# ------------------------------------------------------------------------- 7. what sample_eval.pl reads


@pytest.mark.parametrize(
    "judgment,message",
    [
        ("1_0", "judgment '1_0' is not an integer"),  # int(): 10, Perl: 1
        ("１", "judgment '１' is not an integer"),  # int(): 1, Perl: 0
        ("+1", "judgment '+1' is not an integer"),
        ("02", "judgment '02': write it 2"),  # Perl: another grade than 2, with another ideal DCG
    ],
)
def test_judgments_perl_reads_otherwise_are_refused(tmp_path, judgment, message):
    q = tmp_path / "q"
    q.write_text(f"1661 0 a 1 1\n1661 0 b 1 {judgment}\n", encoding="utf-8")
    with pytest.raises(InputError) as e:
        tio.read_qrels(q)
    assert one_line(e.value).startswith(f"{q}:2: {message}")


@pytest.mark.parametrize("block", [100, 1 << 23])
@pytest.mark.parametrize("score", ["１２", "1\u0662", "٣.5"])
def test_non_ascii_scores_are_refused(tmp_path, monkeypatch, block, score):
    monkeypatch.setattr(tio, "BLOCK_BYTES", block)
    p = tmp_path / "r"
    p.write_text("".join(f"1661 Q0 s{i} {i} {i} t\n" for i in range(50)) + f"1661 Q0 x 1 {score} t\n", encoding="utf-8")
    with pytest.raises(InputError) as e:
        tio.read_run_columns(p)
    assert one_line(e.value) == f"{p}:51: score {score!r} is not a number (ASCII digits only)"


@pytest.mark.parametrize("topic", ["nan", "NaN", "inf", "-Infinity", "info", "nancy", "qnan", "1.#INF", "1#IND"])
def test_topic_ids_perl_reads_as_inf_or_nan_are_refused(tmp_path, topic):
    q = tmp_path / "q"
    q.write_text(f"1 0 a 1 1\n{topic} 0 b 1 1\n")
    with pytest.raises(InputError) as e:
        tio.read_qrels(q)
    assert one_line(e.value).startswith(f"{q}:2: topic id {topic!r} reads as Inf or NaN")


def test_run_topics_perl_reads_as_nan_do_not_disturb_the_order(tmp_path):
    q, r = tmp_path / "q", tmp_path / "r"
    q.write_text("10 0 a 1 1\n9 0 b 1 1\n12abc 0 c 1 1\n")
    r.write_text("nan Q0 a 1 1 t\n10 Q0 a 1 1 t\n9 Q0 b 1 1 t\n12abc Q0 c 1 1 t\ninf Q0 d 1 1 t\n")
    ev = evaluate(q, r)
    assert list(ev.per_topic.index) == ["9", "10", "12abc"] and ev.ignored_topics == ["inf", "nan"]


PERL = shutil.which("perl")


@pytest.mark.skipif(PERL is None, reason="needs perl")
@settings(max_examples=40, deadline=None)
@given(
    ids=st.lists(
        st.text(alphabet="0123456789.eE+-_#xinfaqsdINFAQSD１", min_size=1, max_size=12), min_size=1, max_size=40
    )
)
def test_numeric_topic_order_is_perls(ids):
    """Perl's `<=>` reads the leading number of an id; the ids it reads as Inf/NaN by name are refused."""
    script = (
        'no warnings; binmode STDOUT; while (<STDIN>) { chomp; my $v = 0 + $_; printf("%s\\n", '
        '$v != $v ? "nan" : $v == 9**9**9 ? "inf" : $v == -9**9**9 ? "-inf" : sprintf("%.17g", $v)) }'
    )
    out = subprocess.run(
        [PERL, "-e", script], input="".join(f"{s}\n" for s in ids).encode(), capture_output=True, check=True
    )
    for s, perl in zip(ids, out.stdout.decode().split("\n")):
        if tio._PERL_INF_NAN.match(s):
            assert perl in ("inf", "-inf", "nan"), s
        else:
            assert _numeric_key(s)[0] == float(perl), s


# ------------------------------------------------------------------------------------------- 8. Ctrl-C


def test_keyboard_interrupt_is_one_line(monkeypatch, capsys):
    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr("trec_eval_compat.__main__.evaluate", interrupted)
    sample = DATA / "sample_eval"
    assert tec_main([str(sample / "tiny.qrels"), str(sample / "tiny.run")]) == 130
    assert capsys.readouterr().err == "trec_eval_compat: interrupted\n"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs a FIFO")
def test_sigint_exits_130_with_one_line(tmp_path):
    fifo = tmp_path / "run"
    os.mkfifo(fifo)
    p = subprocess.Popen(
        [sys.executable, "-m", "trec_eval_compat", str(DATA / "sample_eval" / "tiny.qrels"), str(fifo)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while True:  # opening the writing end succeeds once the evaluator is reading the run
        try:
            writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError:
            assert p.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    try:
        time.sleep(0.2)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        os.close(writer)
    assert p.returncode == 130 and out == b"" and err == b"trec_eval_compat: interrupted\n"


@pytest.mark.parametrize("topic", ["166١", "166²", "1６６1"])
def test_trec_topic_ids_with_other_digits_are_not_topic_numbers(tmp_path, topic):
    from trec_eval_compat.ids import nist_topic_num

    with pytest.raises(ValueError, match="is not '1' followed by a topic number"):
        nist_topic_num(topic)
    (tmp_path / "r.trec").write_text(f"{topic} Q0 shot00001_1 1 1.0 t\n", encoding="utf-8")
    from avs.formats.runs import read_run

    with pytest.raises(InputError, match=r"r.trec:1: topic id .* is not '1' followed by a topic number"):
        read_run(tmp_path / "r.trec")
