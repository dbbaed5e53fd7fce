"""XML parsing with entity expansion, DTD loading and network access off.

TRECVID files are small and flat; nothing legitimate in them needs entities. A document that declares
any (XXE, billion laughs) is refused outright instead of being parsed with the entities left unexpanded.
"""

from __future__ import annotations

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
_DECLARATION = re.compile(rb"<!ENTITY\s+(?:%\s+)?([^\s>]+)")
_SAFE = dict(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False)


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
        names = [n.decode("utf-8", "replace") for n in _DECLARATION.findall(self._head)]
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
        buf[:len(data)] = data
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
    return InputError(path, f"not well-formed XML: {e.msg}", line=e.lineno or None)


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
