"""All text features of a batch, as LAFF's text encoders consume them (laff-method.md §2):

* ``bow``  -- raw counts over the ``bow_nsw`` vocabulary (stop words removed, words seen >= threshold times).
* ``w2v``  -- mean word2vec vector of the distinct non-stop words of a caption (zero if none is known).
* ``gru``  -- token ids (``<start>`` words ``<end>``) for :class:`avs.models.gru.GruTextEncoder`, which is trained.
* ``clip`` -- a frozen CLIP text embedding: precomputed per caption id, or computed by
  :class:`avs.models.clip_text.ClipTextEncoder` from a checkpoint the user supplies. Never one silently in place
  of the other (laff-method.md §14.4).
* ``precomputed`` -- any other vector read by caption or topic id.

``docs/text-features.md`` lists the accepted file formats and where this differs from the official code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

import numpy as np
import torch

from avs.errors import InputError
from avs.features.precomputed import PrecomputedTextFeatures
from avs.features.vocab import Vocabulary, bow_counts, gru_token_ids
from avs.features.word2vec import Word2Vec

if TYPE_CHECKING:  # the CLIP text tower is a model; features only call its encode()
    from avs.models.clip_text import ClipTextEncoder


# ----------------------------------------------------------------------------------------------------------
# All text features of a batch

TEXT_FEATURE_KINDS = ("bow", "w2v", "gru", "clip", "precomputed")


@dataclass(frozen=True)
class TextFeatureSpec:
    """One text feature of a model: its name, kind and (optionally, checked when given) input width."""

    name: str
    kind: str
    dim: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in TEXT_FEATURE_KINDS:
            raise InputError(
                None, f"text feature {self.name!r}: kind {self.kind!r} is not one of {', '.join(TEXT_FEATURE_KINDS)}"
            )


class TextFeaturizer:
    """Turns a batch of texts (and their caption/topic ids) into the inputs of the text encoders.

    Output keys: ``bow``, ``w2v``, ``gru_ids`` + ``gru_lengths``, ``clip``, and ``pre:<name>`` per other
    precomputed feature. ``vocabs`` are picked by kind (``bow_nsw`` for bow, ``gru`` for gru);
    ``precomputed`` maps a spec name (the clip spec's, or a precomputed spec's) to its vectors.
    """

    def __init__(
        self,
        specs: Sequence[TextFeatureSpec],
        vocabs: Iterable[Vocabulary] | Mapping[str, Vocabulary] = (),
        w2v: Word2Vec | None = None,
        precomputed: Mapping[str, PrecomputedTextFeatures] | None = None,
        clip: ClipTextEncoder | None = None,
    ):
        self.specs = list(specs)
        self.vocabs: dict[str, Vocabulary] = {}
        for v in vocabs.values() if isinstance(vocabs, Mapping) else vocabs:
            if v.kind in self.vocabs:
                raise ValueError(f"two {v.kind} vocabularies given")
            self.vocabs[v.kind] = v
        self.w2v = w2v
        self.precomputed = dict(precomputed or {})
        self.clip = clip
        names = [s.name for s in self.specs]
        if len(set(names)) != len(names):
            raise InputError(None, f"text feature names repeat: {', '.join(names)}")
        for kind in ("bow", "w2v", "gru", "clip"):
            if sum(s.kind == kind for s in self.specs) > 1:
                raise InputError(None, f"more than one {kind} text feature configured")
        self.dims = {s.name: self._check(s) for s in self.specs}

    def _check(self, spec: TextFeatureSpec) -> int:
        """The input width of ``spec`` (vocabulary size for gru), failing if its source is missing."""
        if spec.kind == "bow":
            dim = len(self._vocab("bow_nsw", spec))
        elif spec.kind == "gru":
            return len(self._vocab("gru", spec))
        elif spec.kind == "w2v":
            if self.w2v is None:
                raise InputError(None, f"text feature {spec.name!r} needs a word2vec model")
            dim = self.w2v.dim
        elif spec.name in self.precomputed:
            dim = self.precomputed[spec.name].dim
        elif spec.kind == "clip" and self.clip is not None:
            dim = self.clip.embed_dim
        else:
            need = "precomputed vectors or a CLIP checkpoint" if spec.kind == "clip" else "precomputed vectors"
            raise InputError(None, f"text feature {spec.name!r} ({spec.kind}) needs {need}; none given")
        if spec.dim is not None and spec.dim != dim:
            where = self.precomputed[spec.name].path if spec.name in self.precomputed else None
            raise InputError(where, f"text feature {spec.name!r} is configured as {spec.dim}-d but has {dim} dims")
        return dim

    def _vocab(self, kind: str, spec: TextFeatureSpec) -> Vocabulary:
        if kind not in self.vocabs:
            raise InputError(None, f"text feature {spec.name!r} needs a {kind} vocabulary; none given")
        return self.vocabs[kind]

    def featurize(self, texts: Sequence[str], ids: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        if ids is not None and len(ids) != len(texts):
            raise ValueError(f"{len(ids)} ids for {len(texts)} texts")
        out: dict[str, torch.Tensor] = {}
        for spec in self.specs:
            if spec.kind == "bow":
                out["bow"] = torch.from_numpy(bow_counts(texts, self.vocabs["bow_nsw"]))
            elif spec.kind == "w2v":
                out["w2v"] = torch.from_numpy(self.w2v.mean_vectors(texts))
            elif spec.kind == "gru":
                out["gru_ids"], out["gru_lengths"] = gru_token_ids(texts, self.vocabs["gru"])
            else:
                key = "clip" if spec.kind == "clip" else f"pre:{spec.name}"
                if spec.name in self.precomputed:
                    out[key] = torch.from_numpy(self._by_id(spec, ids))
                else:
                    out[key] = self.clip.encode(texts).cpu()
        return out

    def _by_id(self, spec: TextFeatureSpec, ids: Sequence[str] | None) -> np.ndarray:
        source = self.precomputed[spec.name]
        if ids is None:
            raise InputError(
                source.path,
                f"text feature {spec.name!r} is read by caption/topic id, but no ids were given with the texts",
            )
        return source.vectors(ids)
