"""The LAFF model family: exact parameter counts (laff-method.md §13), shapes, fusion semantics, model dirs."""

import dataclasses

import pytest
import torch

from avs.errors import InputError
from avs.models import (
    TextVideoModel,
    check_video_features,
    count_parameters,
    list_configs,
    load_config,
    load_model,
    save_model,
)
from avs.models.blocks import LaffHead, MultiHeadLaff, SelfAttentionFusion, StaticFusion

TGIF = {"bow": 3981, "gru": 4096}  # the official vocab_tgif.zip sizes


def test_paper_laff_parameter_count():
    """Official 49,258,528 minus its 2,064 never-trained parameters (2 LayerNorms + 16 decay scalars)."""
    model = TextVideoModel(load_config("laff").with_dims(text=TGIF))
    assert count_parameters(model) == 49_256_464
    assert count_parameters(model) == 30_902_288 + 4096 * 3981 + 500 * 4096


def test_paper_laff_ml_parameter_count():
    """Official 39,354,914 + 4096·V_bow + 500·V_gru, minus 2,065 dead (the frame block's scalar too)."""
    model = TextVideoModel(load_config("laff_ml").with_dims(text=TGIF))
    assert count_parameters(model) == 39_354_914 + 4096 * 3981 + 500 * 4096 - 2_065


def test_video_side_count():
    model = TextVideoModel(load_config("laff").with_dims(text=TGIF))
    assert count_parameters(model.video) == 19_948_560 - 8 * 1 - 1024  # minus decay scalars and LayerNorm


def tiny(name="laff", **kw):
    cfg = load_config(name)
    cfg = dataclasses.replace(cfg, space_dim=32, heads=min(cfg.heads, 4), gru_embed=8, gru_hidden=16, **kw)
    cfg = dataclasses.replace(
        cfg, video=tuple(dataclasses.replace(f, dim=8 if f.no_transform else 12) for f in cfg.video)
    )
    text = tuple(
        dataclasses.replace(t, dim={"gru": 20, "bow": 30, "w2v": 6, "clip": 8}.get(t.kind, t.dim)) for t in cfg.text
    )
    frame = cfg.frame and dataclasses.replace(cfg.frame, dim=8)
    return dataclasses.replace(cfg, text=text, frame=frame)


def inputs(cfg, b=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    video = {f.name: torch.randn(b, f.dim, generator=g) for f in cfg.video}
    text = {
        "bow": torch.randint(0, 3, (b, 30), generator=g).float(),
        "w2v": torch.randn(b, 6, generator=g),
        "clip": torch.randn(b, 8, generator=g),
        "gru_ids": torch.randint(1, 20, (b, 5), generator=g),
        "gru_lengths": torch.tensor([5, 4, 3, 5, 2, 1][:b]),
    }
    frames = torch.randn(b, 4, 8, generator=g) if cfg.frame else None
    mask = torch.ones(b, 4, dtype=torch.bool) if cfg.frame else None
    return video, text, frames, mask


@pytest.mark.parametrize("name", list_configs())
def test_every_shipped_config_builds_and_scores(name):
    cfg = tiny(name)
    model = TextVideoModel(cfg).eval()
    video, text, frames, mask = inputs(cfg)
    with torch.no_grad():
        v = model.encode_video(video, frames, mask)
        t = model.encode_text(text)
    assert v.shape == t.shape == (6, cfg.spaces, cfg.space_size)
    assert torch.allclose(v.norm(dim=-1), torch.ones(6, cfg.spaces), atol=1e-5)
    s = model.similarity(t, v)
    assert s.shape == (6, 6) and float(s.abs().max()) <= 1.0 + 1e-5
    loss = model.loss(t, v)
    assert loss.ndim == 0 and float(loss) >= 0


def test_similarity_is_mean_of_space_cosines():
    cfg = tiny("laff")
    model = TextVideoModel(cfg).eval()
    video, text, *_ = inputs(cfg)
    v, t = model.encode_video(video), model.encode_text(text)
    expected = sum(t[:, h] @ v[:, h].T for h in range(cfg.heads)) / cfg.heads
    assert torch.allclose(model.similarity(t, v), expected, atol=1e-6)


def test_je_fixed_weights():
    cfg = tiny("je", space_weights=(0.7, 0.1, 0.1, 0.1))
    model = TextVideoModel(cfg).eval()
    video, text, *_ = inputs(cfg)
    v, t = model.encode_video(video), model.encode_text(text)
    expected = 0.7 * t[:, 0] @ v[:, 0].T + 0.1 * sum(t[:, h] @ v[:, h].T for h in (1, 2, 3))
    assert torch.allclose(model.similarity(t, v), expected, atol=1e-6)


def test_laff_head_is_softmax_convex_combination():
    head = LaffHead(3)
    with torch.no_grad():
        head.logit.weight.copy_(torch.tensor([[1.0, 0.0, 0.0]]))
        head.logit.bias.zero_()
    feats = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    out, w = head(feats)
    a = torch.softmax(torch.tensor([2.0, 0.0]), 0)
    z = a[0] * feats[0, 0] + a[1] * feats[0, 1]
    assert torch.allclose(w[0], a) and torch.allclose(out[0], z / z.norm())


def test_laff_head_masking_matches_zero_padding():
    """LAFF-ml frames: a masked frame gets zero weight; the official unmasked zero padding gives the same
    normalised output (laff-method.md §8)."""
    head = LaffHead(4)
    frames = torch.randn(1, 3, 4)
    padded = torch.cat([frames, torch.zeros(1, 2, 4)], 1)
    mask = torch.tensor([[True, True, True, False, False]])
    masked, w = head(padded, mask)
    assert torch.allclose(masked, head(frames)[0], atol=1e-6) and float(w[0, 3:].sum()) == 0
    assert torch.allclose(head(padded)[0], masked, atol=1e-6)


def test_multi_head_laff_heads_see_their_slices():
    mh = MultiHeadLaff(8, 2)
    feats = torch.randn(2, 3, 8)
    out, w = mh(list(feats.unbind(1)))
    assert out.shape == (2, 2, 4) and w.shape == (2, 2, 3)
    assert torch.allclose(out[:, 1], mh.blocks[1](feats[:, :, 4:])[0])


def test_mhsa_matches_definition():
    blk = SelfAttentionFusion(8, 2)
    x = torch.randn(2, 3, 8)
    out, _ = blk(x)
    h = x[:, :, 4:]
    att = torch.softmax(h @ h.transpose(1, 2) * (4 // 2) ** -0.5, dim=-1)
    ref = blk.norm(att @ h + h).mean(1)
    assert torch.allclose(out[:, 1], ref / ref.norm(dim=-1, keepdim=True), atol=1e-6)


def test_static_fusion_weights_do_not_depend_on_input():
    blk = StaticFusion(3)
    _, w1 = blk(torch.randn(2, 3, 5))
    _, w2 = blk(torch.randn(2, 3, 5))
    assert torch.equal(w1, w2)


def test_loss_hand_computed():
    cfg = dataclasses.replace(tiny("laff"), margin=0.2)
    model = TextVideoModel(cfg)
    e = torch.eye(3).unsqueeze(1)  # three orthogonal unit vectors, one space
    t = torch.nn.functional.normalize(e + 0.5 * torch.roll(e, 1, 0), dim=-1)
    s = e[:, 0] @ t[:, 0].T  # s[i, j] = cos(video i, text j)
    expected = sum(max(0.0, max(0.2 + float(s[i, j]) - float(s[j, j]) for i in range(3) if i != j)) for j in range(3))
    assert float(model.loss(t, e)) == pytest.approx(expected, abs=1e-6)
    same = torch.ones(3, 3, dtype=torch.bool)
    assert float(model.loss(t, e, same_video=same)) == 0.0


def test_model_dir_round_trip(tmp_path):
    cfg = tiny("laff")
    model = TextVideoModel(cfg).eval()
    save_model(model, tmp_path / "m", meta={"note": "test"})
    loaded = load_model(tmp_path / "m")
    video, text, *_ = inputs(cfg)
    with torch.no_grad():
        assert torch.equal(
            model.similarity(model.encode_text(text), model.encode_video(video)),
            loaded.model.similarity(loaded.model.encode_text(text), loaded.model.encode_video(video)),
        )
    assert loaded.meta["note"] == "test" and len(loaded.fingerprint) == 64
    with pytest.raises(InputError, match="already exists"):
        save_model(model, tmp_path / "m")


def test_bad_model_dirs(tmp_path):
    cfg = tiny("laff")
    save_model(TextVideoModel(cfg), tmp_path / "m")
    with pytest.raises(InputError, match="not a model directory"):
        load_model(tmp_path / "nope")
    (tmp_path / "m" / "weights.pt").write_bytes(b"garbage")
    with pytest.raises(InputError, match="weights.pt: cannot load weights safely"):
        load_model(tmp_path / "m")

    class Evil:
        def __reduce__(self):
            return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))

    torch.save({"x": Evil()}, tmp_path / "m" / "weights.pt")
    with pytest.raises(InputError, match="cannot load weights safely"):
        load_model(tmp_path / "m")
    assert not (tmp_path / "PWNED").exists()
    other = dataclasses.replace(cfg, space_dim=16)
    torch.save(TextVideoModel(other).state_dict(), tmp_path / "m" / "weights.pt")
    with pytest.raises(InputError, match="weights do not match config.json: .*shape mismatch"):
        load_model(tmp_path / "m")


def test_feature_mismatch_refused():
    cfg = tiny("laff")
    check_video_features(cfg, {f.name: f.dim for f in cfg.video}, "store.h5")
    with pytest.raises(InputError, match="store.h5: features do not match model 'laff': x3d is missing"):
        check_video_features(cfg, {f.name: f.dim for f in cfg.video if f.name != "x3d"}, "store.h5")
    with pytest.raises(InputError, match="tf has dim 99, the model expects 12"):
        check_video_features(cfg, {**{f.name: f.dim for f in cfg.video}, "tf": 99}, "store.h5")


def test_bad_config_files(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('fusion = "nope"\n[[video]]\nname = "a"\n[[text]]\nname = "b"\nkind = "bow"\n')
    with pytest.raises(InputError, match="fusion 'nope' is not one of"):
        load_config(p)
    p.write_text("fusion = [")
    with pytest.raises(InputError, match="not valid TOML"):
        load_config(p)
    with pytest.raises(InputError, match="no such model config"):
        load_config("nonexistent")


def test_summary_cli_paper_count(run_cli):
    r = run_cli("model", "summary", "--config", "laff", "--bow-vocab", 3981, "--gru-vocab", 4096)
    assert r.exit_code == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "trainable parameters: 49256464"
    assert "video/clip_ft transform" in r.stdout and "TileNorm" in r.stdout


def test_summary_cli_overrides_and_errors(run_cli):
    r = run_cli(
        "model", "summary", "--config", "laff", "--bow-vocab", 10, "--gru-vocab", 10, "--video-feature", "tf=100"
    )
    base = 30_902_288 + 4096 * 10 + 500 * 10
    assert r.stdout.splitlines()[-1] == f"trainable parameters: {base - (768 - 100) * 4096}"
    r = run_cli("model", "summary", "--config", "laff")
    assert r.exit_code == 2 and "dimension unknown for gru, bow" in r.stderr
    r = run_cli("model", "summary", "--video-feature", "tf=abc")
    assert r.exit_code == 2 and "expected NAME=DIM" in r.stderr
    r = run_cli("model", "summary", "--video-feature", "nope=3", "--bow-vocab", 3, "--gru-vocab", 5)
    assert r.exit_code == 2 and "no feature named nope" in r.stderr


def test_sparse_bag_projection_equals_the_dense_product():
    """In training a Projection multiplies only the bag-of-words columns some caption uses; outputs and every
    gradient equal the full product's, with exact zeros for the unused weight columns."""
    from avs.models.blocks import Projection

    torch.manual_seed(0)
    proj = Projection(300, 64, dropout=0.0, batch_norm=False).train()
    bag = (torch.rand(16, 300) < 0.02).float() * torch.randint(1, 3, (16, 300))
    out = proj(bag)
    w = torch.randn_like(out)
    (out * w).sum().backward()
    grads = [p.grad.clone() for p in proj.parameters()]
    lin = proj[0]
    ref = torch.tanh(bag @ lin.weight.T + lin.bias)
    torch.testing.assert_close(out, ref)
    proj.zero_grad()
    (ref * w).sum().backward()
    for g, p in zip(grads, proj.parameters()):
        torch.testing.assert_close(g, p.grad)
    unused = ~bag.any(dim=0)
    assert unused.sum() > 200 and (grads[0][:, unused] == 0).all()
