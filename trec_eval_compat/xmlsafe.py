"""XML parsing with entity expansion, DTD loading and network access off.

TRECVID files are small and flat; nothing legitimate in them needs entities. A document that declares
any (XXE, billion laughs) is refused outright instead of being parsed with the entities left unexpanded,
whatever its encoding (a UTF-16 document's head is decoded before it is looked at).
"""

from __future__ import annotations

import codecs
import contextlib
import io
import os
import re
from typing import IO, Iterator

from lxml import etree

from .errors import InputError

# Newer libxml2 stops on an entity payload (an external reference, an amplification limit) before the tree
# exists, so declarations are also looked for in the document's head, where a DOCTYPE must stand.
_HEAD = 1 << 16
_DECLARATION = re.compile(r"<!ENTITY\s+(?:%\s+)?([^\s>]+)")
# The UTF-32 marks go first: FF FE 00 00 also starts with UTF-16's FF FE.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# Without a BOM, how "<" is spelled tells UTF-16/32 (XML 1.0, appendix F); longest pattern first
_UNMARKED = (
    (b"\x00\x00\x00<", "utf-32-be"),
    (b"<\x00\x00\x00", "utf-32-le"),
    (b"\x00<", "utf-16-be"),
    (b"<\x00", "utf-16-le"),
)
_ENCODING = re.compile(rb"<\?xml[^>]*?\sencoding\s*=\s*[\"']([A-Za-z][A-Za-z0-9._-]*)[\"']")
# What XML 1.0 can carry (its Char production); lxml refuses the rest with a message naming no file
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_MESSAGE_CHARS = 200
_SAFE = dict(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False)


def one_line(text: str, limit: int = _MESSAGE_CHARS) -> str:
    """``text`` fit for a one-line message: white space runs as one space, at most ``limit`` characters."""
    text = re.sub(r" (?=[,.;:])", "", " ".join(text.split()))  # libxml2 puts "\n, line 2" after some messages
    return text if len(text) <= limit else text[: limit - 3] + "..."


def shown(value: str, limit: int = 40) -> str:
    """``repr(value)`` shortened for a message that quotes what a file says."""
    return one_line(repr(value), limit)


def check_xml_text(value: str, path, what: str, line: int | None = None) -> None:
    """Refuse ``value`` (described by ``what``) when it holds a character XML cannot carry."""
    bad = _NOT_XML_CHAR.search(value)
    if bad:
        raise InputError(path, f"{what} holds U+{ord(bad.group()):04X}, a character XML cannot carry", line=line)


def _codec(head: bytes) -> str | None:
    """The encoding a document's first bytes announce (BOM, UTF-16/32 spelling of ``<``, declaration)."""
    for marks in (_BOMS, _UNMARKED):
        for mark, codec in marks:
            if head.startswith(mark):
                return codec
    m = _ENCODING.match(head)
    return m.group(1).decode() if m else None


def starts_like_xml(head: bytes) -> bool:
    """True when ``head``, read in the encoding its first bytes announce, starts with ``<`` after white space."""
    codec = _codec(head) or "latin-1"
    try:
        text = head.decode(codec, "replace")
    except LookupError:  # a declaration naming an encoding Python lacks: it is XML all the same
        text = head.decode("latin-1")
    return text.lstrip("\ufeff \t\r\n").startswith("<")


def _declared_entities(head: bytes) -> list[str]:
    try:
        text = head.decode(_codec(head) or "utf-8", "replace")
    except LookupError:  # an encoding Python lacks
        text = ""
    # Latin-1 reads the ASCII of every ASCII-compatible encoding, whatever a declaration claims
    return _DECLARATION.findall(text) or _DECLARATION.findall(head.decode("latin-1"))


def _check_no_entities(tree, path) -> None:
    dtd = tree.docinfo.internalDTD
    if dtd is not None:
        names = [e.name for e in dtd.iterentities()]
        if names:
            raise InputError(path, f"entity declarations are not allowed (found {', '.join(names[:3])})")


def _refuse(names: list[str], path) -> InputError:
    return InputError(path, f"entity declarations are not allowed (found {', '.join(names[:3])})")


class _Checked(io.RawIOBase):
    """A binary stream whose head was looked at for entity declarations, then replayed."""

    def __init__(self, stream: IO[bytes], path):
        self._head = stream.read(_HEAD)
        names = _declared_entities(self._head)
        if names:
            raise _refuse(names, path)
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        if self._head:
            n = min(len(buf), len(self._head))
            buf[:n], self._head = self._head[:n], self._head[n:]
            return n
        data = self._stream.read(len(buf))
        buf[: len(data)] = data
        return len(data)


@contextlib.contextmanager
def _checked_source(source, path) -> Iterator[_Checked]:
    if not isinstance(source, (str, os.PathLike)):
        yield _Checked(source, path)
        return
    try:
        f = open(source, "rb")
    except OSError as e:
        raise InputError(path, e.strerror or str(e)) from None
    with f:
        yield _Checked(f, path)


def _syntax_error(e: etree.XMLSyntaxError, path) -> InputError:
    return InputError(path, f"not well-formed XML: {one_line(e.msg)}", line=e.lineno or None)


def parse(source: str | os.PathLike | IO[bytes], path=None) -> etree._ElementTree:
    """Parse a whole (small) XML document safely; errors become ``InputError`` naming ``path``."""
    path = path if path is not None else source
    try:
        with _checked_source(source, path) as stream:
            tree = etree.parse(stream, etree.XMLParser(remove_comments=True, **_SAFE))
    except etree.XMLSyntaxError as e:
        raise _syntax_error(e, path) from None
    _check_no_entities(tree, path)
    return tree


def iterparse(source, path=None, tag=None) -> Iterator[tuple[str, etree._Element]]:
    """Stream ``(event, element)`` pairs (``start``/``end``) of a large document safely.

    The entity checks run on the head of the stream and at the root's start event, before any content is used.
    """
    path = path if path is not None else source
    checked = False
    try:
        with _checked_source(source, path) as stream:
            for event, elem in etree.iterparse(stream, events=("start", "end"), remove_comments=True, **_SAFE):
                if not checked:
                    _check_no_entities(elem.getroottree(), path)
                    checked = True
                yield event, elem
    except etree.XMLSyntaxError as e:
        raise _syntax_error(e, path) from None


def localname(elem) -> str:
    """Tag without namespace (``{ns}videoTopic`` -> ``videoTopic``)."""
    tag = elem.tag
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""
