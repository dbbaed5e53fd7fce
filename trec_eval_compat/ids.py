"""NIST topic numbers vs. evaluation topic ids.

Qrels and every public run converter prefix the NIST topic number with "1" (tv21 topic 661 is ``1661`` in
``avs.qrels.main.tv21``). This module is the one place that mapping lives.
"""

from __future__ import annotations

DEFAULT_PREFIX = "1"


def eval_topic_id(num: int | str, prefix: str = DEFAULT_PREFIX) -> str:
    """NIST topic number (``661`` or ``"661"``) -> the id used in qrels and TREC runs (``"1661"``)."""
    return f"{prefix}{int(num)}"


def nist_topic_num(topic_id: str, prefix: str = DEFAULT_PREFIX) -> int:
    """Evaluation id (``"1661"``) -> NIST topic number (``661``); ``ValueError`` if it lacks the prefix."""
    rest = topic_id[len(prefix) :]
    if not topic_id.startswith(prefix) or not (rest.isascii() and rest.isdigit()):  # int() reads other digits too
        raise ValueError(f"topic id {topic_id!r} is not {prefix!r} followed by a topic number")
    return int(rest)
