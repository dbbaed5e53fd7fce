"""Vocabularies built from training captions (``bow_nsw``: stop words removed; ``gru``: with the four special
tokens), and the two text inputs they give: bag-of-words counts and GRU token ids."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np
import torch

from avs.errors import InputError
from avs.features.tokenize import tokenize

# ----------------------------------------------------------------------------------------------------------
# Vocabularies

PAD, START, END, UNK = "<pad>", "<start>", "<end>", "<unk>"


GRU_SPECIALS = (PAD, START, END, UNK)


VOCAB_KINDS = ("bow_nsw", "gru")


@dataclass
class Vocabulary:
    """Words in id order. A ``gru`` vocabulary starts with ``<pad> <start> <end> <unk>`` (ids 0-3)."""

    kind: str
    words: list[str]
    threshold: int
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in VOCAB_KINDS:
            raise ValueError(f"vocabulary kind {self.kind!r} is not one of {', '.join(VOCAB_KINDS)}")
        if self.kind == "gru" and tuple(self.words[:4]) != GRU_SPECIALS:
            raise ValueError(f"a gru vocabulary starts with {' '.join(GRU_SPECIALS)}")
        self._index = {w: i for i, w in enumerate(self.words)}
        if len(self._index) != len(self.words):
            raise ValueError("vocabulary words repeat")

    def __len__(self) -> int:
        return len(self.words)

    def index(self, word: str) -> int | None:
        return self._index.get(word)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "threshold": self.threshold, "words": list(self.words)}

    @classmethod
    def from_dict(cls, d: Mapping, source: str | os.PathLike | None = None) -> "Vocabulary":
        """Inverse of :meth:`to_dict`; a malformed dict is an InputError naming ``source`` (the file it came from)."""
        try:
            kind, threshold, words = d["kind"], d["threshold"], d["words"]
        except (KeyError, TypeError):
            raise InputError(source, "vocabulary: expected an object with kind, threshold and words") from None
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise InputError(source, "vocabulary: words must be a list of strings")
        if not isinstance(threshold, int) or isinstance(threshold, bool):
            raise InputError(source, f"vocabulary: threshold {threshold!r} is not an integer")
        try:
            return cls(kind, words, threshold)
        except ValueError as e:
            raise InputError(source, f"vocabulary: {e}") from None


def build_vocab(captions: Iterable[str], kind: str, threshold: int = 5) -> Vocabulary:
    """Words seen at least ``threshold`` times, most frequent first.

    Equal counts keep the order of first occurrence in ``captions`` (the official code sorts a Counter, which
    keeps insertion order, with a stable sort). ``bow_nsw`` drops stop words; ``gru`` keeps them and
    prepends the four special tokens.
    """
    if kind not in VOCAB_KINDS:
        raise ValueError(f"vocabulary kind {kind!r} is not one of {', '.join(VOCAB_KINDS)}")
    counts: Counter[str] = Counter()
    for caption in captions:
        counts.update(tokenize(caption, remove_stopwords=kind == "bow_nsw"))
    frequent = sorted((wc for wc in counts.items() if wc[1] >= threshold), key=lambda wc: wc[1], reverse=True)
    words = [w for w, _ in frequent]
    return Vocabulary(kind, list(GRU_SPECIALS) + words if kind == "gru" else words, threshold)


def _require_kind(vocab: Vocabulary, kind: str) -> None:
    if vocab.kind != kind:
        raise ValueError(f"needs a {kind} vocabulary, got {vocab.kind}")


def bow_counts(texts: Sequence[str], vocab: Vocabulary) -> np.ndarray:
    """B x V float32 raw counts of the in-vocabulary non-stop tokens (no normalisation, as bow_norm=0)."""
    _require_kind(vocab, "bow_nsw")
    out = np.zeros((len(texts), len(vocab)), dtype=np.float32)
    for row, text in enumerate(texts):
        for token in tokenize(text, remove_stopwords=True):
            col = vocab.index(token)
            if col is not None:
                out[row, col] += 1
    return out


def gru_token_ids(texts: Sequence[str], vocab: Vocabulary) -> tuple[torch.Tensor, torch.Tensor]:
    """``<start>`` + token ids + ``<end>`` per text (unknown words -> ``<unk>``), 0-padded; and the lengths."""
    _require_kind(vocab, "gru")
    unk = vocab.index(UNK)
    seqs = [
        [vocab.index(START)]
        + [unk if (i := vocab.index(t)) is None else i for t in tokenize(text)]
        + [vocab.index(END)]
        for text in texts
    ]
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    ids = torch.full((len(seqs), max(lengths.tolist(), default=0)), vocab.index(PAD), dtype=torch.long)
    for row, seq in enumerate(seqs):
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
    return ids, lengths
