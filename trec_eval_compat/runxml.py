"""Reader for NIST's AVS run submission XML (``videoAdhocSearchResults``), streamed and safe.

Layout (trecvid-formats §4)::

    <videoAdhocSearchResults>
      <videoAdhocSearchRunResult trType=.. class=.. [task=.. novelty=..] pid=.. priority=.. desc=..>
        <videoAdhocSearchTopicResult tNum="661" elapsedTime="30">
          <item seqNum="1" shotId="shot00001_1" [any explainability attributes]/>

The reader keeps what the file says (attribute values as text, ``None`` where a required one is missing) and
notes structural faults, and numbers not in ASCII digits, in ``XmlRun.faults`` instead of stopping, so a validator
can report all of them; callers that need a usable run call ``XmlRun.raise_first_fault()``. Only a file that is
not well-formed XML, declares entities or has another root element raises at once.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import IO

from . import xmlsafe
from .errors import InputError
from .ids import DEFAULT_PREFIX, eval_topic_id
from .io import RunLine, open_binary

ROOT = "videoAdhocSearchResults"
RUN = "videoAdhocSearchRunResult"
TOPIC = "videoAdhocSearchTopicResult"
ITEM = "item"

# The element each element must sit in; anything else is a structural fault.
_PARENT = {RUN: ROOT, TOPIC: RUN, ITEM: TOPIC}
_REQUIRED = {TOPIC: ("tNum", "elapsedTime"), ITEM: ("seqNum", "shotId")}
# Numbers in these formats are ASCII digits; Python's int() and float() would also read '١' and '１２'.
_NUMBERS = ("tNum", "elapsedTime", "seqNum")

_NIST_DTD_URL = re.compile(r"/tv(20\d\d)/dtds/")

# LAFF/sea's XML -> sample_eval converters give seqNum s the score 9999 - (s - 1): strictly decreasing,
# so the evaluator's score order is the submitted order.
TOP_SCORE = 9999


@dataclass
class XmlItem:
    seq: str | None  # seqNum as written
    shot: str | None
    line: int | None
    extra: dict[str, str] = field(default_factory=dict)  # any attribute besides seqNum/shotId, in file order


@dataclass
class XmlTopic:
    tnum: str | None
    elapsed: str | None
    line: int | None
    items: list[XmlItem] = field(default_factory=list)


@dataclass
class XmlRun:
    path: str | None
    attrs: dict[str, str]  # of videoAdhocSearchRunResult, in file order
    topics: list[XmlTopic]
    doctype: str  # the DOCTYPE line as written, "" when there is none
    system_url: str | None
    line: int | None  # of videoAdhocSearchRunResult
    faults: list[tuple[int | None, str]] = field(default_factory=list)

    @property
    def year(self) -> int | None:
        """The year named by a NIST DTD URL (``.../tv2021/dtds/...`` -> 2021)."""
        m = _NIST_DTD_URL.search(self.system_url or "")
        return int(m.group(1)) if m else None

    def raise_first_fault(self) -> None:
        if self.faults:
            line, problem = self.faults[0]
            raise InputError(self.path, problem, line=line)


def read_xml(source: str | os.PathLike | IO[bytes], path=None) -> XmlRun:
    """Stream a run XML file (``.gz`` is unpacked) into an ``XmlRun``; memory stays at one topic's items."""
    path = path if path is not None else source
    if isinstance(source, (str, os.PathLike)):
        with open_binary(source) as stream:
            return _read(stream, path)
    return _read(source, path)


def _read(stream: IO[bytes], path) -> XmlRun:
    run = XmlRun(os.fspath(path) if isinstance(path, (str, os.PathLike)) else None, {}, [], "", None, None)
    stack: list[str] = []
    skip = 0  # depth inside an unexpected element, whose content is not looked at
    try:
        for event, el in xmlsafe.iterparse(stream, path):
            if event == "start":
                name = xmlsafe.localname(el)
                if not stack:
                    _start_root(run, el, name)
                elif skip:
                    skip += 1
                elif _PARENT.get(name) != stack[-1]:
                    run.faults.append((el.sourceline, f"unexpected <{name}> inside <{stack[-1]}>"))
                    skip = 1
                else:
                    _start(run, el, name)
                stack.append(name)
                continue
            stack.pop()
            if skip:
                skip -= 1
            # Items are copied out at their start; dropping finished elements keeps memory flat.
            if len(stack) <= 3:
                el.clear(keep_tail=True)
                parent = el.getparent()
                if parent is not None:
                    while el.getprevious() is not None:
                        del parent[0]
    except (OSError, EOFError) as e:  # truncated or corrupt gzip
        raise InputError(path, f"cannot read: {e}") from None
    if run.line is None:
        run.faults.append((None, f"no <{RUN}> element"))
    return run


def _start_root(run: XmlRun, el, name: str) -> None:
    info = el.getroottree().docinfo
    run.doctype = info.doctype or ""
    run.system_url = info.system_url
    if name != ROOT:
        raise InputError(run.path, f"root element is <{name}>, not <{ROOT}>: not an AVS run file", line=el.sourceline)


def _start(run: XmlRun, el, name: str) -> None:
    line = el.sourceline
    attrs = {k.rsplit("}", 1)[-1]: v for k, v in el.attrib.items()}
    for a in _REQUIRED.get(name, ()):
        if a not in attrs:
            run.faults.append((line, f"<{name}> has no {a} attribute"))
        elif a in _NUMBERS and not attrs[a].isascii():
            run.faults.append((line, f"{a} {xmlsafe.shown(attrs[a])} is not a number (ASCII digits only)"))
    if name == RUN:
        if run.line is not None:
            run.faults.append((line, f"a second <{RUN}>: one run per file"))
        run.line = line
        run.attrs = attrs
    elif name == TOPIC:
        run.topics.append(XmlTopic(attrs.get("tNum"), attrs.get("elapsedTime"), line))
    else:
        seq, shot = attrs.pop("seqNum", None), attrs.pop("shotId", None)
        run.topics[-1].items.append(XmlItem(seq, shot, line, attrs))


def xml_run_lines(path: str | os.PathLike, prefix: str = DEFAULT_PREFIX) -> list[RunLine]:
    """A run XML file as TREC run lines, the way sample_eval's public converters turn it into its input:
    topic = ``prefix`` + tNum, rank = seqNum, score = 9999 - (seqNum - 1), tag = pid."""
    run = read_xml(path)
    run.raise_first_fault()
    tag = run.attrs.get("pid") or "-"
    out: list[RunLine] = []
    for t in run.topics:
        if not t.tnum.isdigit():
            raise InputError(path, f"tNum {xmlsafe.shown(t.tnum)} is not a topic number", line=t.line)
        topic = eval_topic_id(t.tnum, prefix)
        for it in t.items:
            seq = seq_number(it, path)
            out.append(RunLine(topic, "Q0", it.shot, str(seq), float(TOP_SCORE - (seq - 1)), tag, it.line))
    return out


def seq_number(item: XmlItem, path=None) -> int:
    """``item``'s seqNum as an integer; ``InputError`` when it is not one."""
    s = (item.seq or "").strip()
    if not (s.isascii() and s.isdigit()):
        raise InputError(path, f"seqNum {xmlsafe.shown(item.seq)} is not a positive integer", line=item.line)
    return int(s)
