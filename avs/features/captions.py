"""Caption datasets in RUC's layout (``TextData/<c>.caption.txt``, ``VideoSets/<c>.txt``, BigFile video
features or an avs store): what training and retrieval evaluation read."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import pandas as pd

from avs.errors import InputError, first_few
from avs.features.importers import read_bigfile, read_frame_bigfile
from avs.features.precomputed import PrecomputedTextFeatures
from avs.formats.shots import read_id_list
from avs.formats.store import FeatureStore, open_store

if TYPE_CHECKING:
    from avs.models.config import ModelConfig

# ----------------------------------------------------------------------------------------------------
# Caption datasets (MSR-VTT / MSVD / TGIF / VATEX style, RUC layout; laff-method.md §1.2)


def read_captions(path: str | os.PathLike) -> pd.DataFrame:
    """``<videoid>#<k> <text>`` lines -> DataFrame (caption_id, video_id, text), file order.

    The id ends at the first whitespace; the video id is the part before the first ``#``. Empty captions
    are kept (text ""); blank lines are skipped. A line without ``#`` in its id, or a repeated caption id,
    is an InputError naming the line.
    """
    p = Path(path)
    rows: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    try:
        with open(p, encoding="utf-8-sig") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                cap_id, text = _split_caption(line)
                video, sep, _ = cap_id.partition("#")
                if not sep or not video:
                    raise InputError(p, f"caption id {cap_id!r} is not <videoid>#<k>", line=lineno)
                if cap_id in seen:
                    raise InputError(p, f"caption id {cap_id} repeats", line=lineno)
                seen.add(cap_id)
                rows.append((cap_id, video, text))
    except FileNotFoundError:
        raise InputError(p, "no such file") from None
    except UnicodeDecodeError as e:
        raise InputError(p, f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    return pd.DataFrame(rows, columns=["caption_id", "video_id", "text"])


def _split_caption(line: str) -> tuple[str, str]:
    parts = line.strip().split(None, 1)
    return parts[0], (parts[1].strip() if len(parts) > 1 else "")


@dataclass
class CaptionDataset:
    """Captions, the video list and the video (and frame) features of one caption collection (e.g. ``msvdtrain``)."""

    name: str
    captions: pd.DataFrame  # caption_id, video_id, text
    videos: list[str]
    features: tuple[str, ...]
    _store: FeatureStore | None = None
    _bigfiles: dict | None = None
    frame_features: tuple[str, ...] = ()
    _frame_bigfiles: dict | None = None

    def vectors(self, feature: str, video_ids: Sequence[str] | None = None) -> np.ndarray:
        """float32 rows of ``feature`` for ``video_ids`` (default: the video list), in that order."""
        video_ids = self.videos if video_ids is None else list(video_ids)
        if self._store is not None:
            return self._store.get(feature, self._store.rows(video_ids), dtype=np.float32)
        if feature not in (self._bigfiles or {}):
            raise InputError(None, f"feature {feature!r} not loaded (have: {', '.join(self.features)})")
        return self._bigfiles[feature].vectors(video_ids)

    def frame_dim(self, feature: str) -> int:
        if self._store is not None and feature in self._store.frame_dims:
            return self._store.frame_dims[feature]
        if feature not in (self._frame_bigfiles or {}):
            raise InputError(None, f"frame feature {feature!r} not loaded (have: {', '.join(self.frame_features)})")
        return self._frame_bigfiles[feature].dim

    def frames(self, feature: str, video_ids: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Frames of ``feature`` for ``video_ids`` (default: the video list), in that order: float32
        ``(B, F, dim)`` zero-padded to the most frames among them, and the ``(B, F)`` mask of real frames."""
        video_ids = self.videos if video_ids is None else list(video_ids)
        if self._store is not None:
            return self._store.frames(feature, self._store.rows(video_ids))
        self.frame_dim(feature)  # refuses an unknown feature
        return self._frame_bigfiles[feature].frames(video_ids)


def open_caption_dataset(
    root: str | os.PathLike,
    collection: str,
    features: Sequence[str] = (),
    store: str | os.PathLike | None = None,
    frame_features: Sequence[str] = (),
    max_frames: int = 50,
) -> CaptionDataset:
    """Read ``<root>/<collection>/`` in RUC's layout.

    Captions come from ``TextData/<collection>.caption.txt``, the videos from ``VideoSets/<collection>.txt``,
    features either from BigFile folders ``FeatureData/<feature>/`` (``features``) and frame-level BigFile
    folders ``FeatureData/frame/<feature>/`` (``frame_features``, at most ``max_frames`` per video), or from a
    store (``store``, all its features and frame features). Every caption's video must be in the list and
    every listed video must have every feature.
    """
    base = Path(root) / collection
    cap_path = base / "TextData" / f"{collection}.caption.txt"
    list_path = base / "VideoSets" / f"{collection}.txt"
    captions = read_captions(cap_path)
    videos = read_id_list(list_path, unique=True)
    known = set(videos)
    stray = [v for v in dict.fromkeys(captions["video_id"]) if v not in known]
    if stray:
        raise InputError(cap_path, f"captions of {len(stray)} videos not in {list_path} (first: {first_few(stray)})")
    if store is not None:
        st = open_store(store)
        st.rows(videos)  # every video must be there
        return CaptionDataset(collection, captions, videos, st.features, _store=st, frame_features=st.frame_features)

    bigfiles = {}
    for feat in features:
        bf = read_bigfile(base / "FeatureData" / feat)
        lacking = [v for v in videos if v not in bf.index]
        if lacking:
            raise InputError(
                bf.path,
                f"lacks {len(lacking)} of the {len(videos)} videos of {list_path} (first: {first_few(lacking)})",
            )
        bigfiles[feat] = bf
    frame_bigfiles = {}
    for feat in frame_features:
        fb = read_frame_bigfile(base / "FeatureData" / "frame" / feat, max_frames)
        lacking = [v for v in videos if v not in fb.rows]
        if lacking:
            raise InputError(
                fb.path,
                f"has no frames for {len(lacking)} of the {len(videos)} videos of {list_path} "
                f"(first: {first_few(lacking)})",
            )
        frame_bigfiles[feat] = fb
    return CaptionDataset(
        collection,
        captions,
        videos,
        tuple(features),
        _bigfiles=bigfiles,
        frame_features=tuple(frame_features),
        _frame_bigfiles=frame_bigfiles,
    )


# ----------------------------------------------------------------------------------------------------
# A caption dataset opened for one model's features (training, retrieval evaluation, diagnostics)


@dataclass
class CaptionData:
    """A caption dataset opened for a model: captions, videos, video features and per-caption text vectors."""

    path: Path
    dataset: CaptionDataset
    # text feature name -> avs.features.precomputed.PrecomputedTextFeatures
    text_features: dict[str, PrecomputedTextFeatures] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.dataset.name

    def video_dims(self, names: Sequence[str]) -> dict[str, int]:
        """Dimensions of the named video (and frame) features this dataset has (absent ones are left out)."""
        ds, first = self.dataset, self.dataset.videos[:1]
        dims = {n: int(ds.vectors(n, first).shape[1]) for n in names if n in ds.features}
        dims.update({n: ds.frame_dim(n) for n in names if n in ds.frame_features and n not in dims})
        return dims


def video_feature_names(config: ModelConfig) -> list[str]:
    """The video-side features ``config`` reads, its frame feature included."""
    return [f.name for f in config.video] + ([config.frame.name] if config.frame is not None else [])


def open_data(path: str | os.PathLike, config: ModelConfig, store: str | os.PathLike | None = None) -> CaptionData:
    """Open DATA (``ROOT/COLLECTION``, RUC layout) with the video features and precomputed text features that
    ``config`` names. Features the data lacks are left out here and reported by :func:`check_video_features`."""
    p = Path(path)
    if not p.is_dir():
        raise InputError(p, "not a collection directory (expected ROOT/COLLECTION in RUC's layout)")
    names = [f.name for f in config.video]
    present = [n for n in names if (p / "FeatureData" / n).is_dir()] if store is None else ()
    frames = (
        [config.frame.name]
        if config.frame is not None and store is None and (p / "FeatureData" / "frame" / config.frame.name).is_dir()
        else []
    )
    dataset = open_caption_dataset(p.parent, p.name, present, store, frame_features=frames)
    if dataset.captions.empty:
        raise InputError(p / "TextData" / f"{p.name}.caption.txt", "no captions")
    text = {}
    for f in config.text:
        folder = p / "TextData" / f.name
        if f.kind in ("clip", "precomputed") and folder.is_dir():
            text[f.name] = PrecomputedTextFeatures(folder)
    return CaptionData(p, dataset, text)
