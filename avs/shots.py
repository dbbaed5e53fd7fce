"""Shot ids (``shot<VIDEO>_<N>``), their natural order, shot lists and the dropped-shots lists.

NIST master-shot-reference ids name the video's sequence number and the 1-based shot index within it:
V3C pads the video number to five digits (``shot00001_1``), IACC.3 does not (``shot35345_1``). Plain string
order puts ``shot00001_10`` before ``shot00001_2``; :func:`natural_key` orders by the numbers instead.
"""

from __future__ import annotations

import os
import re
from importlib import resources
from typing import Iterable

from trec_eval_compat.io import iter_lines

from .errors import InputError

SHOT_ID = re.compile(r"^shot(\d+)_(\d+)$")
_DIGITS = re.compile(r"(\d+)")

# Collections whose NIST master shot reference leaves out shots that the video files still contain.
DROPPED_LISTS = {"V3C1": "V3C1.dropped.shots.list"}


def parse_shot_id(shot_id: str) -> tuple[int, int]:
    """``"shot00001_12"`` -> ``(1, 12)``; ``ValueError`` for anything that is not a shot id."""
    m = SHOT_ID.match(shot_id)
    if m is None:
        raise ValueError(f"{shot_id!r} is not a shot id (shot<VIDEO>_<N>)")
    return int(m.group(1)), int(m.group(2))


def is_shot_id(s: str) -> bool:
    return SHOT_ID.match(s) is not None


def natural_key(s: str) -> tuple:
    """Sort key comparing digit runs as numbers: shot ids order by (video, shot), any other id sensibly.

    Splitting on digit runs always yields text at even and integers at odd positions, so keys of
    different ids stay comparable. Ties between numerically equal spellings (``shot1_1``, ``shot001_1``)
    fall back to the plain string so the order is total.
    """
    parts = _DIGITS.split(s)
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts)) + (s,)


def natural_sorted(ids: Iterable[str]) -> list[str]:
    return sorted(ids, key=natural_key)


def read_shot_list(path: str | os.PathLike, require_shot_ids: bool = True) -> list[str]:
    """Ids of a list file: one per line (whitespace-separated also accepted); blank lines and ``#`` lines skipped.

    With ``require_shot_ids`` every id must match ``shot<VIDEO>_<N>``; the first that does not is an InputError.
    """
    ids: list[str] = []
    for lineno, toks in iter_lines(path):  # .gz, binary and encoding errors handled there
        if toks[0].startswith("#"):
            continue
        for tok in toks:
            if require_shot_ids and not is_shot_id(tok):
                raise InputError(path, f"{tok!r} is not a shot id (shot<VIDEO>_<N>)", line=lineno)
            ids.append(tok)
    return ids


def dropped_shots(collection: str = "V3C1") -> frozenset[str]:
    """The shipped list of shots NIST left out of ``collection``'s master shot reference (TtimesV's list)."""
    try:
        name = DROPPED_LISTS[collection]
    except KeyError:
        raise InputError(None, f"no dropped-shots list for collection {collection!r} "
                               f"(known: {', '.join(DROPPED_LISTS)})") from None
    with resources.as_file(resources.files("avs") / "data" / name) as p:
        return frozenset(read_shot_list(p))


def shots_to_exclude(spec: str | os.PathLike) -> frozenset[str]:
    """Ids named by ``spec``: a shot-list file, or a collection name with a shipped dropped-shots list
    (``V3C1``) when no file of that name exists."""
    if str(spec) in DROPPED_LISTS and not os.path.exists(spec):
        return dropped_shots(str(spec))
    return frozenset(read_shot_list(spec, require_shot_ids=False))


def drop_shots(ids: Iterable[str], dropped: Iterable[str]) -> list[str]:
    """``ids`` without the ``dropped`` ones, order kept."""
    gone = frozenset(dropped)
    return [i for i in ids if i not in gone]
