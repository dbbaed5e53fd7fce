"""A SIMULATED V3C-like shot collection: concepts, video features, captions and NIST-style judgments.

Everything here is simulated and deterministic from a seed. Concepts are the content words of the shipped
TRECVID topics, each of one kind — object, person, action or location. A shot shows a few concepts (half of
the shots are built around some topic's concepts, so every topic has relevant shots). Three video features
see the kinds differently, so that fusing them matters:

* ``appearance`` (512-d, CLIP-like): strong on objects and persons, weak on actions and locations;
* ``motion`` (256-d): strong on actions;
* ``scene`` (128-d): strong on locations.

Captions name (most of) a shot's concepts. A shot is relevant to a topic when it shows all the topic's
concepts; the judgments pool several simulated systems' top results into three strata judged at rates 1, 0.5
and 0.2 (unsampled pooled shots get -1), as NIST's qrels do.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
from scipy import sparse

from avs.errors import InputError
from avs.features.tokenize import tokenize
from avs.formats.fileio import atomic_open
from avs.formats.store import FeatureSpec, StoreWriter
from avs.formats.topics import Topic, read_topics, shipped_dir

KINDS = ("object", "person", "action", "location")
PERSON_WORDS = frozenset(
    """adult adults baby boy boxers bride chef child children choir conductor cook crowd
diver driver female fishermen george girl groom group male man men models orchestra parachutist paraglider
people person persons personnel players police policeman president protesters soldiers someone team teams woman
women""".split()
)
LOCATION_WORDS = frozenset(
    """air area balcony beach bedroom church city classroom conference construction farm
field forest garage gym indoors inside kitchen outdoors outside playground pond pool pub reef road room shop
sidewalk site sky snow stadium stage station store street underwater water woods platform path""".split()
)
ACTION_WORDS = frozenset("driven opened shake maneuvers act".split())
NOT_ACTIONS = frozenset("building buildings clothing including wearing holding something ceiling".split())
# words of topic texts that name no visible concept (quantities, positions, times, weather, filler)
GENERIC_WORDS = frozenset(
    """43rd 6 across another behind beside background day daytime downwards exactly front
kind least left less little near night nighttime non object one piece pieces rainy seen shown similar
simultaneously small still sunny together towards two type using visible w large long short heavy dark view
views scene scenes location""".split()
)

# name -> (dim, visibility of each kind, noise, scale). Real features differ widely in scale (CLIP vectors are
# near unit length, pooled CNN activations are not); the scales mimic that.
FEATURES = {
    "appearance": (512, {"object": 1.0, "person": 1.0, "action": 0.25, "location": 0.35}, 1.0, 1.0),
    "motion": (256, {"object": 0.15, "person": 0.3, "action": 1.0, "location": 0.1}, 1.0, 4.0),
    "scene": (128, {"object": 0.3, "person": 0.1, "action": 0.1, "location": 1.0}, 1.0, 1.0),
}
STRATA = ((30, 1.0), (80, 0.5), (150, 0.2))  # (pool depth, sampling rate)
SYSTEMS = ((1.0, 0.4, 0.35), (1.0, 0.6, 0.5), (0.8, 0.8, 0.7), (0.6, 0.5, 0.9))  # (relevance, partial, noise)
BLOCK = 20_000


def concept_kind(word: str) -> str:
    if word in PERSON_WORDS:
        return "person"
    if word in LOCATION_WORDS:
        return "location"
    if word in ACTION_WORDS or (word.endswith("ing") and word not in NOT_ACTIONS):
        return "action"
    return "object"


def topic_concepts(text: str) -> list[str]:
    """The concepts a shot must show to be relevant to the topic (its content words, generic ones left out)."""
    words = [w for w in tokenize(text, remove_stopwords=True) if w not in GENERIC_WORDS]
    return list(dict.fromkeys(words))


def shipped_topics() -> list[Topic]:
    out: list[Topic] = []
    for f in sorted(shipped_dir().glob("*.xml")):
        out.extend(read_topics(f, labels=False))
    return sorted(out, key=lambda t: t.num)


@dataclass
class Lexicon:
    words: list[str]
    kinds: list[str]
    topics: list[Topic]
    topic_words: list[list[int]]  # concept indices per topic
    index: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.index = {w: i for i, w in enumerate(self.words)}

    def by_kind(self, kind: str) -> np.ndarray:
        return np.array([i for i, k in enumerate(self.kinds) if k == kind])


def build_lexicon(topics: list[Topic] | None = None) -> Lexicon:
    topics = topics if topics is not None else shipped_topics()
    per_topic = [topic_concepts(t.text) for t in topics]
    keep = [(t, c) for t, c in zip(topics, per_topic) if c]
    words = sorted({w for _, c in keep for w in c})
    lex = Lexicon(words, [concept_kind(w) for w in words], [t for t, _ in keep], [])
    lex.topic_words = [[lex.index[w] for w in c] for _, c in keep]
    return lex


def _prototypes(lex: Lexicon, name: str, dim: int, seed: int) -> np.ndarray:
    """One random unit vector per concept and feature, fixed by (seed, feature, word)."""
    out = np.empty((len(lex.words), dim), np.float32)
    for i, w in enumerate(lex.words):
        rng = np.random.default_rng([seed, zlib.crc32(f"{name}/{w}".encode())])
        v = rng.standard_normal(dim).astype(np.float32)
        out[i] = v / np.linalg.norm(v)
    return out


def shot_ids(n: int, shots_per_video: int = 12) -> list[str]:
    return [f"shot{i // shots_per_video + 1:05d}_{i % shots_per_video + 1}" for i in range(n)]


def _shot_concepts(lex: Lexicon, rng: np.random.Generator, n: int) -> list[list[int]]:
    pools = {k: lex.by_kind(k) for k in KINDS}
    out = []
    for _ in range(n):
        chosen: list[int] = []
        if rng.random() < 0.5:
            chosen += lex.topic_words[rng.integers(len(lex.topic_words))]
        chosen.append(int(rng.choice(pools["object"])))
        chosen.append(int(rng.choice(pools["location"])))
        for kind in ("person", "action"):
            if rng.random() < 0.6:
                chosen.append(int(rng.choice(pools[kind])))
        out.append(sorted(set(chosen)))
    return out


def _caption(lex: Lexicon, concepts: list[int], rng: np.random.Generator) -> str:
    words = [lex.words[c] for c in concepts if rng.random() < 0.85] or [lex.words[concepts[0]]]
    by = {k: [w for w in words if concept_kind(w) == k] for k in KINDS}
    parts = []
    if by["person"]:
        parts.append("a " + " and a ".join(by["person"]))
    parts += by["action"]
    if by["object"]:
        parts.append(("with a " if parts else "a ") + " and a ".join(by["object"]))
    if by["location"]:
        parts.append(rng.choice(["in the", "at the", "near the"]) + " " + " ".join(by["location"]))
    return " ".join(parts)


@dataclass
class Block:
    start: int
    concepts: list[list[int]]
    features: dict[str, np.ndarray]
    captions: list[str]


def generate_blocks(n: int, seed: int = 0, lex: Lexicon | None = None) -> Iterator[Block]:
    """The collection in blocks of ``BLOCK`` shots; each block has its own RNG, so output is the same
    whatever is done with earlier blocks."""
    lex = lex or build_lexicon()
    kinds = np.array(lex.kinds)
    protos = {name: _prototypes(lex, name, dim, seed) for name, (dim, *_) in FEATURES.items()}
    strength = {name: np.array([vis[k] for k in kinds], np.float32) for name, (_, vis, *_) in FEATURES.items()}
    for b, start in enumerate(range(0, n, BLOCK)):
        rng = np.random.default_rng([seed, b])
        m = min(BLOCK, n - start)
        concepts = _shot_concepts(lex, rng, m)
        rows = np.repeat(np.arange(m), [len(c) for c in concepts])
        cols = np.concatenate([np.asarray(c) for c in concepts])
        feats = {}
        for name, (dim, _, noise, scale) in FEATURES.items():
            mat = sparse.csr_matrix((strength[name][cols], (rows, cols)), shape=(m, len(lex.words)))
            signal = mat @ protos[name] + noise * rng.standard_normal((m, dim)).astype(np.float32) / np.sqrt(dim) * 4
            feats[name] = (scale * signal).astype(np.float32)
        captions = [_caption(lex, c, rng) for c in concepts for _ in range(2)]
        yield Block(start, concepts, feats, captions)


def _pool_judgments(lex: Lexicon, blocks: list[tuple[int, sparse.csr_matrix]], seed: int) -> list[str]:
    """Qrels lines: per topic, pools of the simulated systems' top 150, in three strata."""
    need = sparse.csr_matrix(
        (
            np.ones(sum(len(w) for w in lex.topic_words)),
            (
                np.repeat(np.arange(len(lex.topics)), [len(w) for w in lex.topic_words]),
                np.concatenate([np.asarray(w) for w in lex.topic_words]),
            ),
        ),
        shape=(len(lex.topics), len(lex.words)),
    )
    sizes = np.asarray(need.sum(axis=1)).ravel()
    depth = STRATA[-1][0]
    best: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in SYSTEMS]  # per system: (scores, shots) per block
    rel_blocks = []
    for start, shows in blocks:
        overlap = (shows @ need.T).toarray() / sizes  # (shots, topics) fraction of concepts shown
        relevant = overlap >= 1.0
        rel_blocks.append((start, relevant))
        for s, (w_rel, w_part, noise) in enumerate(SYSTEMS):
            rng = np.random.default_rng([seed, 1000 + s, start])
            score = w_rel * relevant + w_part * overlap + noise * rng.standard_normal(overlap.shape)
            top = np.argsort(-score, axis=0, kind="stable")[:depth]  # (depth, topics)
            best[s].append((np.take_along_axis(score, top, 0), top + start))
    lines = []
    rng = np.random.default_rng([seed, 2000])
    for t, topic in enumerate(lex.topics):
        first_rank: dict[int, int] = {}
        for s in range(len(SYSTEMS)):
            scores = np.concatenate([sc[:, t] for sc, _ in best[s]])
            shots = np.concatenate([sh[:, t] for _, sh in best[s]])
            order = np.argsort(-scores, kind="stable")[:depth]
            for rank, shot in enumerate(shots[order], 1):
                first_rank[int(shot)] = min(rank, first_rank.get(int(shot), depth + 1))
        for shot in sorted(first_rank):
            stratum = next(i for i, (d, _) in enumerate(STRATA, 1) if first_rank[shot] <= d)
            rel = next(r[shot - st, t] for st, r in rel_blocks if st <= shot < st + len(r))
            judged = rng.random() < STRATA[stratum - 1][1]
            lines.append((topic.num, shot, stratum, (1 if rel else 0) if judged else -1))
    return lines


@dataclass
class SynthResult:
    out: Path
    shots: int
    train_videos: int
    val_videos: int
    qrels: Path


def write_collection(
    out: str | os.PathLike,
    n: int,
    seed: int = 0,
    force: bool = False,
    train_fraction: float = 0.6,
    val_fraction: float = 0.1,
    progress: bool = True,
) -> SynthResult:
    """Write a simulated collection to ``out``: ``store.h5`` (all shots), caption collections ``simtrain`` and
    ``simval`` in RUC's layout (the other shots have no captions, like a search collection), ``concepts.tsv``
    and ``qrels/avs.qrels.sim`` for every shipped topic. Streams in blocks: memory does not grow with ``n``."""
    out = Path(out)
    if n < 100:
        raise InputError(None, f"--shots {n}: a simulated collection needs at least 100 shots")
    if (out / "store.h5").exists() and not force:
        raise InputError(out, "already holds a simulated collection (use --force to overwrite)")
    lex = build_lexicon()
    ids = shot_ids(n)
    n_train, n_val = int(n * train_fraction), int(n * val_fraction)
    split = np.random.default_rng([seed, 3000]).permutation(n)
    role = np.full(n, "", dtype=object)
    role[split[:n_train]], role[split[n_train : n_train + n_val]] = "simtrain", "simval"
    specs = [FeatureSpec(name, dim, "float32", f"simulated {name}") for name, (dim, *_) in FEATURES.items()]
    shows_blocks = []
    from tqdm import tqdm

    with (
        StoreWriter(
            out / "store.h5", ids, specs, name="simulated", force=True, meta={"simulated": True, "seed": seed}
        ) as store,
        atomic_open(out / "concepts.tsv", force=True) as concepts_f,
        atomic_open(out / "simtrain" / "TextData" / "simtrain.caption.txt", force=True) as cap_train,
        atomic_open(out / "simval" / "TextData" / "simval.caption.txt", force=True) as cap_val,
    ):
        concepts_f.write("# SIMULATED collection: concepts shown by each shot\nshot\tconcepts\n")
        for blk in tqdm(
            generate_blocks(n, seed, lex),
            total=-(-n // BLOCK),
            desc="simulate",
            unit="block",
            disable=None if progress else True,
        ):
            for name, arr in blk.features.items():
                store.append(name, arr)
            m = len(blk.concepts)
            rows = np.repeat(np.arange(m), [len(c) for c in blk.concepts])
            cols = np.concatenate([np.asarray(c) for c in blk.concepts])
            shows_blocks.append(
                (blk.start, sparse.csr_matrix((np.ones(len(cols)), (rows, cols)), shape=(m, len(lex.words))))
            )
            for i, c in enumerate(blk.concepts):
                sid = ids[blk.start + i]
                concepts_f.write(f"{sid}\t{' '.join(lex.words[j] for j in c)}\n")
                f = {"simtrain": cap_train, "simval": cap_val}.get(role[blk.start + i])
                if f is not None:
                    for k in range(2):
                        f.write(f"{sid}#{k} {blk.captions[2 * i + k]}\n")
        store.finish()
    for coll in ("simtrain", "simval"):
        listed = [ids[i] for i in range(n) if role[i] == coll]
        with atomic_open(out / coll / "VideoSets" / f"{coll}.txt", force=True) as f:
            f.write("".join(s + "\n" for s in listed))
    qrels = out / "qrels" / "avs.qrels.sim"
    with atomic_open(qrels, force=True) as f:
        for num, shot, stratum, judgment in _pool_judgments(lex, shows_blocks, seed):
            f.write(f"1{num} 0 {ids[shot]} {stratum} {judgment}\n")
    (out / "README.txt").write_text(
        "SIMULATED collection written by `avs synth` (avs.demo.synth): not real video features.\n"
        f"{n} shots, seed {seed}; store.h5 (features appearance/motion/scene), simtrain/ and simval/ caption "
        "collections (RUC layout), concepts.tsv, qrels/avs.qrels.sim (NIST 5-column, all shipped topics).\n"
    )
    return SynthResult(out, n, n_train, n_val, qrels)
