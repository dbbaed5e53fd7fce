"""XML parsing with entity expansion, DTD loading and network access off.

TRECVID files are small and flat; nothing legitimate in them needs entities. A document that declares
any (XXE, billion laughs) is refused outright instead of being parsed with the entities left unexpanded.
"""

from __future__ import annotations

import os
from typing import IO, Iterator

from lxml import etree

from .errors import InputError

_SAFE = dict(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False)


def _check_no_entities(tree, path) -> None:
    dtd = tree.docinfo.internalDTD
    if dtd is not None:
        names = [e.name for e in dtd.iterentities()]
        if names:
            raise InputError(path, f"entity declarations are not allowed (found {', '.join(names[:3])})")


def parse(source: str | os.PathLike | IO[bytes], path=None) -> etree._ElementTree:
    """Parse a whole (small) XML document safely; errors become ``InputError`` naming ``path``."""
    path = path if path is not None else source
    try:
        tree = etree.parse(source, etree.XMLParser(remove_comments=True, **_SAFE))
    except etree.XMLSyntaxError as e:
        raise InputError(path, f"not well-formed XML: {e.msg}", line=e.lineno or None) from None
    _check_no_entities(tree, path)
    return tree


def iterparse(source, path=None, tag=None) -> Iterator[tuple[str, etree._Element]]:
    """Stream ``(event, element)`` pairs (``start``/``end``) of a large document safely.

    The entity check runs at the root's start event, before any content is used.
    """
    path = path if path is not None else source
    it = etree.iterparse(source, events=("start", "end"), remove_comments=True, **_SAFE)
    checked = False
    try:
        for event, elem in it:
            if not checked:
                _check_no_entities(elem.getroottree(), path)
                checked = True
            yield event, elem
    except etree.XMLSyntaxError as e:
        raise InputError(path, f"not well-formed XML: {e.msg}", line=e.lineno or None) from None


def localname(elem) -> str:
    """Tag without namespace (``{ns}videoTopic`` -> ``videoTopic``)."""
    tag = elem.tag
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""
