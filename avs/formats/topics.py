"""TRECVID topics: read XML and plain-text topic lists, write the canonical XML, attach category labels.

Two input forms are accepted:

* XML in any TRECVID style: every element with a ``num`` attribute is a topic; its text is the ``text``
  attribute of a ``textDescription`` child, or else the element's own text. Namespaces, encodings declared
  in the prolog and DOCTYPE lines are fine; entity declarations are refused (see ``trec_eval_compat.xmlsafe``).
  A file whose root is ``avsTopics`` (our canonical form, ``topics/avs-topics.dtd``) is also DTD-validated.
* Plain text, one ``NUM<spaces or TAB>text`` per line, as teams pass topic lists around. Blank lines and
  lines starting with ``#`` are skipped. Lists without numbers (the TRECVID 2016-2018 list has 90 bare lines)
  are read with ``number_from``: the first topic gets that number, each next one the next.

Topic numbers are kept as the file writes them (``Topic.written``: ``0661`` stays ``0661`` when shown or
converted) unless ``strip_zeros`` is asked for; ``Topic.num`` is always the number's value.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Iterable, Iterator

from lxml import etree

from avs.errors import InputError
from trec_eval_compat import xmlsafe
from trec_eval_compat.ids import eval_topic_id

LABELS = ("object", "person", "action", "location")
CANONICAL_ROOT = "avsTopics"
DTD_NAME = "avs-topics.dtd"
_SNIFF_BYTES = 1024  # enough to see a BOM or a UTF-16 "<" past leading white space

# NIST topic numbering (trecvid-formats §3.1): (first, last) -> (year, collection, task)
KNOWN_RANGES = (
    ((501, 530), ("2016", "IACC.3", "main")),
    ((531, 560), ("2017", "IACC.3", "main")),
    ((561, 590), ("2018", "IACC.3", "main")),
    ((591, 610), ("2019-2021", "V3C1", "progress")),
    ((611, 640), ("2019", "V3C1", "main")),
    ((641, 660), ("2020", "V3C1", "main")),
    ((661, 680), ("2021", "V3C1", "main")),
    ((701, 730), ("2022", "V3C2", "main")),
)


@dataclass(frozen=True)
class Topic:
    """One AVS query. ``num`` is NIST's topic number (661), not the evaluation id (1661)."""

    num: int
    text: str
    labels: frozenset[str] | None = None  # subset of LABELS; None = not labelled
    written: str | None = field(default=None, compare=False)  # the number as the file spells it

    @property
    def number(self) -> str:
        """The number as written (``0661``), else as a plain integer."""
        return self.written if self.written is not None else str(self.num)

    @property
    def eval_id(self) -> str:
        return eval_topic_id(self.num)

    def has(self, label: str) -> bool | None:
        return None if self.labels is None else label in self.labels


@dataclass
class TopicSet:
    """The topics of one file, in file order, with what the file says about where they come from."""

    topics: list[Topic]
    year: str | None = None
    collection: str | None = None
    task: str | None = None
    path: str | None = field(default=None, compare=False)

    def __iter__(self) -> Iterator[Topic]:
        return iter(self.topics)

    def __len__(self) -> int:
        return len(self.topics)

    def __getitem__(self, i: int) -> Topic:
        return self.topics[i]

    @property
    def nums(self) -> list[int]:
        return [t.num for t in self.topics]


def shipped_dir() -> Path:
    """The folder of topic files installed with the package (``topics/`` in the repository)."""
    return Path(str(resources.files("avs.topicsets")))


def shipped_or(path: str | os.PathLike) -> str | os.PathLike:
    """``path``, or the shipped topic file it names when it is a bare name (``tv20``) and no such file exists."""
    p = Path(path)
    if p.exists() or p.parent != Path(".") or p.suffix not in ("", ".xml"):
        return path
    shipped = shipped_dir() / f"{p.stem}.xml"
    return shipped if shipped.exists() else path


def shipped_labels_path() -> Path:
    return shipped_dir() / "labels.tsv"


def _num(raw: str, path, line: int | None, where: str = "", hint: str = "") -> int:
    s = raw.strip()
    if not (s.isascii() and s.isdigit()):  # int() would also take '١' or '１２'
        hint = hint if s.isascii() else " (ASCII digits only)"
        raise InputError(path, f"{where}topic number {xmlsafe.shown(raw)} is not numeric{hint}", line=line)
    return int(s)


def _text(raw: str | None) -> str:
    return " ".join((raw or "").split())


def _check(topics: list[Topic], lines: list[int | None], path) -> list[Topic]:
    if not topics:
        raise InputError(path, "no topics found")
    seen: dict[int, int | None] = {}
    for t, line in zip(topics, lines):
        if not t.text:
            raise InputError(path, f"topic {t.num} has empty text", line=line)
        xmlsafe.check_xml_text(t.text, path, f"topic {t.num} text", line=line)
        if t.num in seen:
            first = f" (first at line {seen[t.num]})" if seen[t.num] else ""
            raise InputError(path, f"duplicate topic number {t.num}{first}", line=line)
        seen[t.num] = line
    return topics


def parse_text(data: str, path=None, number_from: int | None = None) -> TopicSet:
    """Parse a plain-text topic list: ``NUM<whitespace>text`` per line, or with ``number_from`` one topic text
    a line, numbered from ``number_from`` on."""
    topics, lines = [], []
    # Lines end at a newline only: splitlines() would also end one at a form feed or U+2028 inside a text.
    for i, line in enumerate(data.replace("\r\n", "\n").replace("\r", "\n").split("\n"), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if number_from is not None:
            topics.append(Topic(number_from + len(topics), _text(s)))
        else:
            parts = s.split(None, 1)
            num = _num(parts[0], path, i, hint=" (a list of bare topic texts? number them with --number-from N)")
            topics.append(Topic(num, _text(parts[1] if len(parts) > 1 else ""), written=parts[0]))
        lines.append(i)
    return TopicSet(_check(topics, lines, path), path=None if path is None else os.fspath(path))


def _validate_canonical(tree, path) -> None:
    dtd = etree.DTD(str(shipped_dir() / DTD_NAME))
    if not dtd.validate(tree):
        err = dtd.error_log.filter_from_errors()[0]
        raise InputError(
            path, f"does not validate against {DTD_NAME}: {xmlsafe.one_line(err.message)}", line=err.line or None
        )


def parse_xml(source, path=None) -> TopicSet:
    """Parse a TRECVID-style topic XML document (file path, bytes or file object)."""
    path = path if path is not None else source
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    tree = xmlsafe.parse(source, path)
    root = tree.getroot()
    if xmlsafe.localname(root) == CANONICAL_ROOT:
        _validate_canonical(tree, path)
    topics, lines = [], []
    for el in root.iter():
        if not isinstance(el.tag, str) or el.get("num") is None:
            continue
        num = _num(el.get("num"), path, el.sourceline, where=f"<{xmlsafe.localname(el)}>: ")
        desc = next((c for c in el if xmlsafe.localname(c) == "textDescription"), None)
        text = desc.get("text") if desc is not None and desc.get("text") is not None else "".join(el.itertext())
        topics.append(Topic(num, _text(text), written=el.get("num").strip()))
        lines.append(el.sourceline)
    return TopicSet(
        _check(topics, lines, path),
        year=root.get("year"),
        collection=root.get("collection"),
        task=root.get("task"),
        path=os.fspath(path) if isinstance(path, (str, os.PathLike)) else None,
    )


def read_topics(
    path: str | os.PathLike,
    labels: str | os.PathLike | None | bool = True,
    number_from: int | None = None,
    strip_zeros: bool = False,
) -> TopicSet:
    """Read a topic file, XML or plain text (decided by content, not by extension).

    ``labels``: ``True`` attaches the shipped ``topics/labels.tsv``; a path attaches that file; ``False``/``None``
    attaches none. Topics the label file does not list keep ``labels=None``. ``number_from``: the file is a list
    of bare topic texts, numbered from this number on. ``strip_zeros``: write numbers without leading zeros.
    A bare name of a shipped set (``tv20``, ``tv20.xml``) that is no file here reads the shipped file.
    """
    path = shipped_or(path)
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise InputError(path, e.strerror or str(e)) from None
    if not data.strip():
        raise InputError(path, "file is empty")
    if xmlsafe.starts_like_xml(data[:_SNIFF_BYTES]):
        if number_from is not None:
            raise InputError(path, "an XML topic file carries its own numbers (--number-from is for plain lists)")
        ts = parse_xml(data, path)
        ts.path = os.fspath(path)
    else:
        ts = parse_text(_utf8(data, path, " and not XML"), path, number_from)
    if strip_zeros:
        ts = replace(ts, topics=[replace(t, written=None) for t in ts])
    if labels:
        label_path = shipped_labels_path() if labels is True else labels
        ts = apply_labels(ts, read_labels(label_path))
    return ts


def as_topics(topics: "str | os.PathLike | TopicSet") -> TopicSet:
    """A TopicSet as given, or the topics of a file (unlabelled)."""
    return topics if isinstance(topics, TopicSet) else read_topics(topics, labels=False)


def _utf8(data: bytes, path, also: str = "") -> str:
    body = data.removeprefix(codecs.BOM_UTF8)
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(
            path,
            f"not UTF-8 text{also} (byte 0x{body[e.start]:02x}; save the file as UTF-8)",
            line=body.count(b"\n", 0, e.start) + 1,
        ) from None


def read_labels(path: str | os.PathLike) -> dict[int, frozenset[str]]:
    """Read a label table: TSV with header ``num object person action location``, values 0/1."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise InputError(path, e.strerror or str(e)) from None
    rows = list(csv.reader(io.StringIO(_utf8(data, path)), delimiter="\t"))
    if not rows or [c.strip() for c in rows[0]] != ["num", *LABELS]:
        raise InputError(path, f"header must be: num\t{chr(9).join(LABELS)}", line=1)
    out: dict[int, frozenset[str]] = {}
    for i, row in enumerate(rows[1:], 2):
        if not row or not "".join(row).strip():
            continue
        if len(row) != 1 + len(LABELS):
            raise InputError(path, f"expected {1 + len(LABELS)} columns, found {len(row)}", line=i)
        num = _num(row[0], path, i)
        if any(v.strip() not in ("0", "1") for v in row[1:]):
            raise InputError(path, "label values must be 0 or 1", line=i)
        if num in out:
            raise InputError(path, f"duplicate topic number {num}", line=i)
        out[num] = frozenset(lab for lab, v in zip(LABELS, row[1:]) if v.strip() == "1")
    return out


def apply_labels(topics: TopicSet, labels: dict[int, frozenset[str]]) -> TopicSet:
    return replace(topics, topics=[replace(t, labels=labels.get(t.num, t.labels)) for t in topics])


def infer_origin(nums: Iterable[int]) -> tuple[str, str, str] | None:
    """(year, collection, task) when all numbers fall in one known NIST range, else None."""
    nums = list(nums)
    for (lo, hi), origin in KNOWN_RANGES:
        if nums and all(lo <= n <= hi for n in nums):
            return origin
    return None


def to_xml(topics: TopicSet) -> bytes:
    """The canonical XML form (validates against ``topics/avs-topics.dtd``)."""
    if not (topics.year and topics.collection and topics.task):
        raise InputError(topics.path, "year, collection and task are needed for the canonical XML form")
    for what in ("year", "collection", "task"):  # set by callers; lxml's own refusal names no field
        xmlsafe.check_xml_text(getattr(topics, what), topics.path, what)
    for t in topics:
        xmlsafe.check_xml_text(t.number, topics.path, f"topic {t.num} number")
        xmlsafe.check_xml_text(t.text, topics.path, f"topic {t.num} text")
    root = etree.Element(CANONICAL_ROOT, year=topics.year, collection=topics.collection, task=topics.task)
    root.text = "\n  "
    for i, t in enumerate(topics):
        el = etree.SubElement(root, "videoTopic", num=t.number)
        etree.SubElement(el, "textDescription", text=t.text)
        el.tail = "\n  " if i < len(topics) - 1 else "\n"
    doctype = f'<!DOCTYPE {CANONICAL_ROOT} SYSTEM "{DTD_NAME}">'
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", doctype=doctype) + b"\n"


def to_text(topics: TopicSet) -> str:
    """The plain-text list form (``NUM<TAB>text``)."""
    return "".join(f"{t.number}\t{t.text}\n" for t in topics)


def with_origin(
    topics: TopicSet, year: str | None = None, collection: str | None = None, task: str | None = None
) -> TopicSet:
    """Fill year/collection/task: given values first, then the file's own, then NIST's numbering."""
    inferred = infer_origin(topics.nums) or (None, None, None)
    out = replace(
        topics,
        year=year or topics.year or inferred[0],
        collection=collection or topics.collection or inferred[1],
        task=task or topics.task or inferred[2],
    )
    missing = [k for k in ("year", "collection", "task") if not getattr(out, k)]
    if missing:
        raise InputError(
            topics.path, f"cannot tell the topics' {'/'.join(missing)} from their numbers; give --{' --'.join(missing)}"
        )
    return out


def topics_frame(topics: TopicSet):
    """One row per topic: num, text and a 0/1 column per label (None where the topic is unlabelled)."""
    import pandas as pd

    as_written = any(t.number != str(t.num) for t in topics)  # e.g. 0661: keep the spelling, as text
    rows = [
        {
            "num": t.number if as_written else t.num,
            "text": t.text,
            **{lab: (None if t.labels is None else int(lab in t.labels)) for lab in LABELS},
        }
        for t in topics
    ]
    return pd.DataFrame(rows, columns=["num", "text", *LABELS]).astype({lab: "object" for lab in LABELS})
