"""The official LAFF tokenizer and its English stop words (laff-method.md §2)."""

from __future__ import annotations

import re

# The English stop-word list of the official tokenizer (LAFF stopwords_en.txt, NLTK's list): it holds the
# fragments the tokenizer leaves of contractions ("don", "t", "ll", ...) because apostrophes split words.
STOPWORDS: frozenset[str] = frozenset(
    """
i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her hers
herself it its itself they them their theirs themselves what which who whom this that these those am is are
was were be been being have has had having do does did doing a an the and but if or because as until while
of at by for with about against between into through during before after above below to from up down in out
on off over under again further then once here there when where why how all any both each few more most other
some such no nor not only own same so than too very s t can will just don should now d ll m o re ve y ain
aren couldn didn doesn hadn hasn haven isn ma mightn mustn needn shan shouldn wasn weren won wouldn
""".split()
)


_WORD = re.compile(r"[A-Za-z0-9]+")


def tokenize(text: str, remove_stopwords: bool = False) -> list[str]:
    """Lower-cased runs of ASCII letters and digits; every other character separates words.

    Matches the official English tokenizer: "don't" -> ["don", "t"], "café" -> ["caf"].
    """
    tokens = [t.lower() for t in _WORD.findall(text)]
    if remove_stopwords:
        return [t for t in tokens if t not in STOPWORDS]
    return tokens
