"""What the web UI shows, as plain data: a model and its index loaded once (the :class:`~avs.engine.searcher.Searcher`),
a topic file, judgments and runs to compare. :class:`ServeSession` answers every page and API route with
dictionaries ready for JSON; ``avs.serve.app`` only routes requests to it. Nothing here reads a path that a
request names: every file is one the session was opened with.
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from avs.engine.searcher import Searcher
from avs.errors import InputError
from avs.eval.infap import evaluate_runs, load_labels, run_name
from avs.formats.runs import Item, Run, RunInfo, TopicResult, read_run, run_lines, to_trec, to_xml, whole_seconds
from avs.formats.topics import Topic, TopicSet, read_topics
from trec_eval_compat.evaluate import Evaluation, Qrels, evaluate
from trec_eval_compat.ids import DEFAULT_PREFIX, eval_topic_id

MAX_K = 1000
THUMB_NAME = re.compile(r"shot[0-9A-Za-z]+_[0-9]+_RKF\.jpg")
MEASURES = ("infAP", "infNDCG", "iP5", "iP10", "iP15", "iP20", "iP30", "iP100", "iP200", "iP500", "iP1000")


class RequestError(ValueError):
    """A bad request: the one message the client gets back (HTTP 400, or 404 with ``not_found``)."""

    def __init__(self, message: str, not_found: bool = False):
        super().__init__(message)
        self.not_found = not_found


@dataclass
class ServeConfig:
    """What ``avs serve`` opens. ``model`` and ``index`` both or neither (neither: the SIMULATED demo, with its
    judgments and the TRECVID 2020 topics unless others are given)."""

    model: str | os.PathLike | None = None
    index: str | os.PathLike | None = None
    topics: str | os.PathLike | None = None
    qrels: str | os.PathLike | None = None
    runs: Sequence[str | os.PathLike] = ()
    thumbs: str | os.PathLike | None = None
    exclude: str | os.PathLike | None = None
    word2vec: str | os.PathLike | None = None
    device: str = "cpu"
    store: str | os.PathLike | None = None  # checked against the index: the collection it was built from
    ann: bool = False  # approximate search (FAISS candidates, scored exactly)


@dataclass
class ServeSession:
    searcher: Searcher
    topics: TopicSet | None
    qrels: Qrels | None
    runs: dict[str, Run]
    evaluations: dict[str, Evaluation]
    thumbs: Path | None
    simulated: bool
    labels: dict[int, frozenset[str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _rankings: dict[int, tuple[list[str], list[float], float]] = field(default_factory=dict, repr=False)

    # --- opening ---

    @classmethod
    def open(cls, config: ServeConfig) -> "ServeSession":
        if (config.model is None) != (config.index is None):
            raise InputError(None, "give both a model and its index (or neither, for the built-in demo)")
        simulated = config.model is None
        model, index, topics, qrels = config.model, config.index, config.topics, config.qrels
        if simulated:
            from avs.demo.builtin import ensure

            demo = ensure()
            model, index = demo.model, demo.index
            topics = topics or "tv20"
            qrels = qrels or demo.qrels
        for what, path in (("--thumbs", config.thumbs),):
            if path is not None and not Path(path).is_dir():
                raise InputError(path, f"not a folder ({what})")
        searcher = Searcher(
            model, index, word2vec=config.word2vec, exclude=config.exclude, device=config.device, ann=config.ann
        )
        if config.store is not None:
            searcher.index.check_store(config.store)
        ts = read_topics(topics) if topics is not None else None
        q = Qrels.read(qrels) if qrels is not None else None
        runs = {}
        for path in config.runs:
            name = run_name(path)
            if name in runs:
                raise InputError(path, f"two runs are named {name!r}: rename one")
            runs[name] = read_run(path)
        # keyed by run name, as runs are (two runs of one name were refused above)
        evaluations = evaluate_runs(list(config.runs), q) if q is not None and config.runs else {}
        labels = load_labels(None)
        if ts is not None:
            labels.update({t.num: t.labels for t in ts if t.labels is not None})
        thumbs = Path(config.thumbs).resolve() if config.thumbs is not None else None
        return cls(searcher, ts, q, runs, evaluations, thumbs, simulated, labels)

    # --- what the pages ask ---

    def info(self) -> dict:
        s = self.searcher
        return {
            "collection": s.index.collection_name,
            "model": s.model.config.name,
            "shots": len(s.index.ids),
            "simulated": self.simulated,
            "topics": len(self.topics) if self.topics is not None else 0,
            "topic_set": _topic_set_name(self.topics),
            "judgments": self.qrels is not None,
            "runs": list(self.runs),
            "thumbnails": self.thumbs is not None,
            "approximate": self.searcher.ann is not None,
        }

    def search(self, query: str, k: int = 100) -> dict:
        query = query.strip()
        if not query:
            raise RequestError("empty query: type some words")
        _check_k(k)
        with self._lock:  # one scan at a time: each already uses every core
            t = time.perf_counter()
            hits = self.searcher.query(query, k)
            elapsed = (time.perf_counter() - t) * 1000  # the search itself, not the wait for the lock
        return {
            "query": query,
            "elapsed_ms": round(elapsed, 2),
            "results": [_hit(r, s, v, self.thumbs) for r, (s, v) in enumerate(zip(hits.shots, hits.scores), 1)],
        }

    def topic_list(self) -> dict:
        return {
            "topic_set": _topic_set_name(self.topics),
            "topics": [_topic_info(t, self.labels) for t in (self.topics or [])],
        }

    def topic(self, num: int, k: int = MAX_K) -> dict:
        topic = self._topic(num)
        _check_k(k)
        shots, scores, seconds = self._ranking(topic)
        elapsed = seconds * 1000
        judged = self._judgments(num)
        results = [
            {**_hit(r, s, v, self.thumbs), "judgment": _judgment(judged, s)}
            for r, (s, v) in enumerate(zip(shots[:k], scores[:k]), 1)
        ]
        out = {**_topic_info(topic, self.labels), "elapsed_ms": round(elapsed, 2), "results": results}
        if self.qrels is not None:
            out["measures"] = self._measures(num, shots, scores)
        return out

    def compare(self, a: str, b: str, num: int) -> dict:
        runs = [self._run(a), self._run(b)]
        self._topic(num)
        lists = [[i.shot for i in (r.topics.get(num) or TopicResult([])).items] for r in runs]
        found = [set(lists[0]), set(lists[1])]
        only = [[s for s in lists[0] if s not in found[1]], [s for s in lists[1] if s not in found[0]]]
        judged = self._judgments(num)
        sides = []
        for name, shots, alone in zip((a, b), lists, only):
            per_topic = self.evaluations[name].per_topic if name in self.evaluations else None
            infap = per_topic["infAP"].get(eval_topic_id(num)) if per_topic is not None else None
            sides.append(
                {
                    "run": name,
                    "shots": len(shots),
                    "infAP": None if infap is None else float(infap),
                    "only_here": [_shot(s, self.thumbs) | {"judgment": _judgment(judged, s)} for s in alone[:MAX_K]],
                }
            )
        return {
            "topic": num,
            "overlap": len(found[0] & found[1]),
            "a": sides[0],
            "b": sides[1],
            "per_topic": self.per_topic_infap(a, b),
        }

    def per_topic_infap(self, a: str, b: str) -> list[dict]:
        """infAP per topic of two runs (with judgments; empty without)."""
        for name in (a, b):
            self._run(name)
        evs = [self.evaluations.get(n) for n in (a, b)]
        if any(e is None for e in evs):
            return []
        topics = sorted(set(evs[0].per_topic.index) | set(evs[1].per_topic.index), key=lambda t: (len(t), t))
        return [
            {
                "topic": t,
                a: float(evs[0].per_topic.loc[t, "infAP"]) if t in evs[0].per_topic.index else None,
                b: float(evs[1].per_topic.loc[t, "infAP"]) if t in evs[1].per_topic.index else None,
            }
            for t in topics
        ]

    def compare_plot(self, a: str, b: str) -> bytes:
        import pandas as pd

        from avs.eval.plots import per_topic_bars

        rows = self.per_topic_infap(a, b)
        if not rows:
            raise RequestError("no judgments: the server was started without --qrels", not_found=True)
        df = pd.DataFrame(rows).set_index("topic")[[a, b]]
        return per_topic_bars(df, f"infAP per topic: {a} vs {b}")

    def export(self, fmt: str = "xml", pid: str | None = None, year: int | None = None) -> tuple[str, bytes]:
        """The model's ranking of every topic as a submission run, written by the writer ``avs search`` uses;
        (file name, bytes)."""
        if self.topics is None:
            raise RequestError("no topic file: the server was started without --topics", not_found=True)
        if fmt not in ("xml", "trec"):
            raise RequestError(f"format {fmt!r}: xml or trec")
        if self.searcher.ann is not None:
            raise RequestError("the server searches approximately (--ann): restart it without --ann to export a run")
        if self.simulated:
            from avs.demo.builtin import DEMO_PID

            pid = DEMO_PID
        results = {}
        for t in self.topics:
            shots, scores, seconds = self._ranking(t)
            results[t.num] = TopicResult([Item(s, v) for s, v in zip(shots, scores)], elapsed=whole_seconds(seconds))
        info = self.searcher.run_info(RunInfo(pid=pid), self.topics)
        year = year or (int(self.topics.year) if self.topics.year and self.topics.year.isdigit() else None)
        if year is not None and not 2016 <= year <= 2100:
            raise RequestError(f"year {year}: an AVS run's year, from 2016 on")
        if fmt == "xml" and year is None:
            raise RequestError("the topic file does not say its year: add ?year=")
        run = Run(info, results, year=year)
        name = f"{self.searcher.model.config.name}_{_topic_set_name(self.topics)}"
        try:
            data = to_xml(run, year) if fmt == "xml" else to_trec(run).encode()
        except InputError as e:
            raise RequestError(e.problem) from None
        return f"{name}.{fmt}", data

    def thumbnail(self, name: str) -> Path:
        """The keyframe file ``name`` in the thumbnail folder; only ``shot<video>_<n>_RKF.jpg`` names, and only
        files directly in that folder."""
        if self.thumbs is None or not THUMB_NAME.fullmatch(name):
            raise RequestError("no such thumbnail", not_found=True)
        path = self.thumbs / name
        if not path.is_file():
            raise RequestError("no such thumbnail", not_found=True)
        return path

    # --- helpers ---

    def _topic(self, num: int) -> Topic:
        for t in self.topics or []:
            if t.num == num:
                return t
        raise RequestError(f"unknown topic {num}", not_found=True)

    def _run(self, name: str) -> Run:
        if name not in self.runs:
            known = ", ".join(self.runs) or "none were given (--runs)"
            raise RequestError(f"unknown run {name!r} (runs: {known})", not_found=True)
        return self.runs[name]

    def _ranking(self, topic: Topic) -> tuple[list[str], list[float], float]:
        """The model's top 1000 for a topic (computed once: the model is fixed), and the seconds it took."""
        with self._lock:
            if topic.num not in self._rankings:
                t = time.perf_counter()
                rows = self.searcher.encode([topic.text], [str(topic.num)])
                hits = self.searcher.rank(rows, MAX_K)[0]
                seconds = time.perf_counter() - t
                self._rankings[topic.num] = (hits.shots, [float(v) for v in hits.scores], seconds)
            return self._rankings[topic.num]

    def _judgments(self, num: int) -> dict[str, int]:
        if self.qrels is None:
            return {}
        q = self.qrels.topics.get(eval_topic_id(num))
        return {} if q is None else {shot: judgment for shot, (_, judgment) in q.shots.items()}

    def _measures(self, num: int, shots: list[str], scores: list[float]) -> dict | None:
        if eval_topic_id(num) not in self.qrels.topics:
            return None
        run = Run(RunInfo(pid="avs"), {num: TopicResult([Item(s, v) for s, v in zip(shots, scores)])})
        row = evaluate(self.qrels, run_lines(run, DEFAULT_PREFIX)).per_topic.iloc[0]
        return {m: float(row[m]) for m in MEASURES if m in row.index}


def _check_k(k: int) -> None:
    if not 1 <= k <= MAX_K:
        raise RequestError(f"k must be from 1 to {MAX_K}, not {k}")


def _hit(rank: int, shot: str, score: float, thumbs: Path | None) -> dict:
    return {"rank": rank, **_shot(shot, thumbs), "score": float(score)}


def _shot(shot: str, thumbs: Path | None) -> dict:
    """A shot as the page shows it: its id, its video, and its keyframe's URL when there is one."""
    out = {"shot": shot, "video": _video(shot)}
    if thumbs is not None and (thumbs / f"{shot}_RKF.jpg").is_file():
        out["thumbnail"] = f"/thumbs/{shot}_RKF.jpg"
    return out


def _video(shot: str) -> str | None:
    m = re.fullmatch(r"shot([0-9A-Za-z]+)_[0-9]+", shot)
    return m.group(1) if m else None


def _judgment(judged: dict[str, int], shot: str) -> str:
    j = judged.get(shot)
    return "unjudged" if j is None or j < 0 else "relevant" if j > 0 else "not relevant"


def _topic_info(t: Topic, labels: dict[int, frozenset[str]]) -> dict:
    return {"num": t.num, "text": t.text, "labels": sorted(labels.get(t.num) or t.labels or ())}


def _topic_set_name(ts: TopicSet | None) -> str | None:
    if ts is None or ts.path is None:
        return None
    return Path(ts.path).stem
