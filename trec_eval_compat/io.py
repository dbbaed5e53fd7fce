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
    """Yield ``(line_number, tokens)`` for non-blank lines; binary or non-UTF-8 content is an error."""
    n = 0
    try:
        with open_text(path) as f:
            for n, line in enumerate(f, 1):
                if "\x00" in line:
                    raise InputError(path, "binary data (NUL byte), not a text file", line=n)
                toks = line.split()
                if toks:
                    yield n, toks
    except UnicodeDecodeError:
        raise InputError(path, "not UTF-8 text (binary file?)", line=n + 1) from None
    except (OSError, EOFError) as e:  # truncated or corrupt gzip
        raise InputError(path, f"cannot read: {e}", line=n + 1 if n else None) from None


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


def read_run(path: str | os.PathLike) -> list[RunLine]:
    """Read a TREC 6-column run ``topic Q0 shot rank score tag`` in file order."""
    out: list[RunLine] = []
    append = out.append
    for n, toks in iter_lines(path):
        if len(toks) != 6:
            raise InputError(path, f"expected 6 columns (topic Q0 shot rank score tag), found {len(toks)}",
                             line=n)
        try:
            score = float(toks[4])
        except ValueError:
            raise InputError(path, f"score {toks[4]!r} is not a number", line=n) from None
        if score != score:
            raise InputError(path, "score is NaN", line=n)
        append(RunLine(toks[0], toks[1], toks[2], toks[3], score, toks[5], n))
    if not out:
        raise InputError(path, "no run lines (empty file)")
    return out
