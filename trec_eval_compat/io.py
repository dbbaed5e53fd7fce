"""Readers for qrels and TREC runs: line by line, every malformed line an error naming file and line.

sample_eval.pl reads each file as one whitespace-separated token stream, so a missing or extra column
silently shifts every later record. These readers parse per line instead and refuse such files; on every
well-formed file they see exactly the records the Perl script sees.
"""

from __future__ import annotations

import gzip
import io
import os
from pathlib import Path
from typing import IO, Iterator, NamedTuple

from .errors import InputError


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


def open_binary(path: str | os.PathLike) -> IO[bytes]:
    """Open a file for reading bytes, gunzipping gzip data (by magic bytes, whatever the name)."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            magic = f.read(2)
        return gzip.open(p, "rb") if magic == b"\x1f\x8b" else open(p, "rb")
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


def iter_lines(path: str | os.PathLike) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line_number, tokens)`` for non-blank lines; binary or non-UTF-8 content is an error.

    Qrels and TREC runs are at most a few MB, so the file is read whole: one decode and one NUL check.
    """
    try:
        with open_binary(path) as f:
            data = f.read()
    except (OSError, EOFError) as e:  # truncated or corrupt gzip
        raise InputError(path, f"cannot read: {e}") from None
    nul = data.find(b"\x00")
    if nul >= 0:
        raise InputError(path, "binary data (NUL byte), not a text file", line=data.count(b"\n", 0, nul) + 1)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(path, "not UTF-8 text (binary file?)", line=data.count(b"\n", 0, e.start) + 1) from None
    for n, line in enumerate(text.split("\n"), 1):
        toks = line.split()
        if toks:
            yield n, toks


def _int(tok: str, path, n: int, what: str) -> int:
    try:
        return int(tok)
    except ValueError:
        raise InputError(path, f"{what} {tok!r} is not an integer", line=n) from None


def read_qrels(path: str | os.PathLike) -> list[Qrel]:
    """Read qrels: NIST's 5 columns ``topic iter shot stratum judgment`` or trec_eval's 4 columns
    ``topic iter shot judgment`` (one stratum, named ``1``). All lines must have the same width."""
    out: list[Qrel] = []
    width = None
    for n, toks in iter_lines(path):
        if width is None:
            if len(toks) not in (4, 5):
                raise InputError(path, f"expected 5 columns (topic iter shot stratum judgment) or 4 "
                                       f"(topic iter shot judgment), found {len(toks)}", line=n)
            width = len(toks)
        elif len(toks) != width:
            raise InputError(path, f"expected {width} columns like line 1, found {len(toks)}", line=n)
        judgment = _int(toks[-1], path, n, "judgment")
        if judgment < -1:
            raise InputError(path, f"unknown judgment {judgment} (use -1 unsampled, 0 non-relevant, "
                                   f">0 relevant)", line=n)
        out.append(Qrel(toks[0], toks[2], toks[3] if width == 5 else "1", judgment))
    if not out:
        raise InputError(path, "no qrels (empty file)")
    return out


def iter_run(path: str | os.PathLike) -> Iterator[tuple[int, list[str], float]]:
    """Yield ``(line_number, tokens, score)`` for each line of a TREC 6-column run, validated."""
    for n, toks in iter_lines(path):
        if len(toks) != 6:
            raise InputError(path, f"expected 6 columns (topic Q0 shot rank score tag), found {len(toks)}",
                             line=n)
        raw = toks[4]
        try:
            score = float(raw)
        except ValueError:
            score = None
        if score is None or "_" in raw:  # Python accepts 1_000; Perl would read it as 1
            raise InputError(path, f"score {raw!r} is not a number", line=n)
        if score != score:
            raise InputError(path, "score is NaN", line=n)
        yield n, toks, score


def read_run(path: str | os.PathLike) -> list[RunLine]:
    """Read a TREC 6-column run ``topic Q0 shot rank score tag`` in file order."""
    out = [RunLine(t[0], t[1], t[2], t[3], score, t[5], n) for n, t, score in iter_run(path)]
    if not out:
        raise InputError(path, "no run lines (empty file)")
    return out
