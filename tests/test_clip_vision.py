"""The built-in CLIP ViT image tower and preprocessing against open_clip's own numbers (tests/data/open_clip_tiny:
open_clip 3.3.0 preprocess_val and encode_image of a tiny perturbed ViT; see its README)."""

import argparse
import dataclasses
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from avs.errors import InputError
from avs.models.clip_vision import (
    ClipVisionConfig,
    ClipVisionEncoder,
    encode_images,
    load_clip_vision,
    preprocess_array,
    preprocess_image,
)

TINY = Path(__file__).parent / "data" / "open_clip_tiny"  # copy of shared/data/open_clip_tiny
MODEL = TINY / "model.pt"
IMAGES = json.loads((TINY / "manifest.json").read_text())["images"]
PREPROCESSED = np.load(TINY / "preprocessed.npy")
EMBEDDINGS = np.load(TINY / "embeddings.npy")
TINY_CONFIG = ClipVisionConfig(
    image_size=32, patch_size=8, width=64, layers=2, heads=2, embed_dim=32, mlp_ratio=4.0, quick_gelu=False
)


def max_diff(a, b):
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).max())


@pytest.fixture(scope="module")
def state():
    return torch.load(MODEL, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def encoder():
    return load_clip_vision(MODEL, ClipVisionConfig.from_open_clip_json(TINY / "tiny-vit.json"))


# --------------------------------------------------------------------------------------------------------
# preprocessing (measured: max abs diff 0.0 for every image, both entry points)


@pytest.mark.parametrize("row, name", list(enumerate(IMAGES)))
def test_preprocess_image_equals_open_clip(row, name):
    with Image.open(TINY / "images" / name) as image:
        x = preprocess_image(image, 32)
    assert x.dtype == torch.float32 and tuple(x.shape) == (3, 32, 32)
    assert max_diff(x, PREPROCESSED[row]) <= 1e-5


@pytest.mark.parametrize("row, name", list(enumerate(IMAGES)))
def test_preprocess_array_equals_open_clip(row, name):
    with Image.open(TINY / "images" / name) as image:
        frame = np.asarray(image.convert("RGB"))
    assert max_diff(preprocess_array(frame, 32), PREPROCESSED[row]) <= 1e-5


def test_preprocess_array_wants_uint8_rgb():
    pixels = np.zeros((53, 37, 3), dtype=np.uint8)
    assert tuple(preprocess_array(pixels, 32).shape) == (3, 32, 32)
    with pytest.raises(ValueError, match="H x W x 3 uint8 RGB array, got a float32 array of shape"):
        preprocess_array(pixels.astype(np.float32), 32)
    with pytest.raises(ValueError, match=r"H x W x 3 uint8 RGB array, got a uint8 array of shape \(53, 37, 1\)"):
        preprocess_array(pixels[..., :1], 32)


# --------------------------------------------------------------------------------------------------------
# the tower (measured: 7.2e-7 unnormalised, 1.2e-7 normalised, batch or one image at a time)


def test_embeddings_equal_open_clip(encoder):
    images = torch.from_numpy(PREPROCESSED)
    got = encode_images(encoder, images)
    assert got.dtype == torch.float32 and tuple(got.shape) == (6, 32)
    assert max_diff(got, EMBEDDINGS) <= 1e-5
    assert max_diff(encode_images(encoder, images, normalize=True), np.load(TINY / "embeddings_normalized.npy")) <= 1e-5
    one_by_one = torch.cat([encode_images(encoder, images[i : i + 1]) for i in range(6)])
    assert max_diff(one_by_one, EMBEDDINGS) <= 1e-5


def test_images_to_embeddings_end_to_end(encoder):
    batch = []
    for name in IMAGES:
        with Image.open(TINY / "images" / name) as image:
            batch.append(preprocess_image(image, encoder.config.image_size))
    assert max_diff(encode_images(encoder, torch.stack(batch)), EMBEDDINGS) <= 1e-5


def test_encode_images_checks_the_shape(encoder):
    with pytest.raises(ValueError, match=r"N x 3 x 32 x 32, got \(1, 3, 64, 64\)"):
        encode_images(encoder, torch.zeros(1, 3, 64, 64))


def test_wrong_activation_or_heads_change_the_embeddings():
    """The fixture's sensitivity: the inferred defaults (1 head of 64, QuickGELU) are not its architecture."""
    images = torch.from_numpy(PREPROCESSED)
    assert max_diff(encode_images(load_clip_vision(MODEL), images), EMBEDDINGS) > 1e-3
    assert (
        max_diff(encode_images(load_clip_vision(MODEL, dataclasses.replace(TINY_CONFIG, heads=1)), images), EMBEDDINGS)
        > 1e-3
    )
    assert max_diff(encode_images(load_clip_vision(MODEL, heads=2, quick_gelu=False), images), EMBEDDINGS) <= 1e-5


def test_parameters_are_the_visual_tensors(encoder, state):
    visual = {k[len("visual.") :]: v for k, v in state.items() if k.startswith("visual.")}
    assert len(visual) == 32 and len(state) == 50
    params = dict(encoder.named_parameters())
    assert len(params) == len(visual) == 32
    assert set(params) == set(visual)
    assert sum(p.numel() for p in params.values()) == sum(v.numel() for v in visual.values()) == 115_712
    assert all(torch.equal(params[k], visual[k]) for k in visual)
    assert not any(p.requires_grad for p in params.values()) and not encoder.training


def test_loads_nested_and_prefixed_state_dicts(tmp_path, state):
    path = tmp_path / "ckpt.pt"
    torch.save({"state_dict": {"clip_model." + k: v for k, v in state.items()}, "epoch": 3}, path)
    encoder = load_clip_vision(path, TINY_CONFIG)
    assert max_diff(encode_images(encoder, torch.from_numpy(PREPROCESSED)), EMBEDDINGS) <= 1e-5


# --------------------------------------------------------------------------------------------------------
# configs


def test_config_from_open_clip_json():
    config = ClipVisionConfig.from_open_clip_json(TINY / "tiny-vit.json")
    assert config == TINY_CONFIG
    assert (config.head_width, config.mlp_width, config.grid_size) == (32, 256, 4)
    assert ClipVisionConfig.from_open_clip_json(json.loads((TINY / "tiny-vit.json").read_text())) == TINY_CONFIG


def test_inferred_config_equals_json_config_but_for_heads(state):
    inferred = ClipVisionConfig.infer_from_state_dict(state)
    assert (inferred.heads, inferred.head_width, inferred.quick_gelu) == (1, 64, True)  # CLIP's head width 64
    assert dataclasses.replace(inferred, heads=2, quick_gelu=False) == TINY_CONFIG
    assert ClipVisionConfig.infer_from_state_dict(state, heads=2, quick_gelu=False) == TINY_CONFIG


def test_from_name_numbers():
    b32 = ClipVisionConfig.from_name("ViT-B-32")
    shape = (b32.width, b32.layers, b32.patch_size, b32.embed_dim, b32.image_size, b32.heads)
    assert shape == (768, 12, 32, 512, 224, 12)
    assert (b32.mlp_width, b32.quick_gelu) == (3072, False)
    l14 = ClipVisionConfig.from_name("ViT-L-14")
    shape = (l14.width, l14.layers, l14.patch_size, l14.embed_dim, l14.image_size, l14.heads)
    assert shape == (1024, 24, 14, 768, 224, 16)
    assert ClipVisionConfig.from_name("ViT-L-14-quickgelu") == dataclasses.replace(l14, quick_gelu=True)
    assert ClipVisionConfig.from_name("ViT-L-14-336").image_size == 336
    h14, g14, big_g = (ClipVisionConfig.from_name(n) for n in ("ViT-H-14", "ViT-g-14", "ViT-bigG-14"))
    assert (h14.width, h14.heads, h14.mlp_width, h14.embed_dim) == (1280, 16, 5120, 1024)
    assert (g14.width, g14.layers, g14.heads, g14.mlp_width) == (1408, 40, 16, 6144)
    assert (big_g.width, big_g.layers, big_g.heads, big_g.mlp_width, big_g.embed_dim) == (1664, 48, 16, 8192, 1280)
    with pytest.raises(InputError, match="unknown CLIP architecture 'ViT-X-1'"):
        ClipVisionConfig.from_name("ViT-X-1")


@pytest.mark.parametrize(
    "name", ["ViT-B-32-quickgelu", "ViT-B-16", "ViT-L-14-336", "ViT-H-14", "ViT-g-14", "ViT-bigG-14"]
)
def test_inferred_from_full_size_shapes(name):
    """Inference reads the real architectures back from their tensor shapes (meta tensors: no memory)."""
    config = ClipVisionConfig.from_name(name)
    with torch.device("meta"):
        state = {"visual." + k: v for k, v in ClipVisionEncoder(config).state_dict().items()}
    inferred = ClipVisionConfig.infer_from_state_dict(state, heads=config.heads, quick_gelu=config.quick_gelu)
    assert dataclasses.replace(inferred, mlp_ratio=config.mlp_ratio) == config
    assert inferred.mlp_width == config.mlp_width


def test_open_clip_json_refuses_what_the_tower_does_not_compute(tmp_path):
    cfg = json.loads((TINY / "tiny-vit.json").read_text())
    cfg["vision_cfg"].update(image_size=[32, 32], patch_dropout=0.5, timm_pool="")
    assert ClipVisionConfig.from_open_clip_json(cfg) == TINY_CONFIG
    for key, value, message in [
        ("pool_type", "avg", "vision_cfg pool_type='avg': the built-in CLIP image tower implements only 'tok'"),
        ("timm_model_name", "vit_so400m_patch14_siglip_224", "implements only None"),
        ("no_ln_pre", True, "no_ln_pre=True"),
        ("layers", [3, 4, 6, 3], "not a ViT tower"),
        ("image_size", [32, 48], "only square images"),
        ("rope", True, "option 'rope' is not known"),
        ("width", "abc", "width must be a positive whole number, not 'abc'"),
        ("head_width", 0, "head_width must be a positive whole number, not 0"),
        ("mlp_ratio", "4", "mlp_ratio must be a positive number"),
    ]:
        bad = json.loads(json.dumps(cfg))
        bad["vision_cfg"][key] = value
        path = tmp_path / "bad.json"
        path.write_text(json.dumps(bad))
        with pytest.raises(InputError, match=message) as e:
            ClipVisionConfig.from_open_clip_json(path)
        assert e.value.path == str(path)
    with pytest.raises(InputError, match="no such file"):
        ClipVisionConfig.from_open_clip_json(tmp_path / "absent.json")


# --------------------------------------------------------------------------------------------------------
# refusals: one line each, naming the file


@pytest.mark.parametrize(
    "change, message",
    [
        ({"embed_dim": 16}, r"visual\.proj \(64, 32\) vs \(64, 16\)"),
        ({"patch_size": 16}, r"visual\.positional_embedding \(17, 64\) vs \(5, 64\), visual\.conv1\.weight"),
        ({"mlp_ratio": 2.0}, r"visual\.transformer\.resblocks\.0\.mlp\.c_fc\.weight \(256, 64\) vs \(128, 64\)"),
        ({"layers": 3}, r"lacks 12 of its tensors \(visual\.transformer\.resblocks\.2\.ln_1\.weight"),
        ({"layers": 1}, r"has 12 tensors it does not use \(visual\.transformer\.resblocks\.1\.ln_1\.weight"),
    ],
)
def test_shape_mismatch_with_the_given_config(change, message):
    with pytest.raises(InputError, match=message) as e:
        load_clip_vision(MODEL, dataclasses.replace(TINY_CONFIG, **change))
    assert e.value.path == str(MODEL) and "\n" not in str(e.value)


def test_unknown_visual_tensor_is_named(tmp_path, state):
    path = tmp_path / "ls.pt"
    torch.save({**state, "visual.transformer.resblocks.0.ls_1.gamma": torch.ones(64)}, path)
    with pytest.raises(InputError, match=r"does not use \(visual\.transformer\.resblocks\.0\.ls_1\.gamma\)"):
        load_clip_vision(path, TINY_CONFIG)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file") as e:
        load_clip_vision(tmp_path / "absent.pt")
    assert e.value.path == str(tmp_path / "absent.pt")


@pytest.mark.parametrize(
    "content, message",
    [
        ({"weight": torch.zeros(3, 3), "bias": torch.zeros(3)}, "no CLIP ViT image towers found"),
        ({"token_embedding.weight": torch.zeros(10, 4), "ln_final.weight": torch.zeros(4)}, "no CLIP ViT image towers"),
        (
            {
                "visual.conv1.weight": torch.zeros(64, 3, 7, 7),
                "visual.layer1.0.conv1.weight": torch.zeros(64, 64, 1, 1),
            },
            "not a ViT",
        ),
        (
            {"a.visual.class_embedding": torch.zeros(4), "b.visual.class_embedding": torch.zeros(4)},
            r"2 \(a\.visual\., b\.visual\.\) CLIP ViT image towers found",
        ),
        ({"visual.class_embedding": torch.zeros(64)}, "no visual.conv1.weight, visual.positional_embedding"),
        ([torch.zeros(3)], "not a state_dict"),
    ],
)
def test_not_a_clip_state_dict(tmp_path, content, message):
    path = tmp_path / "other.pt"
    torch.save(content, path)
    with pytest.raises(InputError, match=message) as e:
        load_clip_vision(path)
    assert e.value.path == str(path) and "\n" not in str(e.value)


def test_unreadable_checkpoints_are_refused(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint\x00\x01")
    with pytest.raises(InputError, match=r"junk\.pt: not a PyTorch checkpoint \(Unsupported operand 110\)$"):
        load_clip_vision(junk)
    pickled = tmp_path / "training.pt"
    torch.save({"state_dict": torch.load(MODEL, weights_only=True), "args": argparse.Namespace(lr=1)}, pickled)
    with pytest.raises(InputError, match=r"holds pickled Python objects besides tensors \(argparse\.Namespace\)"):
        load_clip_vision(pickled)
    script = tmp_path / "ViT-B-32.pt"  # the layout of torch.jit.save's archives
    with zipfile.ZipFile(script, "w") as z:
        for name in ("data.pkl", "code/__torch__/model.py", "constants.pkl", "version"):
            z.writestr("ViT-B-32/" + name, b"")
    with pytest.raises(InputError, match="is a TorchScript archive"):
        load_clip_vision(script)


def test_config_and_overrides_exclude_each_other():
    with pytest.raises(ValueError, match="heads and quick_gelu apply when the config is inferred"):
        load_clip_vision(MODEL, TINY_CONFIG, quick_gelu=False)
