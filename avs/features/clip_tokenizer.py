"""CLIP's byte-level BPE tokenizer (the vocabulary file is the user's: ``bpe_simple_vocab_16e6.txt.gz``), with
CLIP's text cleaning, so the text tower sees the tokens OpenAI's code would give it."""

from __future__ import annotations

import functools
import html
import os
import re
import unicodedata
from pathlib import Path
from typing import Sequence

import torch

from avs.errors import InputError
from trec_eval_compat.io import open_binary

# ----------------------------------------------------------------------------------------------------------
# CLIP text tower from a user-supplied checkpoint

CLIP_MERGES = 49152 - 256 - 2  # merges CLIP's vocabulary uses; the BPE file holds more than that


# Unicode White_Space, the set the `regex` module's \s matches in CLIP's own tokenizer.
_WHITESPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"


@functools.cache
def _clean_table() -> dict[int, str | None]:
    """The context-free repairs of ftfy.fix_text, which CLIP applies first: drop stray control characters,
    straighten curly quotes, split Latin ligatures, un-widen fullwidth/halfwidth forms."""
    table: dict[int, str | None] = dict.fromkeys(
        [*range(0x00, 0x09), 0x0B, *range(0x0E, 0x20), 0x7F, *range(0x206A, 0x2070), 0xFEFF, *range(0xFFF9, 0xFFFD)]
    )
    table |= dict.fromkeys([0x02BC, *range(0x2018, 0x201C)], "'") | dict.fromkeys(range(0x201C, 0x2020), '"')
    for cp in [
        0x0132,
        0x0133,
        0x0149,
        *range(0x01C4, 0x01CD),
        *range(0x01F1, 0x01F4),
        *range(0xFB00, 0xFB07),
        *range(0xFF01, 0xFFF0),
    ]:
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
    return re.compile(
        r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d"
        rf"|[{letters}]+|[{numbers}]|[^{_WHITESPACE}{letters}{numbers}]+"
    )


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
        for lineno, line in enumerate(text.split("\n")[1 : CLIP_MERGES + 1], 2):
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
            ids = ([self.sot] + self.encode(text) + [self.eot])[: self.context_length]
            out[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out
