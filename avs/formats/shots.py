"""Shot ids (``shot<VIDEO>_<N>``), their natural order, shot lists and the dropped-shots lists.

NIST master-shot-reference ids name the video's sequence number and the 1-based shot index within it:
V3C pads the video number to five digits (``shot00001_1``), IACC.3 does not (``shot35345_1``). Plain string
order puts ``shot00001_10`` before ``shot00001_2``; :func:`natural_key` orders by the numbers instead.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from typing import Iterable

from avs.errors import InputError
from trec_eval_compat.io import iter_lines

SHOT_ID = re.compile(r"^shot(\d+)_(\d+)$")
_DIGITS = re.compile(r"(\d+)")
# Some V3C tools name shots after their collection part ("V3C2_shot07476_1"); NIST's ids have no prefix.
_PART_PREFIX = re.compile(r"^V3C\d_(?=shot\d+_\d+$)")

# Video numbers of the V3C parts: each part continues the numbering of the one before, so the ids of a
# V3C1+V3C2 store never collide.
V3C_VIDEOS = {"V3C1": (1, 7475), "V3C2": (7476, 17235)}

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


def nist_shot_id(shot_id: str) -> str:
    """``"V3C2_shot07476_1"`` -> ``"shot07476_1"``; any other id unchanged."""
    return _PART_PREFIX.sub("", shot_id, count=1)


def has_part_prefix(shot_id: str) -> bool:
    return _PART_PREFIX.match(shot_id) is not None


def v3c_part(shot_id: str) -> str | None:
    """The V3C part whose video numbers contain ``shot_id``'s video (``None`` outside them or for non-ids)."""
    m = SHOT_ID.match(nist_shot_id(shot_id))
    if m is None:
        return None
    video = int(m.group(1))
    return next((part for part, (lo, hi) in V3C_VIDEOS.items() if lo <= video <= hi), None)


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


def read_id_list(path: str | os.PathLike, shot_ids: bool = False, unique: bool = False) -> list[str]:
    """Ids of a list file (shot lists, RUC ``VideoSets/<collection>.txt``, ``--ids`` files): one per line
    (whitespace-separated also accepted); blank lines and ``#`` lines skipped; ``.gz`` read as text.

    With ``shot_ids`` every id must match ``shot<VIDEO>_<N>``, with ``unique`` none may repeat; the first id that
    breaks a rule is an InputError naming its line.
    """
    ids: list[str] = []
    seen: set[str] = set()
    for lineno, toks in iter_lines(path):  # .gz, binary and encoding errors handled there
        if toks[0].startswith("#"):
            continue
        for tok in toks:
            if shot_ids and not is_shot_id(tok):
                raise InputError(path, f"{tok!r} is not a shot id (shot<VIDEO>_<N>)", line=lineno)
            if unique:
                if tok in seen:
                    raise InputError(path, f"id {tok!r} appears twice", line=lineno)
                seen.add(tok)
            ids.append(tok)
    return ids


def dropped_shots(collection: str = "V3C1") -> frozenset[str]:
    """The shipped list of shots NIST left out of ``collection``'s master shot reference (TtimesV's list)."""
    try:
        name = DROPPED_LISTS[collection]
    except KeyError:
        raise InputError(
            None, f"no dropped-shots list for collection {collection!r} (known: {', '.join(DROPPED_LISTS)})"
        ) from None
    with resources.as_file(resources.files("avs") / "data" / name) as p:
        return frozenset(read_id_list(p, shot_ids=True))


def shots_to_exclude(spec: str | os.PathLike) -> frozenset[str]:
    """Ids named by ``spec``: a shot-list file, or a collection name with a shipped dropped-shots list
    (``V3C1``) when no file of that name exists. Ids are compared in NIST's form (no ``V3C2_`` prefix)."""
    if not os.path.exists(spec):
        if str(spec) in DROPPED_LISTS:
            return dropped_shots(str(spec))
        if str(spec) in V3C_VIDEOS:
            raise InputError(
                spec,
                f"no such file, and avs ships no dropped-shots list for {spec} (NIST published "
                f"one for {', '.join(DROPPED_LISTS)} only): give a shot-list file",
            )
    return frozenset(nist_shot_id(s) for s in read_id_list(spec))


@dataclass(frozen=True)
class ValidShots:
    """The shots a run may name: the ids of a shot list or collection store, or NIST's valid-shot table
    (``V3C2.validShotTable``: ``VIDEO MAXSHOT`` per line, every shot 1..MAXSHOT of VIDEO valid)."""

    source: str
    kind: str  # "shot list", "collection store" or "valid-shot table", for messages
    ids: frozenset[str] | None = None
    max_shot: dict[str, int] | None = None  # video number as the table spells it -> its last shot

    def __contains__(self, shot_id: str) -> bool:
        if self.ids is not None:
            return shot_id in self.ids
        m = SHOT_ID.match(shot_id)
        return (
            m is not None
            and m.group(2) == str(int(m.group(2)))
            and 1 <= int(m.group(2)) <= self.max_shot.get(m.group(1), 0)
        )

    @cached_property
    def _video_spelling(self) -> dict[int, str]:
        return {int(v): v for v in self.max_shot or ()}

    def spelled(self, shot_id: str) -> str | None:
        """The table's spelling of a shot id that names a valid shot with other digits (``shot7476_01`` ->
        ``shot07476_1``): NIST's checker reads the numbers and passes it, but the judgments use that spelling."""
        m = SHOT_ID.match(shot_id)
        if self.max_shot is None or m is None:
            return None
        video = self._video_spelling.get(int(m.group(1)))
        if video is None:
            return None
        canonical = f"shot{video}_{int(m.group(2))}"
        return canonical if canonical != shot_id and canonical in self else None


def read_valid_shot_table(path: str | os.PathLike) -> dict[str, int]:
    """NIST's valid-shot table: ``VIDEO MAXSHOT`` per line, both whole numbers, each video once."""
    table: dict[str, int] = {}
    for lineno, toks in iter_lines(path):
        if len(toks) != 2 or not all(t.isascii() and t.isdigit() for t in toks):
            raise InputError(
                path, "expected 'VIDEO MAXSHOT' (two whole numbers) as in NIST's validShotTable", line=lineno
            )
        if toks[0] in table:
            raise InputError(path, f"video {toks[0]} appears twice", line=lineno)
        table[toks[0]] = int(toks[1])
    if not table:
        raise InputError(path, "no videos (empty file)")
    return table


def read_valid_shots(path: str | os.PathLike) -> ValidShots:
    """A shot list, a collection store (HDF5) or a valid-shot table, told apart by content."""
    from avs.formats.store import open_store  # h5py only when a store is given

    p = os.fspath(path)
    try:
        with open(p, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise InputError(p, e.strerror or str(e)) from None
    if head == b"\x89HDF\r\n\x1a\n":
        with open_store(p) as store:
            return ValidShots(p, "collection store", ids=frozenset(store.ids))
    first = next(iter_lines(p), (0, []))[1]
    if len(first) == 2 and all(t.isascii() and t.isdigit() for t in first):
        return ValidShots(p, "valid-shot table", max_shot=read_valid_shot_table(p))
    ids = frozenset(read_id_list(p, shot_ids=True))
    if not ids:
        raise InputError(p, "no shot ids (empty file)")
    return ValidShots(p, "shot list", ids=ids)


def drop_shots(ids: Iterable[str], dropped: Iterable[str]) -> list[str]:
    """``ids`` without the ``dropped`` ones, order kept."""
    gone = frozenset(dropped)
    return [i for i in ids if i not in gone]
