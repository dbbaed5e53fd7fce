"""word2vec models (binary, text, or RUC BigFile) and the mean vector of a caption's words, LAFF's ``w2v``
text feature. ``docs/text-features.md`` lists the formats read."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from avs.errors import InputError
from avs.features.importers import read_bigfile
from avs.features.tokenize import tokenize
from trec_eval_compat.io import open_binary

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
            second = data[start : len(data) if second_end < 0 else second_end]
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
        raise InputError(
            path,
            f"not a word2vec file: neither binary with an 'N D' header nor UTF-8 text ({e.reason} at byte {e.start})",
        ) from None
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
        while pos < len(data) and data[pos : pos + 1] in (b"\n", b"\r"):
            pos += 1
        end = data.find(b" ", pos)
        if end < 0 or end + 1 + width > len(data):
            raise InputError(path, f"binary word2vec file ends inside record {k + 1} of the {n} the header announces")
        try:
            word = data[pos:end].decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(
                path, f"record {k + 1}: the word is not UTF-8 (is this really word2vec binary format?)"
            ) from None
        if not word or word in seen:
            raise InputError(path, f"record {k + 1}: word {word!r} is empty or repeats")
        seen.add(word)
        words.append(word)
        vectors[k] = np.frombuffer(data, dtype="<f4", count=dim, offset=end + 1)
        pos = end + 1 + width
    if data[pos:].strip():
        raise InputError(path, f"{len(data) - pos} bytes after the {n} records the header announces")
    return words, vectors
