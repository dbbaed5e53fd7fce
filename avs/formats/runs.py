"""Runs: what a team submits to NIST. Read and write the submission XML and the TREC 6-column form,
validate a run the way NIST's DTD check and submission rules would, and fuse runs.

See ``docs/runs.md``. Topic keys in a ``Run`` are NIST topic numbers (661); TREC files carry the evaluation
id (``1661``, ``trec_eval_compat.ids``). The XML layer is ``trec_eval_compat.runxml`` (streamed, safe); TREC
lines come from ``trec_eval_compat.io.read_run_lines``.
"""

from __future__ import annotations

import io
import math
import os
import re
import statistics
from collections import defaultdict
from dataclasses import dataclass, field, fields, replace
from importlib import resources
from pathlib import Path

import numpy as np
from lxml import etree

from avs.errors import InputError
from avs.formats.fileio import atomic_write, check_writable
from avs.formats.shots import ValidShots, has_part_prefix, is_shot_id, nist_shot_id, read_valid_shots
from trec_eval_compat import io as tio
from trec_eval_compat import runxml, xmlsafe
from trec_eval_compat.ids import DEFAULT_PREFIX, eval_topic_id, nist_topic_num

MAX_ITEMS = 1000
MAX_TOPIC = 770  # NIST's 2025 checker knows topic numbers up to 770
FIRST_YEAR = 2016  # AVS started in 2016
TASK_YEAR = 2019  # task and novelty attributes exist from here on
ALGO_YEAR = 2023  # algo (C concept-based, V other) exists from here on
FEEDBACK_YEAR = 2018  # class R (relevance feedback) exists from here on
# The first year of each DTD shipped in avs/data: a year uses the newest that is not after it.
DTD_YEARS = (FIRST_YEAR, TASK_YEAR, ALGO_YEAR)
NIST_DTD_URL = "https://www-nlpir.nist.gov/projects/tv{year}/dtds/videoAdhocSearchResults.dtd"
_NIST_DTD_URL_RE = re.compile(r"https?://www-nlpir\.nist\.gov/projects/tv(\d{4})/dtds/videoAdhocSearchResults\.dtd")
METHODS = ("rrf", "combsum", "combmnz")
NORMS = ("minmax", "zscore", "none")
RRF_K = 60

# RunInfo field -> (XML attribute, CLI option that sets it)
_ATTRS = {
    "tr_type": ("trType", "--tr-type"),
    "run_class": ("class", "--class"),
    "task": ("task", "--task"),
    "novelty": ("novelty", "--novelty"),
    "algo": ("algo", "--algo"),
    "pid": ("pid", "--pid"),
    "priority": ("priority", "--priority"),
    "desc": ("desc", "--desc"),
}


@dataclass(frozen=True)
class RunInfo:
    """The attributes of ``videoAdhocSearchRunResult``, as text (``None`` = not known)."""

    tr_type: str | None = None  # A | D | E | F
    run_class: str | None = None  # M | F, and R from 2018
    task: str | None = None  # M | P, 2019 on
    novelty: str | None = None  # N | C, 2019 on
    pid: str | None = None
    priority: str | None = None  # 1..10
    desc: str | None = None
    algo: str | None = None  # C (concept-based) | V (other, e.g. embeddings), 2023 on


@dataclass
class Item:
    shot: str
    score: float | None = None  # None: the source (XML) has only the order
    extra: dict[str, str] = field(default_factory=dict)  # optional XML item attributes, written back as read


@dataclass
class TopicResult:
    items: list[Item]  # best first
    elapsed: str | None = None  # seconds, as written in the XML (whole seconds in what avs writes)


@dataclass
class Run:
    info: RunInfo
    topics: dict[int, TopicResult]  # NIST topic number -> result
    year: int | None = None  # from the XML DOCTYPE, when there was one
    path: str | None = None


@dataclass(frozen=True, slots=True)
class Problem:
    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.message}"


# ----------------------------------------------------------------------------------------------- reading


def read_run(path: str | os.PathLike, prefix: str = DEFAULT_PREFIX) -> Run:
    """Read a run, XML or TREC (decided by content), ``.gz`` or not. TREC topic ids must be ``prefix``+number."""
    if tio.looks_like_xml(path):
        return _from_xml(runxml.read_xml(path), path)
    return _from_trec(tio.read_run_lines(path), path, prefix)


def _from_xml(x: runxml.XmlRun, path) -> Run:
    x.raise_first_fault()
    info = RunInfo(**{f: x.attrs.get(a) for f, (a, _) in _ATTRS.items()})
    topics: dict[int, TopicResult] = {}
    for t in x.topics:
        if not t.tnum.isdigit():
            raise InputError(path, f"tNum {t.tnum!r} is not a topic number", line=t.line)
        num = int(t.tnum)
        if num in topics:
            raise InputError(path, f"topic {num} appears twice", line=t.line)
        ordered = sorted(t.items, key=lambda it: runxml.seq_number(it, path))
        _refuse_duplicates(((it.shot, it.line) for it in ordered), num, path)
        topics[num] = TopicResult([Item(it.shot, None, dict(it.extra)) for it in ordered], t.elapsed)
    return Run(info, topics, x.year, os.fspath(path))


def _refuse_duplicates(shots, num: int, path) -> None:
    first: dict[str, int | None] = {}
    for shot, line in shots:
        if shot in first:
            raise InputError(path, f"topic {num}: shot {shot} appears twice (first at line {first[shot]})", line=line)
        first[shot] = line


def _from_trec(lines: list[tio.RunLine], path, prefix: str) -> Run:
    by_topic: dict[int, list[tio.RunLine]] = defaultdict(list)
    for ln in lines:
        try:
            by_topic[nist_topic_num(ln.topic, prefix)].append(ln)
        except ValueError as e:
            raise InputError(path, f"{e} (see --topic-prefix)", line=ln.line) from None
    topics = {}
    for num in sorted(by_topic):
        _refuse_duplicates(((ln.shot, ln.line) for ln in by_topic[num]), num, path)
        # The evaluator's order (trecvid-formats §1.4): score descending, ties by shot id descending.
        ranked = sorted(by_topic[num], key=lambda ln: (ln.score, ln.shot), reverse=True)
        topics[num] = TopicResult([Item(ln.shot, ln.score) for ln in ranked])
    tags = {ln.tag for ln in lines}
    return Run(RunInfo(pid=tags.pop() if len(tags) == 1 else None), topics, None, os.fspath(path))


# ----------------------------------------------------------------------------------------------- editing


def with_attributes(run: Run, elapsed: str | None = None, **attrs: str | None) -> Run:
    """A copy of ``run`` with the given run attributes (``RunInfo`` field names) replaced where not None,
    and ``elapsed`` (seconds) set on topics that have no elapsed time."""
    unknown = set(attrs) - {f.name for f in fields(RunInfo)}
    if unknown:
        raise TypeError(f"unknown run attributes: {', '.join(sorted(unknown))}")
    info = replace(run.info, **{k: str(v) for k, v in attrs.items() if v is not None})
    topics = {n: replace(t, elapsed=t.elapsed if t.elapsed is not None else elapsed) for n, t in run.topics.items()}
    return replace(run, info=info, topics=topics)


def top(run: Run, n: int) -> Run:
    """A copy of ``run`` keeping the best ``n`` items of each topic."""
    return replace(run, topics={k: replace(t, items=t.items[:n]) for k, t in run.topics.items()})


# ----------------------------------------------------------------------------------------------- writing


def _score(item: Item, rank: int) -> float:
    # The XML -> TREC convention of LAFF/sea (trecvid-formats §4): strictly decreasing, so order is kept.
    return item.score if item.score is not None else float(runxml.TOP_SCORE - (rank - 1))


def run_lines(run: Run, prefix: str = DEFAULT_PREFIX) -> list[tio.RunLine]:
    """The run as the evaluator's TREC lines (rank = position, tag = pid).

    The evaluator re-sorts by score (ties: shot id descending), so a run whose scores disagree with its
    order is refused rather than turned into a different ranking.
    """
    tag = run.info.pid or "avs"
    if len(tag.split()) != 1:
        raise InputError(run.path, f"pid {tag!r} cannot be a TREC tag (it must be one word)")
    out = []
    for num, t in run.topics.items():
        topic = eval_topic_id(num, prefix)
        prev = None
        for rank, it in enumerate(t.items, 1):
            key = (_score(it, rank), nist_shot_id(it.shot))
            if not math.isfinite(key[0]):
                raise InputError(
                    run.path, f"topic {num}: rank {rank} ({it.shot}) has score {key[0]}; evaluators need finite scores"
                )
            if prev is not None and key > prev:
                raise InputError(
                    run.path,
                    f"topic {num}: the score of rank {rank} ({it.shot}) does not follow the "
                    f"ranking (evaluators sort by score, then shot id descending)",
                )
            prev = key
            out.append(tio.RunLine(topic, "Q0", nist_shot_id(it.shot), str(rank), key[0], tag, rank))
    return out


def to_trec(run: Run, prefix: str = DEFAULT_PREFIX) -> str:
    """TREC 6-column text ``topic Q0 shot rank score tag`` of ``run_lines`` (scores written exactly)."""
    return "".join(f"{ln.topic} Q0 {ln.shot} {ln.rank} {ln.score!r} {ln.tag}\n" for ln in run_lines(run, prefix))


def write_trec(run: Run, path: str | os.PathLike, force: bool = False, prefix: str = DEFAULT_PREFIX) -> Path:
    check_writable(path, force)
    return atomic_write(path, to_trec(run, prefix), force=force)


def doctype(year: int) -> str:
    return f'<!DOCTYPE {runxml.ROOT} SYSTEM "{NIST_DTD_URL.format(year=year)}">'


def year_fields(year: int) -> list[str]:
    """The ``RunInfo`` fields a ``year`` run carries, in the order they are written."""
    return [
        f for f in _ATTRS if (f not in ("task", "novelty") or year >= TASK_YEAR) and (f != "algo" or year >= ALGO_YEAR)
    ]


def whole_seconds(seconds: float | str) -> str:
    """Elapsed time as NIST's checker reads it (a Java int): whole seconds, rounded up so that no work is 0 s."""
    return str(math.ceil(float(seconds)))


def _elapsed_for_xml(elapsed: str) -> str:
    # Runs read from older tools may say "0.004"; NIST's checker stops on anything but an integer.
    return whole_seconds(elapsed) if _is_seconds(elapsed) else elapsed


def to_xml(run: Run, year: int) -> bytes:
    """The NIST submission XML of ``run`` for ``year``; refused unless it passes ``validate``'s checks.

    Elapsed times are written as whole seconds and shot ids in NIST's form (a ``V3C2_`` prefix dropped).
    """
    if year < FIRST_YEAR:
        raise InputError(run.path, f"year {year}: AVS runs exist from {FIRST_YEAR} on")
    wanted = year_fields(year)
    missing = [f for f in wanted if getattr(run.info, f) is None]
    if missing:
        raise InputError(
            run.path,
            f"a {year} run needs {', '.join(_ATTRS[f][0] for f in missing)} "
            f"(set with {', '.join(_ATTRS[f][1] for f in missing)})",
        )
    if not run.topics:
        raise InputError(run.path, "the run has no topics")
    for f in wanted:  # lxml's own refusal names neither the attribute nor the option
        xmlsafe.check_xml_text(getattr(run.info, f), run.path, f"{_ATTRS[f][0]} (set with {_ATTRS[f][1]})")
    # Written as text, one element a line, escaped as lxml escapes attributes; what is written is recorded
    # as the reader would record it, so that the checks below need no second parse of 20,000 items.
    run_attrs = {_ATTRS[f][0]: getattr(run.info, f) for f in wanted}
    written = runxml.XmlRun(run.path, run_attrs, [], doctype(year), NIST_DTD_URL.format(year=year), 4)
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        written.doctype,
        f"<{runxml.ROOT}>",
        f"<{runxml.RUN}{_attrs(run_attrs)}>",
    ]
    for num, t in run.topics.items():
        if t.elapsed is None:
            raise InputError(
                run.path, f"topic {num} has no elapsed time (TREC runs carry none; set it with --elapsed SECONDS)"
            )
        elapsed = _elapsed_for_xml(t.elapsed)
        topic = runxml.XmlTopic(str(num), elapsed, len(lines) + 1)
        written.topics.append(topic)
        lines.append(f"<{runxml.TOPIC}{_attrs({'tNum': str(num), 'elapsedTime': elapsed})}>")
        for seq, it in enumerate(t.items, 1):
            for text in (it.shot, *it.extra.values()):
                xmlsafe.check_xml_text(text, run.path, f"topic {num}: item {seq}")
            shot = nist_shot_id(it.shot)
            topic.items.append(runxml.XmlItem(str(seq), shot, len(lines) + 1, dict(it.extra)))
            lines.append(f"<{runxml.ITEM}{_attrs({'seqNum': str(seq), 'shotId': shot, **it.extra})}/>")
        lines.append(f"</{runxml.TOPIC}>")
    lines += [f"</{runxml.RUN}>", f"</{runxml.ROOT}>", ""]
    data = "\n".join(lines).encode()
    problems = _xml_problems(data, run.path or "<run>", year, None, None, written=written)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InputError(run.path, f"not a valid {year} run: {problems[0].message}{more}")
    return data


_ATTR_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\t": "&#9;", "\n": "&#10;", "\r": "&#13;"}
)


def _attrs(attrs: dict[str, str]) -> str:
    return "".join(f' {k}="{v.translate(_ATTR_ESCAPES)}"' for k, v in attrs.items())


def write_xml(run: Run, path: str | os.PathLike, year: int, force: bool = False) -> Path:
    """Write ``run`` as NIST XML, validated against the shipped DTD before the atomic rename."""
    check_writable(path, force)
    return atomic_write(path, to_xml(run, year), force=force)


def is_xml_name(path: str | os.PathLike) -> bool:
    name = os.fspath(path).lower()
    return name.endswith(".xml") or name.endswith(".xml.gz")


def write_run(
    run: Run, path: str | os.PathLike, year: int | None = None, force: bool = False, prefix: str = DEFAULT_PREFIX
) -> Path:
    """Write XML when ``path`` ends in ``.xml``/``.xml.gz`` (for ``year``, default the run's own), else TREC."""
    if not is_xml_name(path):
        return write_trec(run, path, force, prefix)
    year = year or run.year
    if year is None:
        raise InputError(path, "XML output needs the TRECVID year (give --year)")
    return write_xml(run, path, year, force)


# ----------------------------------------------------------------------------------------------- validating


def dtd_path(year: int) -> Path:
    """The shipped DTD that applies to ``year`` (2016-2018, 2019-2022 or 2023 on)."""
    first = max(y for y in DTD_YEARS if y <= max(year, FIRST_YEAR))
    return Path(str(resources.files("avs") / "data" / f"videoAdhocSearchResults-{first}.dtd"))


def read_pids(path: str | os.PathLike) -> frozenset[str]:
    """NIST's participant list: one pid a line (the checker compares whole lines; blank lines are skipped)."""
    pids = set()
    for line, toks in tio.iter_lines(path):
        if len(toks) != 1:
            raise InputError(path, f"expected one participant id, found {len(toks)} words", line=line)
        pids.add(toks[0])
    if not pids:
        raise InputError(path, "no participant ids (empty file)")
    return frozenset(pids)


def validate(
    path: str | os.PathLike,
    topics: str | os.PathLike | None = None,
    shots: str | os.PathLike | ValidShots | None = None,
    year: int | None = None,
    prefix: str = DEFAULT_PREFIX,
    pids: str | os.PathLike | frozenset[str] | None = None,
) -> list[Problem]:
    """All problems of a run file (XML, or TREC for the checks that apply), in file order; [] = valid.

    ``topics``: the task's topic file (the run must answer each once); ``shots``: a shot list, a collection
    store or NIST's valid-shot table (``read_valid_shots``); ``pids``: NIST's participant list. A file that
    cannot be read at all (missing) raises ``InputError``; one that is not well-formed is a problem.
    """
    from avs.formats.topics import as_topics

    topic_nums = as_topics(topics).nums if topics is not None else None
    valid = read_valid_shots(shots) if isinstance(shots, (str, os.PathLike)) else shots
    pid_set = read_pids(pids) if isinstance(pids, (str, os.PathLike)) else pids
    p = os.fspath(path)
    if tio.looks_like_xml(path):
        try:
            with tio.open_binary(path) as f:
                data = f.read()
        except (OSError, EOFError) as e:  # truncated or corrupt gzip
            raise InputError(path, f"cannot read: {e}") from None
        return _xml_problems(data, p, year, topic_nums, valid, pid_set)
    try:
        run = tio.read_run_columns(path)
    except InputError as e:
        return [Problem(p, e.line, e.problem)]
    return _trec_problems(run, p, prefix, topic_nums, valid)


class _Collect(list):
    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def add(self, line: int | None, message: str) -> None:
        self.append(Problem(self.path, line, message))

    def sorted(self) -> list[Problem]:
        return sorted(self, key=lambda pr: pr.line or 0)


def _java_int(s: str) -> int | None:
    """``s`` as NIST's checker reads it with Integer.parseInt, limited to plain ASCII digits; else None."""
    if not (s.isascii() and s.isdigit()):
        return None
    v = int(s)
    return v if v <= 2**31 - 1 else None


def _xml_problems(
    data: bytes,
    path: str,
    year: int | None,
    topic_nums,
    shots: ValidShots | None,
    pids: frozenset[str] | None = None,
    written: runxml.XmlRun | None = None,
) -> list[Problem]:
    """``written``: the run as ``to_xml`` recorded writing ``data``, instead of reading it back."""
    out = _Collect(path)
    try:
        tree = xmlsafe.parse(io.BytesIO(data), path)
        x = written or runxml.read_xml(io.BytesIO(data), path)
    except InputError as e:
        return [Problem(path, e.line, e.problem)]
    year = _check_doctype(x, year, out)
    dtd_file = dtd_path(year)
    dtd = etree.DTD(str(dtd_file))
    if not dtd.validate(tree):
        for e in dtd.error_log.filter_from_errors():
            out.add(e.line or None, f"not valid against {dtd_file.name}: {xmlsafe.one_line(e.message)}")
    if x.attrs.get("class") == "R" and year < FEEDBACK_YEAR:
        out.add(x.line, f"class R (relevance feedback) exists only from {FEEDBACK_YEAR} on")
    pid = x.attrs.get("pid")
    if pid is not None and not pid:
        out.add(x.line, "pid is empty (NIST's checker refuses the run)")
    elif pid is not None and pids is not None and pid not in pids:
        out.add(x.line, f"pid {pid!r} is not in the participant list")
    seen: dict[int, int | None] = {}
    for t in x.topics:
        if t.tnum is None:
            continue  # the DTD check reported it
        num = _java_int(t.tnum)
        if num is None:
            out.add(t.line, f"tNum {t.tnum!r} is not a topic number (a whole number)")
            continue
        if num in seen:
            out.add(t.line, f"topic {num} appears again (first at line {seen[num]})")
        seen.setdefault(num, t.line)
        if not 1 <= num <= MAX_TOPIC:
            nist = str(num)[1:]
            hint = (
                f" (an evaluation id? tNum is NIST's number, {int(nist)})"
                if str(num).startswith("1") and nist.isdigit() and 1 <= int(nist) <= MAX_TOPIC
                else ""
            )
            out.add(t.line, f"topic {num} is outside 1..{MAX_TOPIC}, the topic numbers NIST's checker knows{hint}")
        elif topic_nums is not None and num not in topic_nums:
            out.add(t.line, f"topic {num} is not in the topics file")
        if t.elapsed is not None and _java_int(t.elapsed.strip()) is None:
            out.add(
                t.line,
                f"topic {num}: elapsedTime {t.elapsed!r} is not a whole number of seconds (NIST's checker stops on it)",
            )
        _check_shots([(it.shot, it.line) for it in t.items if it.shot is not None], num, shots, out)
        _check_seq(t.items[:MAX_ITEMS], num, out)  # like NIST's checker: items past 1000 are only counted
    _check_topic_set(seen, topic_nums, out)
    return out.sorted()


def _check_doctype(x: runxml.XmlRun, year: int | None, out: _Collect) -> int:
    """Report DOCTYPE problems; return the year whose rules apply."""
    m = _NIST_DTD_URL_RE.fullmatch(x.system_url or "")
    doc_year = int(m.group(1)) if m else None
    if not x.doctype:
        out.add(None, "no DOCTYPE line (NIST validates against the DTD it names)")
    elif doc_year is None or not x.doctype.startswith(f"<!DOCTYPE {runxml.ROOT} "):
        out.add(None, f"DOCTYPE does not name NIST's DTD ({NIST_DTD_URL.format(year='YYYY')}): {x.doctype}")
    elif year is not None and doc_year != year:
        out.add(None, f"DOCTYPE names the tv{doc_year} DTD, not tv{year}")
    year = year or doc_year
    if year is None:  # no year anywhere: judge by the attributes the file uses
        if "algo" in x.attrs:
            return ALGO_YEAR
        return TASK_YEAR if "task" in x.attrs or "novelty" in x.attrs else FEEDBACK_YEAR
    if year < FIRST_YEAR:
        out.add(None, f"year {year}: AVS runs exist from {FIRST_YEAR} on")
        return FIRST_YEAR
    return year


def _is_seconds(s: str) -> bool:
    try:
        v = float(s)
    except ValueError:
        return False
    return math.isfinite(v) and v >= 0


def _check_seq(items: list[runxml.XmlItem], num: int, out: _Collect) -> None:
    """NIST's rules: every seqNum a whole number 1..1000, none twice (order and gaps do not matter)."""
    first: dict[int, int | None] = {}
    for it in items:
        if it.seq is None:
            continue  # the DTD check reported it
        seq = _java_int(it.seq.strip())
        if seq is None or not 1 <= seq <= MAX_ITEMS:
            out.add(it.line, f"topic {num}: seqNum {it.seq!r} is not a whole number from 1 to {MAX_ITEMS}")
        elif seq in first:
            out.add(it.line, f"topic {num}: seqNum {seq} appears again (first at line {first[seq]})")
        else:
            first[seq] = it.line


def _check_shots(shots_lines: list[tuple[str, int | None]], num: int, shots: ValidShots | None, out: _Collect) -> None:
    if len(shots_lines) > MAX_ITEMS:
        out.add(shots_lines[MAX_ITEMS][1], f"topic {num} has {len(shots_lines)} items; at most {MAX_ITEMS} are allowed")
    first: dict[str, int | None] = {}
    for shot, line in shots_lines:
        if has_part_prefix(shot):
            out.add(
                line,
                f"topic {num}: shot id {shot!r} has a collection prefix NIST's ids do not have "
                f"({nist_shot_id(shot)}; avs run convert removes it)",
            )
        elif not is_shot_id(shot):
            out.add(line, f"topic {num}: shot id {shot!r} is not shot<digits>_<digits>")
        elif shots is not None and shot not in shots:
            spelled = shots.spelled(shot)
            out.add(
                line,
                f"topic {num}: {shot} is not in the {shots.kind}"
                if spelled is None
                else f"topic {num}: {shot} is written {spelled} in the {shots.kind} and in NIST's judgments "
                f"(NIST's checker passes it, but it would never match a judged shot)",
            )
        if shot in first:
            out.add(line, f"topic {num}: {shot} appears twice (first at line {first[shot]})")
        first.setdefault(shot, line)


def _check_topic_set(seen, topic_nums, out: _Collect) -> None:
    if topic_nums is None:
        return
    for n in topic_nums:
        if n not in seen:
            out.add(None, f"no result for topic {n} of the topics file")


def _trec_problems(run: tio.RunColumns, path: str, prefix: str, topic_nums, shots: ValidShots | None) -> list[Problem]:
    out = _Collect(path)
    by_topic: dict[int, list[np.ndarray]] = defaultdict(list)  # rows, ids that read as one number together
    for topic, rows in zip(run.topics, run.rows_by_topic()):
        try:
            by_topic[nist_topic_num(topic, prefix)].append(rows)
        except ValueError as e:
            for line in run.line[rows].tolist():
                out.add(line, str(e))
    first_line = {}
    for num, parts in by_topic.items():  # one topic's lines at a time: memory stays that of the columns
        rows = np.sort(np.concatenate(parts))
        lines = run.line[rows].tolist()
        first_line[num] = lines[0]
        if topic_nums is not None and num not in topic_nums:
            out.add(lines[0], f"topic {num} is not in the topics file")
        _check_shots(list(zip(run.shots(rows), lines)), num, shots, out)
    _check_topic_set(first_line, topic_nums, out)
    return out.sorted()


# ----------------------------------------------------------------------------------------------- fusion


def _normalize(scores: list[float], norm: str) -> list[float]:
    if norm == "minmax":
        lo, hi = min(scores), max(scores)
        # A run that scores all its shots alike ranks them all as its best.
        return [1.0] * len(scores) if hi == lo else [(s - lo) / (hi - lo) for s in scores]
    if norm == "zscore":
        mean, sd = statistics.fmean(scores), statistics.pstdev(scores)
        return [0.0] * len(scores) if sd == 0 else [(s - mean) / sd for s in scores]
    return list(scores)


def fuse(
    runs: list[Run],
    method: str = "rrf",
    weights: list[float] | None = None,
    norm: str | None = None,
    depth: int = MAX_ITEMS,
    k: int = RRF_K,
) -> Run:
    """Late fusion of ``runs`` per topic, best ``depth`` kept; ties go to the larger shot id, as in evaluation.

    * rrf: sum of w / (k + rank) (ranks from 1; scores and ``norm`` unused).
    * combsum: sum of w * normalized score; combmnz: combsum times the number of runs that retrieved the shot.
    ``norm`` (per run and topic) defaults to minmax for combsum/combmnz. Items without a score (XML runs) get
    the strictly decreasing 9999 - (rank - 1) of the XML -> TREC conversion.
    """
    if not runs:
        raise InputError(None, "nothing to fuse")
    if method not in METHODS:
        raise InputError(None, f"unknown fusion method {method!r} (use {', '.join(METHODS)})")
    if method == "rrf" and norm not in (None, "none"):
        raise InputError(None, "rrf fuses ranks; --norm applies to combsum and combmnz only")
    norm = norm or ("none" if method == "rrf" else "minmax")
    if norm not in NORMS:
        raise InputError(None, f"unknown normalization {norm!r} (use {', '.join(NORMS)})")
    weights = [1.0] * len(runs) if weights is None else list(weights)
    if len(weights) != len(runs):
        raise InputError(None, f"{len(weights)} weights for {len(runs)} runs")
    if depth < 1:
        raise InputError(None, f"depth must be at least 1, not {depth}")
    nums = sorted({n for r in runs for n in r.topics})
    topics = {}
    for num in nums:
        fused: dict[str, float] = defaultdict(float)
        hits: dict[str, int] = defaultdict(int)
        elapsed = []
        for run, w in zip(runs, weights):
            t = run.topics.get(num)
            if t is None or not t.items:
                continue
            elapsed.append(t.elapsed)
            scores = _normalize([_score(it, r) for r, it in enumerate(t.items, 1)], norm)
            for rank, (it, s) in enumerate(zip(t.items, scores), 1):
                fused[it.shot] += w / (k + rank) if method == "rrf" else w * s
                hits[it.shot] += 1
        if method == "combmnz":
            fused = {shot: s * hits[shot] for shot, s in fused.items()}
        ranked = sorted(fused.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)[:depth]
        topics[num] = TopicResult([Item(shot, s) for shot, s in ranked], _sum_seconds(elapsed))
    desc = f"{method} fusion of " + ", ".join(r.info.pid or Path(r.path or "?").name for r in runs)
    return Run(replace(runs[0].info, desc=desc), topics, runs[0].year, None)


def _sum_seconds(values: list[str | None]) -> str | None:
    """Elapsed time of a fused topic: every fused system ran, so the times add up (unknown if any is)."""
    if not values or any(v is None or not _is_seconds(v) for v in values):
        return None
    return whole_seconds(sum(float(v) for v in values))
