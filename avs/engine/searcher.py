"""Search: a model and its index loaded once (:class:`Searcher`); the yearly job, topics in and a
submission-ready run out, is one call of it (:func:`search_topics`)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from avs.engine.encode import encode_texts, text_featurizer, weighted_queries
from avs.engine.executor import Executor
from avs.engine.search import Hits
from avs.engine.shards import merge_hits, open_searchable, search_searchable
from avs.errors import InputError
from avs.formats.runs import Item, Run, RunInfo, TopicResult, whole_seconds
from avs.formats.shots import shots_to_exclude
from avs.formats.topics import TopicSet, as_topics
from avs.models import load_model

TASK_CODE = {"main": "M", "progress": "P"}


@dataclass
class SearchResult:
    run: Run
    topics: TopicSet
    seconds: float  # wall time of encoding + scan + ranking
    excluded: int = 0  # shots of the index left out by ``exclude``


class Searcher:
    """A model and the index it built, loaded once, answering many queries: the yearly submission job
    (:meth:`run`), free text (:meth:`query`), or already weighted query rows (:meth:`rank`). The seam the
    CLI, the web UI and distributed executors share.

    ``exclude`` (a shot list, or ``V3C1`` for its shipped dropped shots) is left out of every ranking.
    """

    def __init__(
        self,
        model: str | os.PathLike,
        index: str | os.PathLike,
        *,
        word2vec: str | os.PathLike | None = None,
        exclude: str | os.PathLike | None = None,
        device: str = "cpu",
        ann: bool = False,
        nprobe: int | None = None,
        candidates: int | None = None,
        executor: Executor | None = None,
    ):
        self.model = load_model(model, device)
        self.index = open_searchable(index)  # an index file, or a manifest of shards
        self.index.check_model(self.model)
        self.featurizer = text_featurizer(self.model, word2vec=word2vec)
        self.excluded_ids = sorted(shots_to_exclude(exclude)) if exclude is not None else []
        self.excluded = len(set(self.excluded_ids) & set(self.index.ids)) if self.excluded_ids else 0
        self.executor = executor  # where the shards of a sharded index are searched (default: here)
        self.ann = None
        if ann:  # approximate candidates (FAISS), scored exactly; for interactive use, never by default
            from avs.engine.ann import DEFAULT_CANDIDATES, DEFAULT_NPROBE, AnnIndex

            shards = getattr(self.index, "shards", [self.index])
            self.ann = [AnnIndex(s, nprobe or DEFAULT_NPROBE) for s in shards]
            self.candidates = candidates or DEFAULT_CANDIDATES

    def encode(self, texts: Sequence[str], ids: Sequence[str] | None = None) -> np.ndarray:
        """(N, S·d) query rows whose dot product with an index row is the model's score for that shot;
        ``ids`` (topic numbers) look up precomputed text features where the model uses them."""
        emb = encode_texts(self.model, self.featurizer, list(texts), None if ids is None else list(ids))
        return weighted_queries(emb, self.index.space_weights)

    def rank(self, queries: np.ndarray, k: int = 1000, progress: bool = False) -> list[Hits]:
        """The exact top ``k`` shots of each query row (one scan of the index for all of them)."""
        if self.ann is not None:
            per_shard = [a.search(queries, k, self.candidates, self.excluded_ids) for a in self.ann]
            return [merge_hits([hits[j] for hits in per_shard], k) for j in range(len(queries))]
        return search_searchable(
            self.index, queries, k=k, exclude=self.excluded_ids, progress=progress, executor=self.executor
        )

    def query(self, text: str, k: int = 1000) -> Hits:
        """The top ``k`` shots for one free-text query."""
        if not text.strip():
            raise InputError(None, "empty query")
        return self.rank(self.encode([text]), k)[0]

    def run(
        self,
        topics: str | os.PathLike | TopicSet,
        k: int = 1000,
        info: RunInfo | None = None,
        year: int | None = None,
        progress: bool = False,
    ) -> SearchResult:
        """Search every topic into a submission run. Each topic's elapsed time is its own encoding time plus an
        equal share of the index scan (all topics are scored in one pass)."""
        t0 = time.perf_counter()
        ts = as_topics(topics)
        encode_s, rows = [], []
        for topic in ts:
            t = time.perf_counter()
            rows.append(self.encode([topic.text], [str(topic.num)])[0])
            encode_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        hits = self.rank(np.stack(rows), k, progress)
        scan_share = (time.perf_counter() - t) / len(ts)
        if year is None and ts.year and ts.year.isdigit():
            year = int(ts.year)
        results = {
            topic.num: TopicResult(
                [Item(s, float(v)) for s, v in zip(h.shots, h.scores)],
                elapsed=whole_seconds(encode_s[i] + scan_share),
            )
            for i, (topic, h) in enumerate(zip(ts, hits))
        }
        if not any(r.items for r in results.values()):
            raise InputError(self.index.path, "the index returned no shots")
        run = Run(self.run_info(info, ts), results, year=year)
        return SearchResult(run, ts, time.perf_counter() - t0, self.excluded)

    def run_info(self, info: RunInfo | None, ts: TopicSet) -> RunInfo:
        """``info`` with what it leaves open filled in: the run header of a search of ``ts`` by this model."""
        info = info or RunInfo()
        return RunInfo(
            tr_type=info.tr_type or "D",
            run_class=info.run_class or "F",
            task=info.task or TASK_CODE.get(ts.task or "") or "M",
            novelty=info.novelty or "C",
            algo=info.algo or "V",
            pid=info.pid or "avs",
            priority=info.priority or "1",
            desc=info.desc or f"avs {self.model.config.name} on {self.index.collection_name}",
        )


def search_topics(
    topics: str | os.PathLike | TopicSet,
    model: str | os.PathLike,
    index: str | os.PathLike,
    k: int = 1000,
    exclude: str | os.PathLike | None = None,
    word2vec: str | None = None,
    info: RunInfo | None = None,
    year: int | None = None,
    device: str = "cpu",
    progress: bool = False,
    ann: bool = False,
    executor: Executor | None = None,
) -> SearchResult:
    """One :meth:`Searcher.run`: load ``model`` and ``index``, search every topic of ``topics`` (approximately,
    with ``ann``)."""
    searcher = Searcher(model, index, word2vec=word2vec, exclude=exclude, device=device, ann=ann, executor=executor)
    return searcher.run(topics, k, info, year, progress)
