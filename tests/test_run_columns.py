"""The columnar TREC run reader and grouping that evaluation uses at scale, held to the line-by-line reader
(``read_run_lines``) and to a plain dictionary implementation of sample_eval.pl's ranking."""

import random

import numpy as np
import pytest

from trec_eval_compat import InputError
from trec_eval_compat import io as tio
from trec_eval_compat.evaluate import group_run
from trec_eval_compat.xinfap import MAX_RESULTS


def reference_ranking(lines: list[tio.RunLine]) -> dict[str, tuple[list[str], int]]:
    """sample_eval.pl's reading in the plainest form: the last line of a (topic, shot) wins, then score
    descending, ties by shot id descending, 1000 kept."""
    scores: dict[str, dict[str, float]] = {}
    counts: dict[str, int] = {}
    for ln in lines:
        scores.setdefault(ln.topic, {})[ln.shot] = ln.score
        counts[ln.topic] = counts.get(ln.topic, 0) + 1
    return {
        t: ([s for s, _ in sorted(per.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)[:MAX_RESULTS]], counts[t])
        for t, per in scores.items()
    }


def messy_run(rnd: random.Random, n: int, ascii: bool = False) -> str:
    """Duplicates, ties, long (and non-ASCII) ids, odd ASCII white space, blank lines, topics coming back."""
    out = []
    shots = [f"shot{rnd.randint(1, 40):05d}_{rnd.randint(1, 30)}" for _ in range(300)]
    shots += ["shot" + "9" * 80 + "_1", "shot" + "9" * 80 + "_2", "x"] + ([] if ascii else ["shot00001_é"])
    for i in range(n):
        topic = rnd.choice(["1661", "1662", "1663", "01661"])
        score = rnd.choice(["1", "2.5", "-0", "0", "1e3", "inf", "-inf", f"{rnd.random():.2f}", "+.5"])
        sep = rnd.choice([" ", "\t", " \x0b", "\x0c "])
        line = sep.join([topic, "Q0", rnd.choice(shots), str(i), score, "tag_1"])
        out.append(line + rnd.choice(["\n", "\r\n", "\n\n", " \n"]))
    return "".join(out)


@pytest.mark.parametrize("block", [64, 1000, 1 << 23])
@pytest.mark.parametrize("seed,ascii", [(1, True), (2, False), (3, False)])
def test_columns_and_grouping_match_the_line_reader(tmp_path, monkeypatch, seed, ascii, block):
    monkeypatch.setattr(tio, "BLOCK_BYTES", block)  # many blocks: ASCII ones in bulk, the others line by line
    bulk = []
    fast = tio._fast_run_block
    monkeypatch.setattr(tio, "_fast_run_block", lambda *a: bulk.append(fast(*a)) or bulk[-1])
    p = tmp_path / "run"
    p.write_text(messy_run(random.Random(seed), 3000 if block > 64 else 600, ascii), encoding="utf-8")
    lines = tio.read_run_lines(p)
    cols = tio.read_run_columns(p)
    read_in_bulk = [b is not None for b in bulk]
    assert all(read_in_bulk) if ascii else not all(read_in_bulk) and (block > 64 or any(read_in_bulk))
    assert cols.topics == list(dict.fromkeys(ln.topic for ln in lines))
    assert [cols.topics[c] for c in cols.topic.tolist()] == [ln.topic for ln in lines]
    assert cols.shots(np.arange(len(cols))) == [ln.shot for ln in lines]
    assert cols.score.tolist() == [ln.score for ln in lines]
    assert cols.line.tolist() == [ln.line for ln in lines]
    assert group_run(cols) == reference_ranking(lines)


def test_long_lists_keep_the_last_score_and_break_ties_by_shot(tmp_path):
    rnd = random.Random(7)
    text = "".join(
        f"1 Q0 shot{rnd.randint(1, 3000):05d}_{rnd.randint(1, 5)} {i} {rnd.randint(0, 50)} t\n" for i in range(40_000)
    )  # ~12 k distinct shots, 51 score values: the 1000th best is a tie
    (tmp_path / "r").write_text(text)
    ranked, n = group_run(tio.read_run_columns(tmp_path / "r"))["1"]
    assert n == 40_000 and len(ranked) == MAX_RESULTS
    assert (ranked, n) == reference_ranking(tio.read_run_lines(tmp_path / "r"))["1"]


def test_hash_collisions_fall_back_to_exact_grouping(tmp_path, monkeypatch):
    p = tmp_path / "run"
    p.write_text(messy_run(random.Random(4), 2000))
    monkeypatch.setattr(tio, "_hash", lambda shots: np.zeros(len(shots), np.uint64))  # every id collides
    assert group_run(tio.read_run_columns(p)) == reference_ranking(tio.read_run_lines(p))


def test_hash_does_not_depend_on_the_block_width():
    narrow = np.array([b"shot1_1", b"shot00002_3"])
    wide = np.array([b"shot1_1", b"shot00002_3", b"shot00001_1234567"])
    assert tio._hash(narrow).tolist() == tio._hash(wide)[:2].tolist()
    assert len(set(tio._hash(wide).tolist())) == 3
    long_ids = np.array([b"s" * 70 + b"a", b"s" * 70 + b"b"], dtype=object)
    assert tio._hash(long_ids)[0] == tio._hash(long_ids)[1]  # only the first 64 bytes: group_run checks


TRICKY_SCORES = [
    "1",
    "-0",
    "0e0",
    ".5",
    "5.",
    "+.5e+3",
    "1e400",
    "-1e400",
    "1.5e-400",
    "1e-320",
    "inf",
    "-Infinity",
    "iNF",
    "0.1234567890123456789",
    "4.9406564584124654e-324",
    "2.4703282292062328e-324",
    "9007199254740993",
    "1.7976931348623157e308",
    "1.7976931348623159e308",
]


def test_bulk_score_parsing_is_pythons_float(tmp_path):
    """ASCII blocks parse scores with numpy's bytes-to-float cast: it must give float()'s value, bit for bit."""
    parsed = np.array([s.encode() for s in TRICKY_SCORES]).astype(np.float64)
    assert [v.hex() for v in parsed.tolist()] == [float(s).hex() for s in TRICKY_SCORES]
    p = tmp_path / "r"
    p.write_text("".join(f"1 Q0 shot1_{i} 1 {s} t\n" for i, s in enumerate(TRICKY_SCORES)))
    assert tio.read_run_columns(p).score.tolist() == [ln.score for ln in tio.read_run_lines(p)]


@pytest.mark.parametrize(
    "bad,message",
    [
        ("1 Q0 a 1 2", ":{n}: expected 6 columns (topic Q0 shot rank score tag), found 5"),
        ("1 Q0 a 1 2 t x", ":{n}: expected 6 columns (topic Q0 shot rank score tag), found 7"),
        ("1 Q0 a 1 high t", ":{n}: score 'high' is not a number"),
        ("1 Q0 a 1 1_000 t", ":{n}: score '1_000' is not a number"),
        ("1 Q0 a 1 nan t", ":{n}: score is NaN"),
        ("1 Q0 a 1 -NaN t", ":{n}: score is NaN"),
        ("1 Q0 a\x00 1 2 t", ":{n}: binary data (NUL byte), not a text file"),
    ],
)
@pytest.mark.parametrize("block", [100, 1 << 23])
def test_errors_name_the_line_in_any_block(tmp_path, monkeypatch, bad, message, block):
    monkeypatch.setattr(tio, "BLOCK_BYTES", block)
    good = [f"1 Q0 shot1_{i} {i} {i / 7} t" for i in range(500)]
    p = tmp_path / "r"
    p.write_text("\n".join(good[:321] + [bad] + good[321:]) + "\n")
    with pytest.raises(InputError) as e:
        tio.read_run_columns(p)
    assert str(e.value) == f"{p}" + message.format(n=322)


def test_not_utf8_names_the_line(tmp_path, monkeypatch):
    monkeypatch.setattr(tio, "BLOCK_BYTES", 100)
    p = tmp_path / "r"
    p.write_bytes(b"".join(f"1 Q0 shot1_{i} {i} 1 t\n".encode() for i in range(50)) + b"1 Q0 sh\xffot 1 1 t\n")
    with pytest.raises(InputError, match=r":51: not UTF-8 text"):
        tio.read_run_columns(p)


@pytest.mark.parametrize("text", ["", "\n \n\t\n"])
def test_empty_run(tmp_path, text):
    (tmp_path / "r").write_text(text)
    with pytest.raises(InputError, match="no run lines"):
        tio.read_run_columns(tmp_path / "r")


def test_strict_names_the_first_repeated_line(tmp_path, monkeypatch):
    monkeypatch.setattr(tio, "BLOCK_BYTES", 64)
    lines = [f"1 Q0 shot1_{i} {i} 1 t" for i in range(40)]
    lines[30] = "1 Q0 shot1_3 30 1 t"  # repeats line 4
    lines[35] = "1 Q0 shot1_0 35 1 t"  # repeats line 1, later in the file
    (tmp_path / "r").write_text("\n".join(lines) + "\n")
    cols = tio.read_run_columns(tmp_path / "r")
    with pytest.raises(InputError, match=r"r:31: topic 1: shot shot1_3 appears twice \(strict mode\)"):
        group_run(cols, strict=True)
    assert group_run(cols)["1"][1] == 40
