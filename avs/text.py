"""The text side of LAFF: tokenizer, vocabularies and the per-caption text features (laff-method.md §2).

Features, each keyed in :meth:`TextFeaturizer.featurize`'s output as LAFF's text encoders consume them:

* ``bow``  -- raw counts over the ``bow_nsw`` vocabulary (stop words removed, words seen >= threshold times).
* ``w2v``  -- mean word2vec vector of the distinct non-stop words of a caption (zero if none is known).
* ``gru``  -- token ids (``<start>`` words ``<end>``) for :class:`GruTextEncoder`, which is trained.
* ``clip`` -- a frozen CLIP text embedding: precomputed per caption id, or computed by :class:`ClipTextEncoder`
  from a checkpoint the user supplies. Never one silently in place of the other (laff-method.md §14.4).
* ``precomputed`` -- any other vector read by caption or topic id.

``docs/text-features.md`` lists the accepted file formats and where this differs from the official code.
"""

from __future__ import annotations

import functools
import html
import os
import pickle
import re
import unicodedata
import zipfile
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from trec_eval_compat.io import open_binary

from .collection import first_few, open_store
from .errors import InputError
from .importers import read_bigfile

# The English stop-word list of the official tokenizer (LAFF stopwords_en.txt, NLTK's list): it holds the
# fragments the tokenizer leaves of contractions ("don", "t", "ll", ...) because apostrophes split words.
STOPWORDS: frozenset[str] = frozenset("""
i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her hers
herself it its itself they them their theirs themselves what which who whom this that these those am is are
was were be been being have has had having do does did doing a an the and but if or because as until while
of at by for with about against between into through during before after above below to from up down in out
on off over under again further then once here there when where why how all any both each few more most other
some such no nor not only own same so than too very s t can will just don should now d ll m o re ve y ain
aren couldn didn doesn hadn hasn haven isn ma mightn mustn needn shan shouldn wasn weren won wouldn
""".split())

_WORD = re.compile(r"[A-Za-z0-9]+")


def tokenize(text: str, remove_stopwords: bool = False) -> list[str]:
    """Lower-cased runs of ASCII letters and digits; every other character separates words.

    Matches the official English tokenizer: "don't" -> ["don", "t"], "café" -> ["caf"].
    """
    tokens = [t.lower() for t in _WORD.findall(text)]
    if remove_stopwords:
        return [t for t in tokens if t not in STOPWORDS]
    return tokens


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
    seqs = [[vocab.index(START)] + [unk if (i := vocab.index(t)) is None else i for t in tokenize(text)]
            + [vocab.index(END)] for text in texts]
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    ids = torch.full((len(seqs), max(lengths.tolist(), default=0)), vocab.index(PAD), dtype=torch.long)
    for row, seq in enumerate(seqs):
        ids[row, :len(seq)] = torch.tensor(seq, dtype=torch.long)
    return ids, lengths


# ----------------------------------------------------------------------------------------------------------
# word2vec

def word2vec_path(path: str | os.PathLike | None) -> Path | None:
    """A word2vec path given by the user (``--word2vec``), checked where it is taken in even when the model
    turns out not to need one: a path that does not exist is an InputError naming it, never ignored."""
    if path is None:
        return None
    p = Path(path)
    if not p.exists():
        raise InputError(p, "no such word2vec file or directory")
    return p


class Word2Vec:
    """Word vectors (N x dim float32, possibly memory-mapped) with a word -> row index."""

    def __init__(self, words: Sequence[str], vectors: np.ndarray, path: str | os.PathLike | None = None):
        if vectors.ndim != 2 or vectors.shape[0] != len(words):
            raise ValueError(f"{len(words)} words but vectors of shape {vectors.shape}")
        self.path = None if path is None else Path(path)
        self.words = list(words)
        self.vectors = vectors
        self._index = {w: i for i, w in enumerate(self.words)}

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self._index

    def vector(self, word: str) -> np.ndarray | None:
        row = self._index.get(word)
        return None if row is None else np.array(self.vectors[row], dtype=np.float32)

    def mean_vectors(self, texts: Sequence[str]) -> np.ndarray:
        """B x dim float32: mean vector of the DISTINCT known non-stop words of each text, zeros if none.

        The official w2v_nsw reads the words through BigFile.read, which de-duplicates them: a word said
        twice counts once.
        """
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            rows = sorted({self._index[t] for t in tokenize(text, remove_stopwords=True) if t in self._index})
            if rows:
                out[row] = np.asarray(self.vectors[rows], dtype=np.float64).mean(axis=0)
        return out

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Word2Vec":
        """A RUC BigFile folder, or a word2vec file in binary or text format (optionally gzipped).

        Binary and text files both start with an "N D" line (optional for text); the format is told by
        whether the line after it reads as a word followed by D numbers.
        """
        p = Path(path)
        if p.is_dir():
            bf = read_bigfile(p)
            return cls(bf.ids, bf.data, p)
        if not p.is_file():
            raise InputError(p, "no such file or directory")
        with open_binary(p) as f:
            try:
                data = f.read()
            except (OSError, EOFError) as e:
                raise InputError(p, f"cannot read: {e}") from None
        first_end = data.find(b"\n")
        first_end = len(data) if first_end < 0 else first_end
        header = data[:first_end].split()
        if len(header) == 2 and all(t.isdigit() for t in header):
            n, dim = map(int, header)
            if n < 1 or dim < 1:
                raise InputError(p, f"header says {n} words of dimension {dim}", line=1)
            start = first_end + 1
            second_end = data.find(b"\n", start)
            second = data[start:len(data) if second_end < 0 else second_end]
            if _is_text_record(second, dim):
                words, vectors = _parse_text(p, data[start:], dim, first_line=2)
                if len(words) != n:
                    raise InputError(p, f"header says {n} words but the file has {len(words)}", line=1)
            else:
                words, vectors = _parse_binary(p, data, start, n, dim)
        else:
            words, vectors = _parse_text(p, data, None, first_line=1)
        return cls(words, vectors, p)


def _is_text_record(line: bytes, dim: int) -> bool:
    parts = line.split()
    if len(parts) != dim + 1:
        return False
    try:
        [float(x) for x in parts[1:]]
    except ValueError:
        return False
    return True


def _parse_text(path: Path, data: bytes, dim: int | None, first_line: int) -> tuple[list[str], np.ndarray]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(path, f"not a word2vec file: neither binary with an 'N D' header nor UTF-8 text "
                         f"({e.reason} at byte {e.start})") from None
    words: list[str] = []
    rows: list[np.ndarray] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), first_line):
        parts = line.split()
        if not parts:
            continue
        if dim is None:
            dim = len(parts) - 1
            if dim < 1:
                raise InputError(path, "expected a word followed by its vector", line=lineno)
        if len(parts) != dim + 1:
            raise InputError(path, f"{len(parts) - 1} numbers after the word, expected {dim}", line=lineno)
        try:
            vec = np.array(parts[1:], dtype=np.float32)
        except ValueError:
            raise InputError(path, f"vector of {parts[0]!r} holds a value that is not a number", line=lineno) from None
        if parts[0] in seen:
            raise InputError(path, f"word {parts[0]!r} repeats (first on line {seen[parts[0]]})", line=lineno)
        seen[parts[0]] = lineno
        words.append(parts[0])
        rows.append(vec)
    if not words:
        raise InputError(path, "no word vectors in the file")
    return words, np.stack(rows)


def _parse_binary(path: Path, data: bytes, pos: int, n: int, dim: int) -> tuple[list[str], np.ndarray]:
    # Each record is "<word> " then dim little-endian float32; writers put a newline between records.
    vectors = np.empty((n, dim), dtype=np.float32)
    words: list[str] = []
    seen: set[str] = set()
    width = 4 * dim
    for k in range(n):
        while pos < len(data) and data[pos:pos + 1] in (b"\n", b"\r"):
            pos += 1
        end = data.find(b" ", pos)
        if end < 0 or end + 1 + width > len(data):
            raise InputError(path, f"binary word2vec file ends inside record {k + 1} of the {n} the header announces")
        try:
            word = data[pos:end].decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(path, f"record {k + 1}: the word is not UTF-8 (is this really word2vec binary "
                             "format?)") from None
        if not word or word in seen:
            raise InputError(path, f"record {k + 1}: word {word!r} is empty or repeats")
        seen.add(word)
        words.append(word)
        vectors[k] = np.frombuffer(data, dtype="<f4", count=dim, offset=end + 1)
        pos = end + 1 + width
    if data[pos:].strip():
        raise InputError(path, f"{len(data) - pos} bytes after the {n} records the header announces")
    return words, vectors


# ----------------------------------------------------------------------------------------------------------
# GRU text encoder

class GruTextEncoder(nn.Module):
    """Embedding -> 1-layer unidirectional GRU -> mean of the hidden states over the true length (gru_mean)."""

    def __init__(self, vocab_size: int, embed_dim: int = 500, hidden: int = 1024):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.gru = nn.GRU(embed_dim, hidden, num_layers=1, batch_first=True, bidirectional=False)

    @property
    def out_dim(self) -> int:
        return self.gru.hidden_size

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(self.embedding(ids), lengths.cpu(), batch_first=True, enforce_sorted=False)
        states, _ = pad_packed_sequence(self.gru(packed)[0], batch_first=True)
        # pad_packed_sequence zero-fills past each length, so the sum covers exactly the valid steps.
        return states.sum(dim=1) / lengths.to(states.device, states.dtype).unsqueeze(1)

    @torch.no_grad()
    def init_embeddings(self, vocab: Vocabulary, w2v: Word2Vec | None,
                        generator: torch.Generator | None = None) -> None:
        """Uniform(-1, 1) rows, overwritten by the word2vec vector of every word it knows (official get_we)."""
        weight = self.embedding.weight
        if len(vocab) != weight.shape[0]:
            raise ValueError(f"vocabulary of {len(vocab)} words for an embedding of {weight.shape[0]} rows")
        if w2v is not None and w2v.dim != weight.shape[1]:
            raise InputError(w2v.path, f"word2vec dimension {w2v.dim} differs from the GRU embedding size "
                             f"{weight.shape[1]}")
        init = torch.rand(weight.shape, generator=generator, dtype=torch.float32) * 2 - 1
        if w2v is not None:
            known = [(i, w2v._index[w]) for i, w in enumerate(vocab.words) if w in w2v]
            if known:
                rows, src = zip(*known)
                init[list(rows)] = torch.from_numpy(np.asarray(w2v.vectors[list(src)], dtype=np.float32))
        weight.copy_(init.to(weight.device, weight.dtype))


# ----------------------------------------------------------------------------------------------------------
# Precomputed text vectors (by caption id or topic id)

class PrecomputedTextFeatures:
    """Vectors keyed by caption or topic id, from a RUC BigFile folder or one feature of an avs store."""

    def __init__(self, path: str | os.PathLike, feature: str | None = None):
        self.path = Path(path)
        self._store_rows: dict[str, int] | None = None
        if self.path.is_dir():
            if feature is not None:
                raise InputError(self.path, "a BigFile folder holds one feature; do not name one")
            self._bigfile = read_bigfile(self.path)
            self._store = None
            self.feature = self.path.name
            self.dim = self._bigfile.dim
            return
        self._bigfile = None
        self._store = open_store(self.path)
        if feature is None:
            if len(self._store.features) != 1:
                self._store.close()
                raise InputError(self.path, f"store holds {len(self._store.features)} features "
                                 f"({', '.join(self._store.features)}); name the one to use")
            feature = self._store.features[0]
        if feature not in self._store.dims:
            self._store.close()
            raise InputError(self.path, f"no feature {feature!r} (has: {', '.join(self._store.features)})")
        self.feature = feature
        self.dim = self._store.dims[feature]

    @property
    def ids(self) -> list[str]:
        return self._bigfile.ids if self._bigfile is not None else self._store.ids

    def vectors(self, ids: Sequence[str]) -> np.ndarray:
        """float32 rows in the order of ``ids``; any id without a vector is an InputError (no fallback)."""
        if self._bigfile is not None:
            index = self._bigfile.index
        else:
            if self._store_rows is None:
                self._store_rows = {i: r for r, i in enumerate(self._store.ids)}
            index = self._store_rows
        missing = [i for i in ids if i not in index]
        if missing:
            raise InputError(self.path, f"no precomputed {self.feature} vector for {len(missing)} of {len(ids)} "
                             f"ids (first: {first_few(missing)})")
        if self._bigfile is not None:
            return self._bigfile.vectors(ids)
        rows = np.fromiter((index[i] for i in ids), dtype=np.int64, count=len(ids))
        return self._store.get(self.feature, rows, dtype=np.float32)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    def __enter__(self) -> "PrecomputedTextFeatures":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ----------------------------------------------------------------------------------------------------------
# CLIP text tower from a user-supplied checkpoint

CLIP_MERGES = 49152 - 256 - 2  # merges CLIP's vocabulary uses; the BPE file holds more than that
# Unicode White_Space, the set the `regex` module's \s matches in CLIP's own tokenizer.
_WHITESPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"


@functools.cache
def _clean_table() -> dict[int, str | None]:
    """The context-free repairs of ftfy.fix_text, which CLIP applies first: drop stray control characters,
    straighten curly quotes, split Latin ligatures, un-widen fullwidth/halfwidth forms."""
    table: dict[int, str | None] = dict.fromkeys([*range(0x00, 0x09), 0x0B, *range(0x0E, 0x20), 0x7F,
                                                  *range(0x206A, 0x2070), 0xFEFF, *range(0xFFF9, 0xFFFD)])
    table |= dict.fromkeys([0x02BC, *range(0x2018, 0x201C)], "'") | dict.fromkeys(range(0x201C, 0x2020), '"')
    for cp in [0x0132, 0x0133, 0x0149, *range(0x01C4, 0x01CD), *range(0x01F1, 0x01F4), *range(0xFB00, 0xFB07),
               *range(0xFF01, 0xFFF0)]:
        if (plain := unicodedata.normalize("NFKC", chr(cp))) != chr(cp):
            table[cp] = plain
    table[0xFB05] = "\u017ft"  # ftfy keeps the long s of this ligature
    table[0x3000] = " "
    return table


def _clip_clean(text: str) -> str:
    if "<" not in text:  # ftfy decodes complete entities (";"-terminated) before its repairs, unless HTML-like
        text = re.sub(r"&#?[0-9A-Za-z]{1,24};", lambda m: html.unescape(m.group()), text)
    text = re.sub(r"\x1b\[[\d;]*[A-Za-z]", "", text)  # terminal colour codes, as ftfy drops them
    text = unicodedata.normalize("NFC", text.translate(_clean_table()))
    text = html.unescape(html.unescape(text))
    return re.sub(f"[{_WHITESPACE}]+", " ", text).strip().lower()


def _byte_symbols() -> tuple[dict[int, str], list[str]]:
    """Byte -> printable symbol (visible Latin-1 bytes stand for themselves, the rest shift above 255),
    and the symbols in CLIP's id order: visible bytes first, then the shifted ones."""
    visible = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    hidden = [b for b in range(256) if b not in set(visible)]
    table = {b: chr(b) for b in visible} | {b: chr(256 + k) for k, b in enumerate(hidden)}
    return table, [table[b] for b in visible + hidden]


def _char_class(predicate) -> str:
    """A regex character class body of all code points whose Unicode category satisfies ``predicate``."""
    spans: list[str] = []
    start = None
    for cp in range(0x110001):
        inside = cp < 0x110000 and predicate(unicodedata.category(chr(cp)))
        if inside and start is None:
            start = cp
        elif not inside and start is not None:
            spans.append(f"\\U{start:08x}" if cp - 1 == start else f"\\U{start:08x}-\\U{cp - 1:08x}")
            start = None
    return "".join(spans)


@functools.cache
def _clip_pattern() -> re.Pattern:
    # CLIP splits with \p{L} and \p{N} of the `regex` module; the stdlib needs the classes spelled out.
    letters = _char_class(lambda c: c[0] == "L")
    numbers = _char_class(lambda c: c[0] == "N")
    return re.compile(r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d"
                      rf"|[{letters}]+|[{numbers}]|[^{_WHITESPACE}{letters}{numbers}]+")


class ClipTokenizer:
    """CLIP's byte-level BPE: ``<|startoftext|>`` + BPE ids + ``<|endoftext|>``, cut to ``context_length``.

    ``bpe_path`` is CLIP's merges file (``bpe_simple_vocab_16e6.txt.gz``), supplied by the user.
    """

    def __init__(self, bpe_path: str | os.PathLike, context_length: int = 77):
        self.path = Path(bpe_path)
        self.context_length = context_length
        self._bytes, symbols = _byte_symbols()
        merges = self._read_merges()
        vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
        vocab += ["<|startoftext|>", "<|endoftext|>"]
        self.encoder = {s: i for i, s in enumerate(vocab)}
        self.ranks = {m: r for r, m in enumerate(merges)}
        self.sot = self.encoder["<|startoftext|>"]
        self.eot = self.encoder["<|endoftext|>"]
        self._cache: dict[str, list[int]] = {}

    def _read_merges(self) -> list[tuple[str, str]]:
        with open_binary(self.path) as f:
            try:
                text = f.read().decode("utf-8")
            except (OSError, EOFError) as e:
                raise InputError(self.path, f"cannot read: {e}") from None
            except UnicodeDecodeError as e:
                raise InputError(self.path, f"not a BPE merges file (not UTF-8: {e.reason})") from None
        merges = []
        # Line 1 is a version header; CLIP uses only the first CLIP_MERGES merges after it.
        for lineno, line in enumerate(text.split("\n")[1:CLIP_MERGES + 1], 2):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2:
                raise InputError(self.path, f"expected a merge 'left right', got {line[:60]!r}", line=lineno)
            merges.append((parts[0], parts[1]))
        if not merges:
            raise InputError(self.path, "no BPE merges after the header line")
        return merges

    @property
    def vocab_size(self) -> int:
        return len(self.encoder)

    def _bpe(self, piece: str) -> list[int]:
        if piece in self._cache:
            return self._cache[piece]
        parts = list(piece[:-1]) + [piece[-1] + "</w>"]
        while len(parts) > 1:
            ranked = [(self.ranks.get(pair, len(self.ranks)), pair) for pair in zip(parts, parts[1:])]
            rank, (left, right) = min(ranked, key=lambda rp: rp[0])
            if rank == len(self.ranks):
                break
            merged: list[str] = []
            i = 0
            while i < len(parts):  # merge every non-overlapping occurrence, left to right
                if i + 1 < len(parts) and parts[i] == left and parts[i + 1] == right:
                    merged.append(left + right)
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        ids = [self.encoder[p] for p in parts]
        self._cache[piece] = ids
        return ids

    def encode(self, text: str) -> list[int]:
        """BPE ids of ``text`` without the start/end tokens."""
        ids: list[int] = []
        for piece in _clip_pattern().findall(_clip_clean(text)):
            ids += self._bpe("".join(self._bytes[b] for b in piece.encode("utf-8")))
        return ids

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        """B x context_length ids, 0-padded. Like LAFF's copy of CLIP, an over-long text is cut without
        re-appending ``<|endoftext|>``; the encoder then pools at the largest id in the window."""
        out = torch.zeros(len(texts), self.context_length, dtype=torch.long)
        for row, text in enumerate(texts):
            ids = ([self.sot] + self.encode(text) + [self.eot])[:self.context_length]
            out[row, :len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out


class _QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class _ResidualBlock(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(OrderedDict([("c_fc", nn.Linear(width, 4 * width)), ("gelu", _QuickGELU()),
                                              ("c_proj", nn.Linear(4 * width, width))]))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class _Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int):
        super().__init__()
        self.resblocks = nn.ModuleList(_ResidualBlock(width, heads) for _ in range(layers))


class ClipTextEncoder(nn.Module):
    """CLIP's text tower, frozen: the ``<|endoftext|>`` state after ``ln_final``, times ``text_projection``
    (not normalised). Parameter names follow OpenAI's CLIP state_dict, so its weights load as they are."""

    def __init__(self, vocab_size: int, context_length: int, width: int, layers: int, heads: int, embed_dim: int,
                 tokenizer: ClipTokenizer | None = None):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.zeros(context_length, width))
        self.transformer = _Transformer(width, layers, heads)
        self.ln_final = nn.LayerNorm(width)
        self.text_projection = nn.Parameter(torch.zeros(width, embed_dim))
        self.register_buffer("causal_mask", torch.full((context_length, context_length), float("-inf")).triu(1),
                             persistent=False)
        self.tokenizer = tokenizer
        self.requires_grad_(False)
        self.eval()

    @property
    def embed_dim(self) -> int:
        return self.text_projection.shape[1]

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.token_embedding(tokens) + self.positional_embedding
        for block in self.transformer.resblocks:
            x = block(x, self.causal_mask)
        x = self.ln_final(x)
        # <|endoftext|> has the largest id, so argmax finds it (or, in a cut text, the largest id present).
        return x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)] @ self.text_projection

    @torch.no_grad()
    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """B x embed_dim float32 embeddings of ``texts``."""
        if self.tokenizer is None:
            raise ValueError("no tokenizer attached; build the encoder with from_checkpoint")
        return self(self.tokenizer(texts).to(self.text_projection.device))

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, bpe_path: str | os.PathLike, device: str | torch.device = "cpu",
                        heads: int | None = None) -> "ClipTextEncoder":
        """Build the text tower from an OpenAI-CLIP-format state_dict file; sizes come from tensor shapes.

        Keys may carry a prefix (``clip_model.`` in LAFF's fine-tuned CLIP); visual-tower keys are ignored.
        ``heads`` is not visible in the shapes: it defaults to CLIP's width / 64.
        """
        p = Path(path)
        state, prefix = _text_state(p, _load_state_dict(p))
        width = state["ln_final.weight"].shape[0]
        blocks = {int(m.group(1)) for k in state if (m := re.match(r"transformer\.resblocks\.(\d+)\.", k))}
        if blocks != set(range(len(blocks))) or not blocks:
            raise InputError(p, f"text transformer blocks under {prefix or 'the top level'} are not numbered "
                             f"0..N-1 (found {sorted(blocks)[:8]})")
        heads = heads if heads is not None else width // 64
        if heads < 1 or width % heads:
            raise InputError(p, f"width {width} cannot be split into {heads} attention heads")
        vocab_size, _ = state["token_embedding.weight"].shape
        context_length = state["positional_embedding"].shape[0]
        tokenizer = ClipTokenizer(bpe_path, context_length)
        if tokenizer.vocab_size > vocab_size:
            raise InputError(bpe_path, f"BPE vocabulary of {tokenizer.vocab_size} tokens does not fit the "
                             f"checkpoint's {vocab_size} token embeddings ({p})")
        model = cls(vocab_size, context_length, width, len(blocks), heads, state["text_projection"].shape[1],
                    tokenizer)
        own = model.state_dict()
        missing = [k for k in own if k not in state]
        if missing:
            raise InputError(p, f"checkpoint lacks {len(missing)} CLIP text weights (first: {first_few(missing)})")
        wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
                 if tuple(state[k].shape) != tuple(v.shape)]
        if wrong:
            raise InputError(p, f"checkpoint tensors of unexpected shape: {first_few(wrong)}")
        model.load_state_dict({k: state[k].float() for k in own})
        return model.to(device)


def _load_state_dict(path: Path) -> Mapping:
    if not path.is_file():
        raise InputError(path, "no such file")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
        if any("/code/" in n or n.endswith("/constants.pkl") for n in names):
            raise InputError(path, "is a TorchScript archive (like OpenAI's released CLIP .pt files); loading "
                             "one runs code stored in it, which avs does not do. In an environment you trust, "
                             "export its weights: torch.save(torch.jit.load(PATH, map_location='cpu')"
                             ".state_dict(), 'clip_state_dict.pt'), and pass that file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only" in str(e).lower():
            raise InputError(path, "holds pickled Python objects besides tensors (a whole training "
                             "checkpoint?); avs loads tensors only. Save just the weights, e.g. "
                             "torch.save(ckpt['model'], 'clip_state_dict.pt'), and pass that file") from None
        raise InputError(path, f"not a PyTorch checkpoint ({e})") from None
    except Exception as e:  # junk bytes fail inside the unpickler with arbitrary exception types
        raise InputError(path, f"not a PyTorch checkpoint ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
                         ) from None
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model"):  # training checkpoints keep the weights under one of these
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InputError(path, "not a state_dict (expected a mapping of parameter names to tensors)")
    return obj


def _text_state(path: Path, state: Mapping) -> tuple[dict[str, torch.Tensor], str]:
    """The text-tower tensors with their common key prefix stripped, and that prefix."""
    anchor = "token_embedding.weight"
    prefixes = [k[:-len(anchor)] for k in state if k == anchor or k.endswith("." + anchor)]
    if len(prefixes) != 1:
        what = "no" if not prefixes else f"{len(prefixes)} ({', '.join(p or '<none>' for p in prefixes)})"
        raise InputError(path, f"{what} CLIP text towers found (looked for keys ending in {anchor})")
    prefix = prefixes[0]
    text = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix) and isinstance(v, torch.Tensor)}
    need = ("ln_final.weight", "positional_embedding", "text_projection")
    lacking = [prefix + k for k in need if k not in text]
    if lacking:
        raise InputError(path, f"not a CLIP checkpoint: no {', '.join(lacking)}")
    return text, prefix


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
            raise InputError(None, f"text feature {self.name!r}: kind {self.kind!r} is not one of "
                             f"{', '.join(TEXT_FEATURE_KINDS)}")


class TextFeaturizer:
    """Turns a batch of texts (and their caption/topic ids) into the inputs of the text encoders.

    Output keys: ``bow``, ``w2v``, ``gru_ids`` + ``gru_lengths``, ``clip``, and ``pre:<name>`` per other
    precomputed feature. ``vocabs`` are picked by kind (``bow_nsw`` for bow, ``gru`` for gru);
    ``precomputed`` maps a spec name (the clip spec's, or a precomputed spec's) to its vectors.
    """

    def __init__(self, specs: Sequence[TextFeatureSpec], vocabs: Iterable[Vocabulary] | Mapping[str, Vocabulary] = (),
                 w2v: Word2Vec | None = None, precomputed: Mapping[str, PrecomputedTextFeatures] | None = None,
                 clip: ClipTextEncoder | None = None):
        self.specs = list(specs)
        self.vocabs: dict[str, Vocabulary] = {}
        for v in (vocabs.values() if isinstance(vocabs, Mapping) else vocabs):
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
            raise InputError(source.path, f"text feature {spec.name!r} is read by caption/topic id, but no ids "
                             "were given with the texts")
        return source.vectors(ids)
