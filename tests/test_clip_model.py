"""Zero-shot CLIP models (avs model clip): text tower of a checkpoint against the image embeddings of the same
checkpoint, indexed and searched like any model; the tiny open_clip fixture stands in for a real checkpoint."""

import numpy as np
import pytest
import torch

from avs.engine.index import build_index
from avs.engine.searcher import Searcher
from avs.errors import InputError
from avs.formats.store import write_store
from avs.models import load_model
from avs.models.clip_model import make_clip_model
from avs.models.clip_text import ClipTextEncoder

from conftest import TINY_CLIP as TINY

IMAGE_EMB = np.load(TINY / "embeddings.npy")  # open_clip's encode_image of the fixture's 6 images
SHOTS = [f"shot00001_{i}" for i in range(1, 7)]


@pytest.fixture
def clip(tmp_path, tiny_bpe):
    bpe = tiny_bpe
    store = write_store(tmp_path / "store.h5", SHOTS, {"clip": IMAGE_EMB}, name="tiny")
    model = make_clip_model(TINY / "model.pt", bpe, tmp_path / "clip", clip_config=TINY / "tiny-vit.json")
    return tmp_path, bpe, store, model


def test_search_ranks_by_cosine_of_the_two_towers(clip):
    tmp, bpe, store, model = clip
    index = build_index(model, store, tmp / "index.h5", progress=False)
    searcher = Searcher(model, index)
    text = ClipTextEncoder.from_checkpoint(TINY / "model.pt", bpe, heads=2, quick_gelu=False)
    for query in ("the dog", "a cat", "x"):
        t = torch.nn.functional.normalize(text.encode([query]), dim=-1).numpy()[0].astype(np.float64)
        v = IMAGE_EMB / np.linalg.norm(IMAGE_EMB, axis=1, keepdims=True)
        expected = v.astype(np.float16).astype(np.float64) @ t  # the index keeps float16 rows
        hits = searcher.query(query, k=6)
        assert hits.shots == [SHOTS[i] for i in np.lexsort((np.array(SHOTS), -expected))]
        np.testing.assert_allclose(hits.scores, np.sort(expected)[::-1], rtol=0, atol=1e-6)


def test_the_model_records_its_checkpoint(clip):
    tmp, bpe, store, model = clip
    loaded = load_model(model)
    assert loaded.config.fusion == "clip" and sum(p.numel() for p in loaded.model.parameters()) == 0
    assert loaded.meta["clip_text"] == {"heads": 2, "quick_gelu": False}  # from tiny-vit.json's text_cfg
    assert loaded.meta["clip_sha256"] != loaded.meta["weights_sha256"]
    other = tmp / "other.pt"
    state = torch.load(TINY / "model.pt", weights_only=True)
    state["text_projection"] = state["text_projection"] * 2
    torch.save(state, other)
    other_model = make_clip_model(other, bpe, tmp / "clip2", clip_config=TINY / "tiny-vit.json")
    assert load_model(other_model).fingerprint != loaded.fingerprint  # same (empty) weights, other checkpoint


def test_a_swapped_checkpoint_and_training_are_refused(clip, run_cli):
    tmp, bpe, store, model = clip
    index = build_index(model, store, tmp / "index.h5", progress=False)
    swapped = tmp / "swapped.pt"
    state = torch.load(TINY / "model.pt", weights_only=True)
    state["ln_final.bias"] = state["ln_final.bias"] + 1
    torch.save(state, swapped)
    meta_path = model / "model.json"
    meta_path.write_text(meta_path.read_text().replace(str((TINY / "model.pt").resolve()), str(swapped)))
    with pytest.raises(InputError, match="is not the CLIP checkpoint"):
        Searcher(model, index)
    r = run_cli("train", "--config", model / "config.json", "--train", tmp, "--val", tmp, "--out", tmp / "m")
    assert r.exit_code != 0


def test_cli_makes_a_clip_model(tmp_path, run_cli, tiny_bpe):
    bpe = tiny_bpe
    args = ("model", "clip", TINY / "model.pt", "--bpe", bpe, "--out", tmp_path / "m", "--clip-config")
    r = run_cli(*args, TINY / "tiny-vit.json")
    assert r.exit_code == 0, r.output
    assert "zero-shot CLIP" in r.output and (tmp_path / "m" / "weights.pt").is_file()
    r = run_cli(*args, TINY / "tiny-vit.json")
    assert r.exit_code == 2 and "already exists" in r.output
    r = run_cli(*args, "ViT-Q-99", "--force")
    assert r.exit_code == 2 and "unknown CLIP architecture" in r.output
    r = run_cli(*args[:-1], "--force")  # the tiny text tower is 32 wide: its heads must be given
    assert r.exit_code == 2 and "not a multiple of the 64-wide heads" in r.stderr and "--clip-config" in r.stderr
