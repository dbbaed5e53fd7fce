"""What a trained model relies on, in the forms of the LAFF supplement: attention weights per feature (Tab. 9)
and how much the embedding spaces agree (Tab. 10). (The fusion ablation, Tab. 11, trains models: it is in
:mod:`avs.train.ablation`.)

Functions compute and return plain DataFrames / dataclasses; ``*_files`` give the files to write (CSV,
Markdown, PNG) and leave the writing to ``avs.eval.report.write_outputs``."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
import torch

from avs.engine.encode import iter_encoded, text_batches
from avs.errors import InputError
from avs.models import LoadedModel, check_video_features, load_model

TOP_K = 5  # Tab. 10 compares the top-5 lists of the spaces


# ----------------------------------------------------------------------------------------------------------
# Tab. 9: attention weights


class _Moments:
    """Running mean and M2 per cell, merged batch by batch (Chan et al.), in float64."""

    def __init__(self):
        self.n, self.mean, self.m2 = 0, None, None

    def add(self, x: np.ndarray) -> None:
        """``x``: (items, ...) values; statistics are kept per trailing cell."""
        k = x.shape[0]
        if k == 0:
            return
        x = x.astype(np.float64)
        mean, m2 = x.mean(axis=0), ((x - x.mean(axis=0)) ** 2).sum(axis=0)
        if self.mean is None:
            self.n, self.mean, self.m2 = k, mean, m2
            return
        delta, total = mean - self.mean, self.n + k
        self.mean = self.mean + delta * k / total
        self.m2 = self.m2 + m2 + delta**2 * self.n * k / total
        self.n = total

    def std(self) -> np.ndarray:
        return np.sqrt(self.m2 / self.n)


@dataclass
class WeightStats:
    """Attention weights of a model's fusion blocks over some items.

    ``table``: one row per side (text / video), feature and space (``0``..``S-1``, and ``all`` = over every
    item and space) with the mean and (population) std of that feature's weight. ``items``: how many texts
    and videos were encoded per side (a side whose fusion has no weights is absent)."""

    model: str
    fusion: str
    table: pd.DataFrame
    items: dict[str, int]

    @property
    def overall(self) -> pd.DataFrame:
        return self.table[self.table["space"] == "all"].reset_index(drop=True)

    def wide(self) -> pd.DataFrame:
        """Tab. 9 form: one row per space (and ``all``), one ``side:feature`` column per feature, cells
        ``mean±std`` to two decimals."""
        t = self.table.assign(
            column=self.table["side"] + ":" + self.table["feature"],
            cell=[f"{m:.2f}±{s:.2f}" for m, s in zip(self.table["mean"], self.table["std"])],
        )
        out = t.pivot(index="space", columns="column", values="cell")
        order = list(dict.fromkeys(t["column"]))
        spaces = list(dict.fromkeys(t["space"]))
        return out.loc[spaces, order].rename_axis(columns=None)


def weight_moments(batches: Iterable[torch.Tensor], features: Sequence[str], side: str) -> pd.DataFrame | None:
    """Statistics of fusion weights given as (B, S, L) batches (None batches: the block has no weights)."""
    per_space, overall = _Moments(), _Moments()
    for w in batches:
        if w is None:
            return None
        w = w.detach().cpu().numpy()
        per_space.add(w)
        overall.add(w.reshape(-1, w.shape[-1]))
    if per_space.n == 0:
        raise InputError(None, f"no {side} item to compute attention weights over")
    rows = []
    for f, name in enumerate(features):
        rows += [
            {"side": side, "feature": name, "space": str(s), "mean": per_space.mean[s, f], "std": per_space.std()[s, f]}
            for s in range(per_space.mean.shape[0])
        ]
        rows.append({"side": side, "feature": name, "space": "all", "mean": overall.mean[f], "std": overall.std()[f]})
    return pd.DataFrame(rows)


def _text_weights(
    loaded: LoadedModel, featurizer, texts: Sequence[str], ids: Sequence[str] | None, batch_size: int
) -> Iterator[torch.Tensor]:
    model = loaded.model.eval()
    return iter_encoded(
        lambda batch: model.encode_text(batch, return_weights=True)[1], text_batches(featurizer, texts, ids, batch_size)
    )


def _video_weights(loaded: LoadedModel, blocks: Iterable[dict[str, np.ndarray]]) -> Iterator[torch.Tensor]:
    model = loaded.model.eval()
    return iter_encoded(lambda feats: model.encode_video(feats, return_weights=True)[1], ((b,) for b in blocks))


def _store_blocks(store, names: Sequence[str], batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    for start in range(0, len(store), batch_size):
        rows = slice(start, min(start + batch_size, len(store)))
        yield {n: store.get(n, rows, dtype=np.float32) for n in names}


def _dataset_blocks(dataset, names: Sequence[str], batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    for start in range(0, len(dataset.videos), batch_size):
        ids = dataset.videos[start : start + batch_size]
        yield {n: dataset.vectors(n, ids) for n in names}


def attention_weights(
    model_dir: str | os.PathLike,
    topics: str | os.PathLike | None = None,
    captions: str | os.PathLike | None = None,
    store: str | os.PathLike | None = None,
    word2vec: str | os.PathLike | None = None,
    batch_size: int = 1024,
) -> WeightStats:
    """Tab. 9 statistics of a model's attention weights.

    ``topics``: the text side over the topic texts, the video side over every shot of ``store`` (left out
    without a store). ``captions``: DATA in RUC's layout (as ``avs train`` reads it): the text side over its
    captions, the video side over its videos (features from ``store`` or DATA's FeatureData folders).
    """
    from avs.engine.encode import text_featurizer
    from avs.features.captions import open_data
    from avs.formats.store import open_store
    from avs.formats.topics import as_topics

    if (topics is None) == (captions is None):
        raise InputError(None, "give either topics or captions")
    loaded = load_model(model_dir)
    cfg = loaded.config
    if cfg.frame is not None:
        raise InputError(
            model_dir,
            f"model {cfg.name!r} fuses frame-level features (LAFF-ml); only video-level features can be read here",
        )
    vnames = [f.name for f in cfg.video]
    if topics is not None:
        ts = as_topics(topics)
        texts, ids = [t.text for t in ts], [str(t.num) for t in ts]
        featurizer = text_featurizer(loaded, word2vec=word2vec)
        videos, n_videos = None, 0
        if store is not None:
            st = open_store(store)
            check_video_features(cfg, st.dims, st.path)
            videos, n_videos = _store_blocks(st, vnames, batch_size), len(st)
    else:
        data = open_data(captions, cfg, store)
        check_video_features(cfg, data.video_dims(vnames), data.path)
        texts = data.dataset.captions["text"].tolist()
        ids = data.dataset.captions["caption_id"].tolist()
        featurizer = text_featurizer(
            loaded, word2vec=word2vec, precomputed={n: data.path / "TextData" / n for n in data.text_features}
        )
        videos, n_videos = _dataset_blocks(data.dataset, vnames, batch_size), len(data.dataset.videos)
    parts, items = [], {}
    text = weight_moments(_text_weights(loaded, featurizer, texts, ids, batch_size), [f.name for f in cfg.text], "text")
    if text is not None:
        parts.append(text)
        items["text"] = len(texts)
    if videos is not None:
        video = weight_moments(_video_weights(loaded, videos), vnames, "video")
        if video is not None:
            parts.append(video)
            items["video"] = n_videos
    if not parts:
        raise InputError(
            model_dir,
            f"model {cfg.name!r} uses {cfg.fusion!r} fusion, which has no attention "
            "weights"
            + ("" if videos is not None or topics is None else " on the text side (give --store for the video side)"),
        )
    return WeightStats(cfg.name, cfg.fusion, pd.concat(parts, ignore_index=True), items)


def weights_files(ws: WeightStats) -> dict[str, str | bytes]:
    from avs.eval.plots import attention_bars
    from avs.eval.report import markdown_table

    title = f"attention weights of {ws.model} ({', '.join(f'{n} {s}' for s, n in ws.items.items())})"
    return {
        "weights.csv": ws.table.to_csv(index=False),
        "weights.md": f"# {title}\n\nmean±std per space and over all spaces\n\n"
        + markdown_table(ws.wide().reset_index()),
        "weights.png": attention_bars(ws.overall, title),
    }


# ----------------------------------------------------------------------------------------------------------
# Tab. 10: inter-space Jaccard


def jaccard(a: set, b: set) -> float:
    union = len(a | b)
    return len(a & b) / union if union else 1.0


def jaccard_matrix(top: Sequence[Sequence[set]]) -> pd.DataFrame:
    """``top[s][q]``: the result set of space s for query q. Entry (s, t) is the mean over queries of the
    Jaccard index of the two spaces' sets."""
    n = len(top)
    if n == 0 or len({len(t) for t in top}) != 1 or len(top[0]) == 0:
        raise ValueError("need the same, non-zero number of queries for every space")
    m = np.eye(n)
    for s, t in itertools.combinations(range(n), 2):
        m[s, t] = m[t, s] = np.mean([jaccard(x, y) for x, y in zip(top[s], top[t])])
    return pd.DataFrame(m, index=pd.Index(range(n), name="space"), columns=list(range(n)))


@dataclass
class SpaceOverlap:
    model: str
    queries: int
    k: int
    matrix: pd.DataFrame  # spaces x spaces, mean Jaccard of the top-k lists


def space_overlap(
    model_dir: str | os.PathLike,
    topics: str | os.PathLike,
    index: str | os.PathLike,
    k: int = TOP_K,
    word2vec: str | os.PathLike | None = None,
) -> SpaceOverlap:
    """Tab. 10: for every topic the top-``k`` shots of each space alone (its own cosine, exact search over the
    index), and the mean Jaccard index between every pair of spaces."""
    from avs.engine.encode import encode_topics, text_featurizer, weighted_queries
    from avs.engine.index import open_index
    from avs.engine.search import search
    from avs.formats.topics import as_topics

    if k < 1:
        raise InputError(None, f"k = {k}: must be at least 1")
    loaded = load_model(model_dir)
    idx = open_index(index)
    idx.check_model(loaded)
    ts = as_topics(topics)
    emb = encode_topics(loaded, text_featurizer(loaded, word2vec=word2vec), ts)
    spaces = emb.shape[1]
    top = []
    for s in range(spaces):
        hits = search(idx, weighted_queries(emb, np.eye(spaces)[s]), k=k)
        top.append([set(h.shots) for h in hits])
    return SpaceOverlap(loaded.config.name, len(ts), k, jaccard_matrix(top))


def spaces_files(so: SpaceOverlap) -> dict[str, str | bytes]:
    from avs.eval.plots import heatmap
    from avs.eval.report import markdown_table

    title = f"inter-space Jaccard of the top-{so.k} lists, {so.model}, {so.queries} topics"
    return {
        "spaces.csv": so.matrix.reset_index().to_csv(index=False),
        "spaces.md": f"# {title}\n\n" + markdown_table(so.matrix.reset_index(), digits=3),
        "spaces.png": heatmap(so.matrix, title),
    }


__all__ = [
    "WeightStats",
    "weight_moments",
    "attention_weights",
    "weights_files",
    "jaccard",
    "jaccard_matrix",
    "SpaceOverlap",
    "space_overlap",
    "spaces_files",
    "TOP_K",
]
