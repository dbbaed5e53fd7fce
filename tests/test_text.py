import gzip
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from avs.errors import InputError
from avs.features.clip_tokenizer import ClipTokenizer
from avs.features.featurize import TextFeatureSpec, TextFeaturizer
from avs.features.precomputed import PrecomputedTextFeatures
from avs.features.tokenize import STOPWORDS, tokenize
from avs.features.vocab import Vocabulary, bow_counts, build_vocab, gru_token_ids
from avs.features.word2vec import Word2Vec
from avs.formats.store import write_store
from avs.models.clip_text import ClipTextEncoder
from avs.models.gru import GruTextEncoder
from trec_eval_compat.io import open_text

DATA = Path(__file__).parent / "data" / "text"
MSVD_TRAIN = DATA / "msvdtrain.caption.txt.gz"  # gzip -9n of shared/data/captions/msvd/msvdtrain.caption.txt


def caption_texts(path):
    with open_text(path) as f:
        return [parts[1] if len(parts) > 1 else "" for parts in (line.strip().split(None, 1) for line in f) if parts]


# --------------------------------------------------------------------------------------------------------
# tokenizer and vocabularies


def test_stopwords_are_the_official_153():
    assert len(STOPWORDS) == 153
    assert {"a", "the", "is", "t", "don", "ll", "wouldn"} <= STOPWORDS
    assert not {"man", "dog", "not_a_word", ""} & STOPWORDS


@pytest.mark.parametrize(
    "text, tokens, content",
    [
        ("a Dog??? is running", ["a", "dog", "is", "running"], ["dog", "running"]),
        ("dogs-x runs", ["dogs", "x", "runs"], ["dogs", "x", "runs"]),
        ("Don't\r\nstop", ["don", "t", "stop"], ["stop"]),
        ("café naïve 3D", ["caf", "na", "ve", "3d"], ["caf", "na", "3d"]),
        ("", [], []),
        ("  ?!  ", [], []),
    ],
)
def test_tokenize(text, tokens, content):
    assert tokenize(text) == tokens
    assert tokenize(text, remove_stopwords=True) == content


CORPUS = ["A dog runs.", "The cat runs", "a cat sleeps", "dog and cat", "the bird"]


def test_build_vocab_by_hand():
    # counts: cat 3, dog 2, runs 2, sleeps 1, bird 1 (+ a 2, the 2, and 1 as stop words)
    bow = build_vocab(CORPUS, "bow_nsw", threshold=2)
    assert bow.words == ["cat", "dog", "runs"]  # dog before runs: equal counts keep first occurrence
    assert (len(bow), bow.index("dog"), bow.index("sleeps"), bow.threshold) == (3, 1, None, 2)
    assert build_vocab(CORPUS, "bow_nsw", threshold=1).words == ["cat", "dog", "runs", "sleeps", "bird"]
    gru = build_vocab(CORPUS, "gru", threshold=2)
    assert gru.words == ["<pad>", "<start>", "<end>", "<unk>", "cat", "a", "dog", "runs", "the"]


def test_msvd_vocabulary_sizes():
    captions = caption_texts(MSVD_TRAIN)
    assert len(captions) == 48779
    bow = build_vocab(captions, "bow_nsw")
    gru = build_vocab(captions, "gru")
    assert (len(bow), len(gru)) == (2917, 3034)
    assert bow.words[:5] == ["man", "woman", "playing", "person", "cat"]
    assert gru.words[:7] == ["<pad>", "<start>", "<end>", "<unk>", "a", "is", "the"]


def test_vocabulary_round_trip_and_errors():
    v = build_vocab(CORPUS, "gru", threshold=2)
    again = Vocabulary.from_dict(json.loads(json.dumps(v.to_dict())))
    assert again == v and again.index("cat") == 4
    for bad in [
        {"kind": "gru", "threshold": 2},
        {"kind": "bow", "threshold": 2, "words": []},
        {"kind": "gru", "threshold": 2, "words": ["cat"]},
        {"kind": "bow_nsw", "threshold": 2, "words": ["a", "a"]},
        {"kind": "bow_nsw", "threshold": "2", "words": []},
        ["not", "a", "dict"],
    ]:
        with pytest.raises(InputError, match="vocab.json: vocabulary"):
            Vocabulary.from_dict(bad, source="vocab.json")


def test_bow_counts():
    vocab = build_vocab(CORPUS, "bow_nsw", threshold=2)  # cat dog runs
    x = bow_counts(["the dog runs after the cat, dog!", "nothing known", "RUNS runs"], vocab)
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x, [[1, 2, 1], [0, 0, 0], [0, 0, 2]])
    with pytest.raises(ValueError):
        bow_counts(["x"], build_vocab(CORPUS, "gru"))


def test_gru_token_ids():
    vocab = build_vocab(CORPUS, "gru", threshold=2)  # ... 4 cat 5 a 6 dog 7 runs 8 the
    ids, lengths = gru_token_ids(["A cat", "the zebra runs away", ""], vocab)
    assert ids.dtype == torch.long and lengths.tolist() == [4, 6, 2]
    assert ids.tolist() == [[1, 5, 4, 2, 0, 0], [1, 8, 3, 7, 3, 2], [1, 2, 0, 0, 0, 0]]


# --------------------------------------------------------------------------------------------------------
# word2vec

W2V_WORDS = ["dog", "cat", "runs", "the", "grass"]


def w2v_vectors():
    return np.arange(len(W2V_WORDS) * 3, dtype=np.float32).reshape(-1, 3) / 4 - 1


def write_w2v(path, fmt):
    vecs = w2v_vectors()
    if fmt == "bigfile":
        path.mkdir()
        (path / "shape.txt").write_text(f"{len(W2V_WORDS)} 3\n")
        (path / "id.txt").write_text(" ".join(W2V_WORDS))
        vecs.astype("<f4").tofile(path / "feature.bin")
    elif fmt == "binary":
        body = b"".join(w.encode() + b" " + v.astype("<f4").tobytes() + b"\n" for w, v in zip(W2V_WORDS, vecs))
        path.write_bytes(f"{len(W2V_WORDS)} 3\n".encode() + body)
    else:
        lines = [w + " " + " ".join(repr(float(x)) for x in v) for w, v in zip(W2V_WORDS, vecs)]
        text = "\n".join(([f"{len(W2V_WORDS)} 3"] if fmt == "text" else []) + lines) + "\n"
        path.write_bytes(gzip.compress(text.encode()) if fmt == "text.gz" else text.encode())
    return path


@pytest.mark.parametrize("fmt", ["bigfile", "binary", "text", "text-noheader", "text.gz"])
def test_word2vec_formats(tmp_path, fmt):
    w2v = Word2Vec.load(write_w2v(tmp_path / "w2v", fmt))
    assert (w2v.dim, len(w2v)) == (3, 5)
    np.testing.assert_array_equal(w2v.vector("runs"), w2v_vectors()[2])
    assert w2v.vector("zebra") is None
    vecs = w2v_vectors()
    means = w2v.mean_vectors(["The dog, the DOG and the cat", "zebra the", "grass"])
    assert means.dtype == np.float32 and means.shape == (3, 3)
    # "the" is a stop word; "dog" said twice counts once
    np.testing.assert_allclose(means[0], (vecs[0] + vecs[1]) / 2)
    np.testing.assert_array_equal(means[1], 0)
    np.testing.assert_array_equal(means[2], vecs[4])


@pytest.mark.parametrize(
    "content, problem, line",
    [
        (b"dog 1 2 3\ncat 1 2\n", "2 numbers after the word, expected 3", 2),
        (b"dog 1 2 3\ncat 1 x 3\n", "not a number", 2),
        (b"2 3\ndog 1 2 3\ndog 1 2 3\n", "'dog' repeats", 3),
        (b"3 3\ndog 1 2 3\ncat 1 2 3\n", "header says 3 words but the file has 2", 1),
        (b"", "no word vectors", None),
        (
            b"2 3\ndog " + np.zeros(3, "<f4").tobytes() + b"\ncat " + np.zeros(2, "<f4").tobytes(),
            "ends inside record 2",
            None,
        ),
        (b"1 3\ndog " + np.zeros(3, "<f4").tobytes() + b"\nextra", "bytes after the 1 records", None),
        (b"\xff\xfe junk \x00", "not a word2vec file", None),
    ],
)
def test_word2vec_malformed(tmp_path, content, problem, line):
    p = tmp_path / "w2v.txt"
    p.write_bytes(content)
    with pytest.raises(InputError, match=problem) as e:
        Word2Vec.load(p)
    assert e.value.path == str(p) and e.value.line == line


def test_word2vec_missing(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        Word2Vec.load(tmp_path / "nope")
    (tmp_path / "bf").mkdir()
    with pytest.raises(InputError, match="shape.txt"):
        Word2Vec.load(tmp_path / "bf")


# --------------------------------------------------------------------------------------------------------
# GRU encoder


def test_gru_encoder_parameter_count():
    enc = GruTextEncoder(3034)
    counts = {name: p.numel() for name, p in enc.named_parameters()}
    assert counts["embedding.weight"] == 500 * 3034
    assert sum(v for k, v in counts.items() if k.startswith("gru.")) == 4_687_872
    assert sum(counts.values()) == 500 * 3034 + 4_687_872 and enc.out_dim == 1024


def test_gru_encoder_mean_over_valid_steps():
    torch.manual_seed(0)
    vocab = build_vocab(CORPUS, "gru", threshold=1)
    enc = GruTextEncoder(len(vocab), embed_dim=8, hidden=6)
    ids, lengths = gru_token_ids(["the cat sleeps", "a dog", "bird and unknown words here"], vocab)
    out = enc(ids, lengths)
    assert out.shape == (3, 6)
    for i, n in enumerate(lengths.tolist()):
        states, _ = enc.gru(enc.embedding(ids[i : i + 1, :n]))
        torch.testing.assert_close(out[i], states[0].mean(0))
    padded = torch.cat([ids, torch.zeros(3, 4, dtype=torch.long)], dim=1)
    torch.testing.assert_close(enc(padded, lengths), out)


def test_gru_init_embeddings(tmp_path):
    vocab = build_vocab(["dog cat zebra"] * 3, "gru", threshold=1)  # specials, dog, cat, zebra
    w2v = Word2Vec.load(write_w2v(tmp_path / "w2v", "text"))
    enc = GruTextEncoder(len(vocab), embed_dim=3, hidden=4)
    enc.init_embeddings(vocab, w2v, generator=torch.Generator().manual_seed(1))
    w = enc.embedding.weight.detach()
    torch.testing.assert_close(w[vocab.index("dog")], torch.from_numpy(w2v.vector("dog")))
    torch.testing.assert_close(w[vocab.index("cat")], torch.from_numpy(w2v.vector("cat")))
    rest = w[[0, 1, 2, 3, vocab.index("zebra")]]
    assert rest.min() >= -1 and rest.max() <= 1 and rest.std() > 0.1
    again = GruTextEncoder(len(vocab), embed_dim=3, hidden=4)
    again.init_embeddings(vocab, w2v, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(again.embedding.weight, enc.embedding.weight)
    with pytest.raises(InputError, match="dimension 3 differs from the GRU embedding size 5"):
        GruTextEncoder(len(vocab), embed_dim=5, hidden=4).init_embeddings(vocab, w2v)


# --------------------------------------------------------------------------------------------------------
# precomputed text vectors

CAP_IDS = ["vid1#0", "vid1#1", "vid2#0", "vid3#4"]


def precomputed_sources(tmp_path):
    x = np.random.default_rng(0).standard_normal((len(CAP_IDS), 4)).astype(np.float32)
    store = write_store(tmp_path / "text.h5", CAP_IDS, {"clip_ft": x, "other": x[:, :2]})
    bf = tmp_path / "clip_ft"
    bf.mkdir()
    (bf / "shape.txt").write_text(f"{len(CAP_IDS)} 4\n")
    (bf / "id.txt").write_text("\n".join(CAP_IDS))
    x.astype("<f4").tofile(bf / "feature.bin")
    return x, store, bf


def test_precomputed_text_features(tmp_path):
    x, store, bf = precomputed_sources(tmp_path)
    for feats in (PrecomputedTextFeatures(store, "clip_ft"), PrecomputedTextFeatures(bf)):
        with feats:
            assert feats.dim == 4
            np.testing.assert_array_equal(feats.vectors(["vid3#4", "vid1#0", "vid3#4"]), x[[3, 0, 3]])
            with pytest.raises(InputError, match=r"for 2 of 3 ids \(first: vid9#0, vid1#7\)") as e:
                feats.vectors(["vid9#0", "vid1#0", "vid1#7"])
            assert e.value.path == str(feats.path)
    with pytest.raises(InputError, match="holds 2 features"):
        PrecomputedTextFeatures(store)
    with pytest.raises(InputError, match="no feature 'nope'"):
        PrecomputedTextFeatures(store, "nope")


# --------------------------------------------------------------------------------------------------------
# CLIP

MERGES = ["t h", "th e</w>", "d o", "do g</w>", "c a", "ca t</w>", "i s</w>"]


@pytest.fixture
def bpe(tmp_path):
    p = tmp_path / "bpe.txt.gz"
    p.write_bytes(gzip.compress(("#version: 0.2\n" + "\n".join(MERGES) + "\n").encode()))
    return p


def test_clip_tokenizer(bpe):
    tok = ClipTokenizer(bpe)
    assert tok.vocab_size == 512 + len(MERGES) + 2 and (tok.sot, tok.eot) == (519, 520)
    # merge k is token 512 + k; an unmerged byte b is 256 + its place in the byte table ('x' is 0x78 - 0x21)
    assert tok.encode("The  DOG is") == [513, 515, 518]
    assert tok.encode("x") == [256 + 0x78 - 0x21]
    assert tok.encode("cats") == [516, 0x74 - 0x21, 256 + 0x73 - 0x21]  # ca t s</w>
    # ftfy's repairs, which CLIP applies first
    for messy, clean in [
        ("it’s", "it's"),
        ("it&#8217;s", "it's"),
        ("\ufeffthe ｄｏｇ", "the dog"),
        ("\x1b[31mcat\x1b[0m", "cat"),
        ("a &amp;amp; ﬁ", "a & fi"),
    ]:
        assert tok.encode(messy) == tok.encode(clean), messy
    ids = tok(["the dog", "", "x " * 100])
    assert ids.shape == (3, 77)
    assert ids[0, :4].tolist() == [519, 513, 515, 520] and ids[0, 4:].eq(0).all()
    assert ids[1, :3].tolist() == [519, 520, 0]
    assert ids[2, 0] == 519 and ids[2, -1] != 520  # cut at 77 without re-appending the end token


@pytest.mark.skipif(
    not os.environ.get("AVS_CLIP_BPE"), reason="set AVS_CLIP_BPE to CLIP's bpe_simple_vocab_16e6.txt.gz"
)
def test_clip_tokenizer_real_vocabulary():
    tok = ClipTokenizer(os.environ["AVS_CLIP_BPE"])
    assert tok.vocab_size == 49408
    assert tok(["a diagram"])[0, :4].tolist() == [49406, 320, 22697, 49407]


def test_clip_merges_file_errors(tmp_path):
    p = tmp_path / "bpe.txt"
    p.write_text("#version\nt h\nbad merge line\n")
    with pytest.raises(InputError, match="expected a merge") as e:
        ClipTokenizer(p)
    assert e.value.line == 3
    p.write_text("#version\n")
    with pytest.raises(InputError, match="no BPE merges"):
        ClipTokenizer(p)


WIDTH, LAYERS, EMBED, VOCAB = 64, 2, 32, 530


def clip_state(seed=0):
    g = torch.Generator().manual_seed(seed)
    shapes = {
        "token_embedding.weight": (VOCAB, WIDTH),
        "positional_embedding": (77, WIDTH),
        "ln_final.weight": (WIDTH,),
        "ln_final.bias": (WIDTH,),
        "text_projection": (WIDTH, EMBED),
    }
    for i in range(LAYERS):
        b = f"transformer.resblocks.{i}."
        shapes |= {
            b + "ln_1.weight": (WIDTH,),
            b + "ln_1.bias": (WIDTH,),
            b + "ln_2.weight": (WIDTH,),
            b + "ln_2.bias": (WIDTH,),
            b + "attn.in_proj_weight": (3 * WIDTH, WIDTH),
            b + "attn.in_proj_bias": (3 * WIDTH,),
            b + "attn.out_proj.weight": (WIDTH, WIDTH),
            b + "attn.out_proj.bias": (WIDTH,),
            b + "mlp.c_fc.weight": (4 * WIDTH, WIDTH),
            b + "mlp.c_fc.bias": (4 * WIDTH,),
            b + "mlp.c_proj.weight": (WIDTH, 4 * WIDTH),
            b + "mlp.c_proj.bias": (WIDTH,),
        }
    state = {
        k: torch.randn(s, generator=g) * (0.02 if len(s) > 1 else 0.1)
        + (1.0 if "ln" in k and k.endswith("weight") else 0.0)
        for k, s in shapes.items()
    }
    # the image tower and scalars of a full CLIP checkpoint are ignored
    state |= {
        "visual.proj": torch.randn(8, EMBED, generator=g),
        "logit_scale": torch.tensor(4.6),
        "visual.transformer.resblocks.0.ln_1.weight": torch.ones(8),
    }
    return state


def reference_text_features(state, tokens, heads):
    """CLIP's text tower written out with plain tensor operations."""

    def ln(x, p):
        return torch.nn.functional.layer_norm(x, (WIDTH,), state[p + ".weight"], state[p + ".bias"])

    x = state["token_embedding.weight"][tokens] + state["positional_embedding"]
    n, t, _ = x.shape
    causal = torch.ones(t, t, dtype=torch.bool).triu(1)
    for i in range(LAYERS):
        b = f"transformer.resblocks.{i}."
        q, k, v = (ln(x, b + "ln_1") @ state[b + "attn.in_proj_weight"].T + state[b + "attn.in_proj_bias"]).chunk(3, -1)
        q, k, v = (z.reshape(n, t, heads, -1).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-1, -2) / (WIDTH // heads) ** 0.5).masked_fill(causal, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(n, t, WIDTH)
        x = x + y @ state[b + "attn.out_proj.weight"].T + state[b + "attn.out_proj.bias"]
        h = ln(x, b + "ln_2") @ state[b + "mlp.c_fc.weight"].T + state[b + "mlp.c_fc.bias"]
        x = x + (h * torch.sigmoid(1.702 * h)) @ state[b + "mlp.c_proj.weight"].T + state[b + "mlp.c_proj.bias"]
    x = ln(x, "ln_final")
    return x[torch.arange(n), tokens.argmax(-1)] @ state["text_projection"]


TEXTS = ["the dog is", "a cat", "", "x " * 100]


def test_clip_text_encoder(tmp_path, bpe):
    state = clip_state()
    ckpt = tmp_path / "clip.pt"
    torch.save(state, ckpt)
    enc = ClipTextEncoder.from_checkpoint(ckpt, bpe, heads=4)
    assert not any(p.requires_grad for p in enc.parameters()) and not enc.training
    out = enc.encode(TEXTS)
    assert out.shape == (4, EMBED) and out.dtype == torch.float32 and not out.requires_grad
    torch.testing.assert_close(out, reference_text_features(state, enc.tokenizer(TEXTS), heads=4))
    torch.testing.assert_close(enc.encode(TEXTS), out, rtol=0, atol=0)  # deterministic
    torch.testing.assert_close(ClipTextEncoder.from_checkpoint(ckpt, bpe, heads=4).encode(TEXTS), out, rtol=0, atol=0)
    # CLIP's rule without an explicit head count: width / 64 = 1 head
    one_head = ClipTextEncoder.from_checkpoint(ckpt, bpe).encode(TEXTS)
    torch.testing.assert_close(one_head, reference_text_features(state, enc.tokenizer(TEXTS), heads=1))
    # LAFF's fine-tuned CLIP: keys prefixed clip_model., inside a training checkpoint's "model", half precision
    ft = tmp_path / "model_best.pth.tar"
    torch.save({"epoch": 3, "model": {"clip_model." + k: v.half() for k, v in state.items()}}, ft)
    ft_out = ClipTextEncoder.from_checkpoint(ft, bpe, heads=4).encode(TEXTS)
    half = {k: v.half().float() for k, v in state.items()}
    torch.testing.assert_close(ft_out, reference_text_features(half, enc.tokenizer(TEXTS), heads=4))


class NotATensor:
    pass


def test_clip_checkpoint_errors(tmp_path, bpe):
    cases = {"junk.pt": b"\x00\x01 definitely not a checkpoint", "empty.pt": b"", "text.pt": b"hello\n"}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(InputError, match="not a PyTorch checkpoint|pickled") as e:
            ClipTextEncoder.from_checkpoint(tmp_path / name, bpe)
        assert e.value.path == str(tmp_path / name)
    torch.save({"model": clip_state(), "config": NotATensor()}, tmp_path / "pickled.pt")
    with pytest.raises(InputError, match="pickled Python objects"):
        ClipTextEncoder.from_checkpoint(tmp_path / "pickled.pt", bpe)
    with zipfile.ZipFile(tmp_path / "scripted.pt", "w") as z:  # the layout of a torch.jit.save archive
        for name in ("scripted/data.pkl", "scripted/code/__torch__.py", "scripted/constants.pkl"):
            z.writestr(name, b"")
    with pytest.raises(InputError, match="TorchScript"):
        ClipTextEncoder.from_checkpoint(tmp_path / "scripted.pt", bpe)
    torch.save({"weight": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="no CLIP text towers"):
        ClipTextEncoder.from_checkpoint(tmp_path / "other.pt", bpe)
    state = clip_state()
    del state["transformer.resblocks.1.mlp.c_fc.bias"]
    torch.save(state, tmp_path / "partial.pt")
    with pytest.raises(InputError, match="lacks 1 CLIP text weights"):
        ClipTextEncoder.from_checkpoint(tmp_path / "partial.pt", bpe)
    torch.save(clip_state(), tmp_path / "ok.pt")
    with pytest.raises(InputError, match="cannot be split into 3"):
        ClipTextEncoder.from_checkpoint(tmp_path / "ok.pt", bpe, heads=3)
    with pytest.raises(InputError, match="no such file"):
        ClipTextEncoder.from_checkpoint(tmp_path / "absent.pt", bpe)


# --------------------------------------------------------------------------------------------------------
# featurizer


def test_text_featurizer(tmp_path, bpe):
    x, store, _ = precomputed_sources(tmp_path)
    vocabs = [build_vocab(CORPUS, "bow_nsw", threshold=2), build_vocab(CORPUS, "gru", threshold=2)]
    w2v = Word2Vec.load(write_w2v(tmp_path / "w2v", "text"))
    pre = {"clip": PrecomputedTextFeatures(store, "clip_ft"), "extra": PrecomputedTextFeatures(store, "other")}
    specs = [
        TextFeatureSpec("gru", "gru"),
        TextFeatureSpec("bow", "bow", 3),
        TextFeatureSpec("w2v", "w2v", 3),
        TextFeatureSpec("clip", "clip", 4),
        TextFeatureSpec("extra", "precomputed"),
    ]
    f = TextFeaturizer(specs, vocabs, w2v=w2v, precomputed=pre)
    assert f.dims == {"gru": 9, "bow": 3, "w2v": 3, "clip": 4, "extra": 2}
    texts = ["the dog runs", "a cat"]
    out = f.featurize(texts, ids=["vid2#0", "vid1#0"])
    assert list(out) == ["gru_ids", "gru_lengths", "bow", "w2v", "clip", "pre:extra"]
    assert out["gru_ids"].shape == (2, 5) and out["gru_lengths"].tolist() == [5, 4]
    np.testing.assert_array_equal(out["bow"].numpy(), bow_counts(texts, vocabs[0]))
    np.testing.assert_array_equal(out["w2v"].numpy(), w2v.mean_vectors(texts))
    np.testing.assert_array_equal(out["clip"].numpy(), x[[2, 0]])
    np.testing.assert_array_equal(out["pre:extra"].numpy(), x[[2, 0], :2])
    with pytest.raises(InputError, match="vid7#0"):
        f.featurize(texts, ids=["vid7#0", "vid1#0"])
    with pytest.raises(InputError, match="no ids"):
        f.featurize(texts)

    torch.save(clip_state(), tmp_path / "clip.pt")
    enc = ClipTextEncoder.from_checkpoint(tmp_path / "clip.pt", bpe)
    online = TextFeaturizer([TextFeatureSpec("clip", "clip", EMBED)], clip=enc).featurize(texts)
    assert list(online) == ["clip"]
    torch.testing.assert_close(online["clip"], enc.encode(texts))


def test_text_featurizer_config_errors(tmp_path):
    with pytest.raises(InputError, match="needs precomputed vectors or a CLIP checkpoint"):
        TextFeaturizer([TextFeatureSpec("clip", "clip")])
    with pytest.raises(InputError, match="needs a bow_nsw vocabulary"):
        TextFeaturizer([TextFeatureSpec("bow", "bow")], [build_vocab(CORPUS, "gru")])
    with pytest.raises(InputError, match="needs a word2vec model"):
        TextFeaturizer([TextFeatureSpec("w2v", "w2v")])
    with pytest.raises(InputError, match="kind 'bert'"):
        TextFeatureSpec("b", "bert")
    with pytest.raises(InputError, match="more than one bow"):
        TextFeaturizer([TextFeatureSpec("a", "bow"), TextFeatureSpec("b", "bow")])
    _, store, _ = precomputed_sources(tmp_path)
    with pytest.raises(InputError, match="configured as 512-d but has 4 dims") as e:
        TextFeaturizer(
            [TextFeatureSpec("clip", "clip", 512)], precomputed={"clip": PrecomputedTextFeatures(store, "clip_ft")}
        )
    assert e.value.path == str(store)
