"""Readers for qrels and TREC runs: every malformed line an error naming file and line.

sample_eval.pl reads each file as one whitespace-separated token stream, so a missing or extra column
silently shifts every later record. These readers parse per line instead and refuse such files; on every
well-formed file they see exactly the records the Perl script sees.

Files are read in blocks of whole lines, so memory does not grow with the file. ``read_run_columns``, what
evaluation uses, parses a plain ASCII block with array operations (a 10 M-line run in seconds) and hands any
other block, or one with a line to report, to the line-by-line reader, whose rules it therefore shares.
"""

from __future__ import annotations

import gzip
import io
import itertools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterable, Iterator, NamedTuple

import numpy as np

from .errors import InputError

BLOCK_BYTES = 1 << 23  # large enough for array operations to pay off; a block's temporaries stay a few tens of MB
# Gzip input may expand to GUNZIP_RATIO times the file's size, and to at least GUNZIP_FREE_BYTES, but never past
# GUNZIP_MAX_BYTES. Real runs and qrels are under 1 GB and gzip 3-10:1 (a run repeating one line 500:1);
# deflate tops out near 1032:1, so a file expanding 100 times and beyond 64 MiB is built to exhaust memory.
GUNZIP_RATIO = 100
GUNZIP_FREE_BYTES = 1 << 26
GUNZIP_MAX_BYTES = 1 << 32
# A judgment as sample_eval.pl reads it; int() would also take '1_0' (Perl: 1) and '１' (Perl: 0)
_JUDGMENT = re.compile(r"-?[0-9]+")
# What Perl reads as Inf or NaN, whose `<=>` order of topics is then arbitrary (NaN equals everything)
_PERL_INF_NAN = re.compile(r"[+-]?(?:inf|nan|[qs]nan|1\.?#(?:inf|ind|qnan|snan))", re.IGNORECASE)


class Qrel(NamedTuple):
    topic: str
    shot: str
    stratum: str
    judgment: int  # > 0 relevant (the gain), 0 judged non-relevant, -1 pooled but not sampled


class RunLine(NamedTuple):
    topic: str
    q0: str
    shot: str
    rank: str
    score: float
    tag: str
    line: int


class _BoundedGunzip(io.RawIOBase):
    """A gzip stream that stops with an ``InputError`` once it has given ``limit`` bytes."""

    def __init__(self, gz: gzip.GzipFile, path, limit: int, why: str):
        self._gz, self._path, self._limit, self._why = gz, path, limit, why
        self._given = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        n = self._gz.readinto(buf)
        self._given += n
        if self._given > self._limit:
            raise InputError(
                self._path,
                f"gzip data expands past {self._limit:,} bytes, {self._why}: refused as a decompression bomb",
            )
        return n

    def close(self) -> None:
        self._gz.close()
        super().close()


def open_binary(path: str | os.PathLike) -> IO[bytes]:
    """Open a file for reading bytes, gunzipping gzip data (by magic bytes, whatever the name) up to the
    ``GUNZIP_*`` limits."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            magic = f.read(2)
            size = os.fstat(f.fileno()).st_size
        if magic != b"\x1f\x8b":
            return open(p, "rb")
        limit = max(GUNZIP_FREE_BYTES, GUNZIP_RATIO * size)
        why = f"over {GUNZIP_RATIO} times the file's size"
        if limit > GUNZIP_MAX_BYTES:
            limit, why = GUNZIP_MAX_BYTES, "more than any run or qrels file holds"
        return io.BufferedReader(_BoundedGunzip(gzip.open(p, "rb"), path, limit, why))
    except OSError as e:
        raise InputError(path, e.strerror or str(e)) from None


def open_text(path: str | os.PathLike) -> io.TextIOBase:
    """Open a UTF-8 text file for reading, gunzipping as ``open_binary`` does."""
    return io.TextIOWrapper(open_binary(path), encoding="utf-8", errors="strict", newline=None)


def looks_like_xml(path: str | os.PathLike) -> bool:
    """True when the (decompressed) content starts with ``<`` after an optional BOM and white space."""
    try:
        with open_binary(path) as f:
            head = f.read(256)
    except (OSError, EOFError) as e:
        raise InputError(path, f"cannot read: {e}") from None
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<")


def iter_blocks(path: str | os.PathLike) -> Iterator[tuple[int, bytes]]:
    """Yield ``(first_line_number, block)``: the file's bytes in blocks of whole lines (about ``BLOCK_BYTES``
    each), so that memory stays flat however long the file. A NUL byte (a binary file) is an error."""
    with open_binary(path) as f:
        first, pending = 1, bytearray()
        while True:
            try:
                chunk = f.read(BLOCK_BYTES)
            except (OSError, EOFError) as e:  # truncated or corrupt gzip
                raise InputError(path, f"cannot read: {e}") from None
            nul = chunk.find(b"\x00")
            if nul >= 0:
                line = first + pending.count(b"\n") + chunk.count(b"\n", 0, nul)
                raise InputError(path, "binary data (NUL byte), not a text file", line=line)
            pending += chunk
            cut = len(pending) if not chunk else pending.rfind(b"\n") + 1
            if cut:
                block = bytes(pending[:cut])
                del pending[:cut]
                yield first, block
                first += block.count(b"\n")
            if not chunk:
                return


def _decode(block: bytes, first: int, path) -> str:
    try:
        return block.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(path, "not UTF-8 text (binary file?)", line=first + block.count(b"\n", 0, e.start)) from None


def _block_lines(block: bytes, first: int, path) -> Iterator[tuple[int, list[str]]]:
    for n, line in enumerate(_decode(block, first, path).split("\n"), first):
        toks = line.split()
        if toks:
            yield n, toks


def iter_lines(path: str | os.PathLike) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line_number, tokens)`` for non-blank lines; binary or non-UTF-8 content is an error."""
    for first, block in iter_blocks(path):
        yield from _block_lines(block, first, path)


def _int(tok: str, path, n: int, what: str) -> int:
    if not _JUDGMENT.fullmatch(tok):
        raise InputError(path, f"{what} {tok!r} is not an integer", line=n)
    return int(tok)


def read_qrels(path: str | os.PathLike) -> list[Qrel]:
    """Read qrels: NIST's 5 columns ``topic iter shot stratum judgment`` or trec_eval's 4 columns
    ``topic iter shot judgment`` (one stratum, named ``1``). All lines must have the same width."""
    return [Qrel(*row) for row in iter_qrels(path)]


def iter_qrels(path: str | os.PathLike) -> Iterator[tuple[str, str, str, int]]:
    """:func:`read_qrels`'s rows as plain ``(topic, shot, stratum, judgment)`` tuples, as they are read (the
    evaluator groups them as they come: no list of 100,000 named tuples in between)."""
    width = None
    # a file has a handful of distinct judgment spellings and topic ids: each is checked once, not once a line
    judgments: dict[str, int] = {}
    topics: set[str] = set()
    for n, toks in iter_lines(path):
        if len(toks) != width:
            if width is not None:
                raise InputError(path, f"expected {width} columns like line 1, found {len(toks)}", line=n)
            if len(toks) not in (4, 5):
                raise InputError(
                    path,
                    f"expected 5 columns (topic iter shot stratum judgment) or 4 "
                    f"(topic iter shot judgment), found {len(toks)}",
                    line=n,
                )
            width = len(toks)
        judgment = judgments.get(toks[-1])
        if judgment is None:
            judgment = judgments[toks[-1]] = _judgment(toks[-1], path, n)
        if toks[0] not in topics:
            _check_topic(toks[0], path, n)
            topics.add(toks[0])
        yield toks[0], toks[2], toks[3] if width == 5 else "1", judgment
    if width is None:
        raise InputError(path, "no qrels (empty file)")


def _judgment(tok: str, path, n: int) -> int:
    judgment = _int(tok, path, n, "judgment")
    if judgment < -1:
        raise InputError(path, f"unknown judgment {judgment} (use -1 unsampled, 0 non-relevant, >0 relevant)", line=n)
    if judgment > 0 and tok != str(judgment):
        raise InputError(
            path,
            f"judgment {tok!r}: write it {judgment} (sample_eval.pl keys grades "
            f"by their spelling, so {tok!r} would be another grade)",
            line=n,
        )
    return judgment


def _check_topic(topic: str, path, n: int) -> None:
    if _PERL_INF_NAN.match(topic):
        raise InputError(
            path,
            f"topic id {topic!r} reads as Inf or NaN in sample_eval.pl's numeric topic order: not a topic id",
            line=n,
        )


def _checked_run_lines(lines: Iterable[tuple[int, list[str]]], path) -> Iterator[tuple[int, list[str], float]]:
    for n, toks in lines:
        if len(toks) != 6:
            raise InputError(path, f"expected 6 columns (topic Q0 shot rank score tag), found {len(toks)}", line=n)
        raw = toks[4]
        try:
            score = float(raw)
        except ValueError:
            score = None
        # Python accepts 1_000 and '１２'; Perl would read them as 1 and 0
        if score is None or "_" in raw or not raw.isascii():
            hint = "" if raw.isascii() else " (ASCII digits only)"
            raise InputError(path, f"score {raw!r} is not a number{hint}", line=n)
        if score != score:
            raise InputError(path, "score is NaN", line=n)
        yield n, toks, score


def iter_run(path: str | os.PathLike) -> Iterator[tuple[int, list[str], float]]:
    """Yield ``(line_number, tokens, score)`` for each line of a TREC 6-column run, validated."""
    return _checked_run_lines(iter_lines(path), path)


def read_run_lines(path: str | os.PathLike) -> list[RunLine]:
    """Read a TREC 6-column run ``topic Q0 shot rank score tag`` in file order."""
    out = [RunLine(t[0], t[1], t[2], t[3], score, t[5], n) for n, t, score in iter_run(path)]
    if not out:
        raise InputError(path, "no run lines (empty file)")
    return out


@dataclass
class RunColumns:
    """What evaluation reads of a run, as columns with one row per run line in file order.

    ``topic`` indexes ``topics`` (ids in order of first appearance); ``shot`` holds UTF-8 bytes (numpy ``S``,
    or ``object`` when an id is very long); ``key`` is a hash of (topic, shot) that groups rows naming the same
    pair (equal pairs always hash alike; unequal ones almost never, and ``group`` checks).
    """

    topics: list[str]
    topic: np.ndarray  # int32
    shot: np.ndarray
    score: np.ndarray  # float64
    line: np.ndarray  # int64
    key: np.ndarray  # uint64
    path: str | None = None

    def __len__(self) -> int:
        return len(self.score)

    @classmethod
    def from_records(cls, records: Iterable[tuple[str, str, float, int]], path=None) -> "RunColumns":
        """Columns of ``(topic, shot, score, line)`` records (an XML run's items, lines already read)."""
        build = _ColumnBuilder()
        rows = iter(records)
        while batch := list(itertools.islice(rows, 1 << 16)):
            topics, shots, scores, lines = zip(*batch)
            build.add(
                _fixed(topics),
                _fixed([s.encode() for s in shots]),
                np.array(scores, np.float64),
                np.array(lines, np.int64),
            )
        return build.finish(path)

    def shots(self, rows: np.ndarray) -> list[str]:
        return [s.decode() for s in self.shot[rows].tolist()]

    def rows_by_topic(self, rows: np.ndarray | None = None) -> list[np.ndarray]:
        """``rows`` (default: all, in file order) split by topic, one array per entry of ``topics``."""
        rows = np.arange(len(self)) if rows is None else rows
        codes = self.topic[rows]
        return np.split(
            rows[np.argsort(codes, kind="stable")], np.cumsum(np.bincount(codes, minlength=len(self.topics)))[:-1]
        )


class _ColumnBuilder:
    """Appends blocks of rows; topic ids are numbered in order of first appearance."""

    def __init__(self):
        self.codes: dict[str, int] = {}
        self.parts: list[tuple[np.ndarray, ...]] = []

    def add(self, topics: np.ndarray, shots: np.ndarray, scores: np.ndarray, lines: np.ndarray) -> None:
        # Runs list a topic's lines together, so coding each stretch of equal ids is enough work.
        starts = np.r_[0, np.flatnonzero(topics[1:] != topics[:-1]) + 1]
        codes = [
            self.codes.setdefault(v if isinstance(v, str) else v.decode(), len(self.codes))
            for v in topics[starts].tolist()
        ]
        code = np.repeat(np.array(codes, np.int32), np.diff(np.r_[starts, len(topics)]))
        key = _hash(shots) ^ (code.astype(np.uint64) * np.uint64(_MIX))
        self.parts.append((code, shots, scores, lines, key))

    def finish(self, path) -> RunColumns:
        if not self.parts:
            raise InputError(path, "no run lines (empty file)")
        columns = [list(col) for col in zip(*self.parts)]
        self.parts = []
        if any(s.dtype == object for s in columns[1]):
            columns[1] = [s.astype(object) for s in columns[1]]
        joined = []
        for parts in columns:  # one column at a time, so that only one is held twice
            joined.append(np.concatenate(parts))
            parts.clear()
        return RunColumns(list(self.codes), *joined, None if path is None else os.fspath(path))


_MAX_FIXED_ID = 64  # longer ids are kept as Python objects rather than padding every row to their width
_MIX = 0x9E3779B97F4A7C15  # odd: spreads topic numbers over the hash bits
# Control bytes that str.split (the line-by-line reader) and bytes.split do not treat alike, and NUL
_ODD_CONTROL = bytes([*range(0, 9), *range(14, 32)])


def _fixed(values) -> np.ndarray:
    """Strings or bytes as a fixed-width numpy array (``object`` when one is longer than _MAX_FIXED_ID)."""
    longest = max(map(len, values))
    if longest > _MAX_FIXED_ID:
        return np.array(values, dtype=object)
    return np.array(values, dtype=f"S{longest}" if isinstance(values[0], bytes) else f"U{longest}")


def _fmix(x: np.ndarray) -> np.ndarray:
    # MurmurHash3's 64-bit finaliser; maps 0 to 0, so the zero padding of a narrower array adds nothing
    x = x ^ (x >> np.uint64(33))
    x = x * np.uint64(0xFF51AFD7ED558CCD)
    x = x ^ (x >> np.uint64(33))
    x = x * np.uint64(0xC4CEB9FE1A85EC53)
    return x ^ (x >> np.uint64(33))


def _hash(shots: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each id's first 64 bytes that does not depend on the array's width, so that equal ids
    hash alike in every block (ids that differ only later collide, which ``group_run`` detects)."""
    if shots.dtype == object:
        shots = np.array([s[:_MAX_FIXED_ID] for s in shots], dtype=f"S{_MAX_FIXED_ID}")
    width = shots.dtype.itemsize
    padded = np.zeros((len(shots), -(-width // 8) * 8), np.uint8)
    padded[:, :width] = shots.view(np.uint8).reshape(len(shots), width)
    words = padded.view("<u8")
    h = np.zeros(len(shots), np.uint64)
    for i in range(words.shape[1]):  # arrays wrap around silently, as a hash should
        h += _fmix(words[:, i]) * np.uint64(_MIX + 2 * i)
    return _fmix(h)


def _column(u: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The tokens ``u[starts[i]:ends[i]]`` as a fixed-width bytes array, gathered without Python objects."""
    lengths = ends - starts
    width = int(lengths.max())
    if width > _MAX_FIXED_ID:
        data = u.tobytes()
        return np.array([data[a:b] for a, b in zip(starts.tolist(), ends.tolist())], dtype=object)
    offsets = np.arange(width)
    chars = u[np.minimum(starts[:, None] + offsets, len(u) - 1)]
    chars[offsets >= lengths[:, None]] = 0
    return chars.view(f"S{width}").ravel()


def _fast_run_block(block: bytes, first: int):
    """``(topics, shots, scores, lines)`` of a block of plain ASCII lines of six columns with a numeric score;
    ``None`` when the block needs the line-by-line reader (other text, or a line it reports)."""
    if not block.isascii() or len(block.translate(None, _ODD_CONTROL)) != len(block):
        return None
    u = np.frombuffer(block, np.uint8)
    space = u <= 32  # only \t \n \v \f \r and space are left below 33
    edge = np.flatnonzero(space[1:] != space[:-1]) + 1  # token starts and ends, alternating
    if not space[0]:
        edge = np.r_[0, edge]
    if not space[-1]:
        edge = np.r_[edge, len(u)]
    starts, ends = edge[0::2], edge[1::2]
    line_start = np.r_[0, np.flatnonzero(u == 10) + 1]
    per_line = np.diff(np.searchsorted(starts, np.r_[line_start, len(u)]))
    if not np.all((per_line == 0) | (per_line == 6)):
        return None
    # every line has six tokens, so token i is column i % 6; a score may not hold "_" (float() allows 1_000)
    if not len(starts) or (np.searchsorted(starts, np.flatnonzero(u == 95), "right") % 6 == 5).any():
        return None
    raw = _column(u, starts[4::6], ends[4::6])
    try:
        scores = raw.astype(np.float64)  # numpy parses bytes with Python's float() (a test holds it to that)
    except ValueError:
        return None
    if np.isnan(scores).any():
        return None
    return (
        _column(u, starts[0::6], ends[0::6]),
        _column(u, starts[2::6], ends[2::6]),
        scores,
        first + np.flatnonzero(per_line),
    )


def read_run_columns(path: str | os.PathLike) -> RunColumns:
    """A TREC 6-column run as ``RunColumns``; same acceptance and errors as ``read_run_lines``, a fraction of its
    time and memory (plain ASCII blocks are parsed with array operations, any other block line by line)."""
    build = _ColumnBuilder()
    for first, block in iter_blocks(path):
        cols = _fast_run_block(block, first)
        if cols is None:
            rows = list(_checked_run_lines(_block_lines(block, first, path), path))
            if not rows:
                continue
            cols = (
                _fixed([t[0] for _, t, _ in rows]),
                _fixed([t[2].encode() for _, t, _ in rows]),
                np.array([s for _, _, s in rows], np.float64),
                np.array([n for n, _, _ in rows], np.int64),
            )
        build.add(*cols)
    return build.finish(path)
