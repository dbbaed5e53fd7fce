"""Errors a user can cause. One type, shared with ``trec_eval_compat`` so both print alike; and the two helpers
that messages about lists of ids use."""

from __future__ import annotations

from typing import Sequence

from trec_eval_compat.errors import InputError

__all__ = ["InputError", "duplicates", "first_few", "first_line"]


def first_few(items: Sequence[str], k: int = 3) -> str:
    """The first ``k`` items for a message, with ``...`` when there are more."""
    return ", ".join(items[:k]) + (", ..." if len(items) > k else "")


def duplicates(ids: Sequence[str]) -> list[str]:
    """Ids occurring more than once, each once, in order of their second occurrence."""
    seen: set[str] = set()
    dup: dict[str, None] = {}
    for i in ids:
        if i in seen:
            dup[i] = None
        seen.add(i)
    return list(dup)


def first_line(e: BaseException) -> str:
    """An exception's message cut to its first line (library errors can span many), or its type's name."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
