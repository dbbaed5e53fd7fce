"""The yearly job: topics in, a submission-ready run out (encode topics, scan the index, keep the top k)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np

from avs.engine.encode import encode_topics, text_featurizer, weighted_queries
from avs.engine.index import open_index
from avs.engine.search import search
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
) -> SearchResult:
    """Search every topic; each topic's elapsed time is its own encoding and ranking time plus an equal share
    of the index scan (all topics are scored in one pass)."""
    t0 = time.perf_counter()
    ts = as_topics(topics)
    loaded = load_model(model, device)
    idx = open_index(index)
    idx.check_model(loaded)
    featurizer = text_featurizer(loaded, word2vec=word2vec)
    encode_s, embs = [], []
    for topic in ts:
        t = time.perf_counter()
        embs.append(encode_topics(loaded, featurizer, TopicSet([topic]))[0])
        encode_s.append(time.perf_counter() - t)
    queries = weighted_queries(np.stack(embs), idx.space_weights)
    skip = sorted(shots_to_exclude(exclude)) if exclude is not None else ()
    t = time.perf_counter()
    hits = search(idx, queries, k=k, exclude=skip, progress=progress)
    scan_share = (time.perf_counter() - t) / len(ts)
    task = TASK_CODE.get(ts.task or "", None)
    info = info or RunInfo()
    info = RunInfo(
        tr_type=info.tr_type or "D",
        run_class=info.run_class or "F",
        task=info.task or task or "M",
        novelty=info.novelty or "C",
        algo=info.algo or "V",
        pid=info.pid or "avs",
        priority=info.priority or "1",
        desc=info.desc or f"avs {loaded.config.name} on {idx.collection_name}",
    )
    if year is None and ts.year and ts.year.isdigit():
        year = int(ts.year)
    results = {
        topic.num: TopicResult(
            [Item(s, float(v)) for s, v in zip(h.shots, h.scores)], elapsed=whole_seconds(encode_s[i] + scan_share)
        )
        for i, (topic, h) in enumerate(zip(ts, hits))
    }
    if not any(r.items for r in results.values()):
        raise InputError(index, "the index returned no shots")
    excluded = len(set(skip) & set(idx.ids)) if skip else 0
    return SearchResult(Run(info, results, year=year), ts, time.perf_counter() - t0, excluded)
