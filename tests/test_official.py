"""Importing official LAFF checkpoints: outputs equal the official code's (fixtures in tests/data/official)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from avs.cli import cli
from avs.engine.embed import embed
from avs.errors import InputError
from avs.features.vocab import bow_counts, gru_token_ids
from avs.models import load_model
from avs.models.official import PickledObject, import_official, load_checkpoint, plan_import, read_vocab_pickle

DATA = Path(__file__).parent / "data" / "official"
TOL = 1e-5
OUTPUT_KEYS = ("txt_emb", "vis_emb", "sim_t2v", "txt_attn", "vis_attn")
CHECKPOINTS = {"fresh": "fresh_state_dict.pth", "trained": "trained_model_best.pth.tar"}


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    root = tmp_path_factory.mktemp("imported")
    return {name: import_official(DATA / ck, root / name, vocab_dir=DATA).out for name, ck in CHECKPOINTS.items()}


@pytest.mark.parametrize("name", sorted(CHECKPOINTS))
def test_outputs_equal_official(imported, name):
    got = embed(imported[name], DATA / "inputs.npz")
    want = np.load(DATA / f"{name}_outputs.npz")
    assert sorted(got) == sorted(OUTPUT_KEYS)
    for key in OUTPUT_KEYS:
        assert got[key].shape == want[key].shape, key
        assert np.abs(got[key] - want[key]).max() < TOL, key


def _subset(tmp_path, keys) -> Path:
    with np.load(DATA / "inputs.npz") as z:
        arrays = {k: z[k] for k in z.files if k in keys or any(k.startswith(p) for p in keys)}
    path = tmp_path / "in.npz"
    np.savez(path, **arrays)
    return path


def test_text_only_and_video_only(imported, tmp_path):
    want = np.load(DATA / "trained_outputs.npz")
    text = embed(imported["trained"], _subset(tmp_path, ("bow", "w2v", "gru_ids", "gru_lengths", "clip_text")))
    assert sorted(text) == ["txt_attn", "txt_emb"]
    assert np.abs(text["txt_emb"] - want["txt_emb"]).max() < TOL
    video = embed(imported["trained"], _subset(tmp_path, ("vid__",)))
    assert sorted(video) == ["vis_attn", "vis_emb"]
    assert np.abs(video["vis_attn"] - want["vis_attn"]).max() < TOL


def test_inferred_architecture(imported):
    cfg = load_model(imported["trained"]).config
    assert (cfg.space_dim, cfg.heads, cfg.gru_embed, cfg.gru_hidden, cfg.batch_norm) == (32, 4, 6, 10, False)
    assert [(f.name, f.dim, f.no_transform) for f in cfg.video] == [
        ("clip_finetune_8frame_uniform_1103", 8, True),
        ("HowTo100M_TimeSformer_divST_96x4_224", 12, False),
        ("X3D_L", 10, False),
        ("mean_irCSN_152_ig65m_from_scratch", 9, False),
    ]
    assert [(f.name, f.kind, f.dim, f.no_transform) for f in cfg.text] == [
        ("gru", "gru", 28, False),
        ("bow", "bow", 16, False),
        ("w2v", "w2v", 7, False),
        ("clip", "clip", 8, True),
    ]


def test_full_checkpoint_extras_are_inert():
    state, extras = load_checkpoint(DATA / CHECKPOINTS["trained"])
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    assert extras["epoch"] == 3
    config = extras["config"]
    assert isinstance(config, PickledObject)
    assert (config.pickled_module, config.pickled_name) == ("configs.laff", "config")
    assert extras["opt"].attributes["parm_adjust_config"] == "0_12_0_12_0_0_1"


def test_dead_parameters_and_frozen_clip_ignored():
    state, extras = load_checkpoint(DATA / CHECKPOINTS["trained"])
    plan = plan_import(state, extras)
    assert len(plan.ignored) == 2 * 2 + 2 * 4 + 2  # LayerNorm w+b per side, one scalar per head, stub CLIP
    assert all("layer_norm" in k or "global_emb_weight_net" in k or ".ClipModel." in k for k in plan.ignored)
    assert set(plan.mapping.values()) | set(plan.ignored) == set(state)


def test_vocab_pickles_match_official_featurisation(imported):
    bow, gru = read_vocab_pickle(DATA / "bow_nsw_5.pkl"), read_vocab_pickle(DATA / "gru_5.pkl")
    assert (bow.kind, gru.kind, len(bow), len(gru), gru.threshold) == ("bow_nsw", "gru", 16, 28, 5)
    with np.load(DATA / "inputs.npz") as z:
        captions, want_bow, want_ids, want_len = list(z["captions"]), z["bow"], z["gru_ids"], z["gru_lengths"]
    np.testing.assert_array_equal(bow_counts(captions, bow), want_bow)
    ids, lengths = gru_token_ids(captions, gru)
    np.testing.assert_array_equal(ids.numpy(), want_ids)
    np.testing.assert_array_equal(lengths.numpy(), want_len)
    assert sorted(load_model(imported["trained"]).vocabs) == ["bow", "gru"]


class _Payload:
    """Pickles as a call to ``func(arg)``: running it on load would be the attack."""

    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return self.func, (self.arg,)


def _malicious_state(marker: Path) -> dict:
    state, _ = load_checkpoint(DATA / CHECKPOINTS["fresh"])
    return {
        "model": state,
        "config": _Payload(os.system, f"touch {marker}"),
        "opt": _Payload(exec, f"open({str(marker)!r}, 'w').close()"),
        "epoch": 1,
    }


def test_malicious_checkpoint_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    ck = tmp_path / "model_best.pth.tar"
    torch.save(_malicious_state(marker), ck)
    state, extras = load_checkpoint(ck)
    assert not marker.exists()
    assert extras["config"].pickled_name == "system" and extras["opt"].pickled_name == "exec"
    import_official(ck, tmp_path / "m")  # the weights themselves are fine and import
    assert not marker.exists()


def test_malicious_legacy_checkpoint_and_state_dict_run_nothing(tmp_path):
    marker = tmp_path / "pwned"
    ck = tmp_path / "legacy.pth"
    torch.save(_malicious_state(marker), ck, _use_new_zipfile_serialization=False)
    load_checkpoint(ck)
    bad = tmp_path / "bad_state.pth"
    torch.save({"w": _Payload(os.system, f"touch {marker}")}, bad)
    with pytest.raises(InputError, match="not named tensors"):
        load_checkpoint(bad)
    assert not marker.exists()


def test_malicious_vocab_pickle_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "gru_5.pkl"
    bad.write_bytes(pickle.dumps(_Payload(os.system, f"touch {marker}")))
    with pytest.raises(InputError, match="not an official vocabulary"):
        read_vocab_pickle(bad)
    assert not marker.exists()


def test_unpickler_does_not_import_modules(tmp_path):
    # a pickle naming a module that is not loaded yet must not import it
    name = "avs_official_never_imported_module"
    blob = b"\x80\x02c" + name.encode() + b"\nf\nq\x00)\x81q\x01."
    path = tmp_path / "x.pkl"
    path.write_bytes(blob)
    with pytest.raises(InputError):
        read_vocab_pickle(path)
    import sys

    assert name not in sys.modules


def test_torchscript_archive_refused(tmp_path):
    ts = tmp_path / "ts.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), ts)
    with pytest.raises(InputError, match="TorchScript"):
        load_checkpoint(ts)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04junk"])
def test_corrupt_file_is_input_error(tmp_path, content):
    bad = tmp_path / "bad.pth.tar"
    bad.write_bytes(content)
    with pytest.raises(InputError, match="bad.pth.tar"):
        load_checkpoint(bad)


def test_truncated_checkpoint_is_input_error(tmp_path):
    data = (DATA / CHECKPOINTS["trained"]).read_bytes()
    bad = tmp_path / "cut.pth.tar"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError):
        load_checkpoint(bad)


def _state():
    state, _ = load_checkpoint(DATA / CHECKPOINTS["fresh"])
    return dict(state)


def _single_head(state):
    for k in [k for k in state if k.startswith("vis_net.attention_layer.")]:
        del state[k]
    state["vis_net.attention_layer.embedding_common.0.weight"] = torch.zeros(1, 32)


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda s: s.update({"vis_net.frame_attention.x.0.weight": torch.zeros(1)}), "LAFF-ml"),
        (lambda s: s.update({"vis_net.fc1.weight": torch.zeros(1)}), "concat"),
        (lambda s: s.update({"txt_net.expert_embedding.weight": torch.zeros(1)}), "expert"),
        (
            lambda s: s.update({"txt_net.attention_layer.attention_layer.0.extra.weight": torch.zeros(1)}),
            "no place for",
        ),
        (_single_head, "single-head"),
    ],
)
def test_unsupported_layouts_refused(edit, message):
    state = _state()
    edit(state)
    with pytest.raises(InputError, match=message) as e:
        plan_import(state, source="ck")
    assert "unsupported official model: found" in str(e.value)


def test_with_ave_still_active_refused():
    state, extras = load_checkpoint(DATA / CHECKPOINTS["trained"])
    extras["opt"].state["parm_adjust_config"] = "0_12_0_12_1_0_1"
    with pytest.raises(InputError, match="with_ave=1"):
        plan_import(state, extras)


def test_not_a_laff_state_dict(tmp_path):
    path = tmp_path / "sd.pth"
    torch.save({"weight": torch.zeros(2)}, path)
    with pytest.raises(InputError, match="not an official LAFF state_dict"):
        import_official(path, tmp_path / "m")


def test_embed_input_errors(imported, tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, bow=np.zeros((2, 16), np.float32))
    with pytest.raises(InputError, match="missing gru_ids, gru_lengths, w2v, clip_text"):
        embed(imported["fresh"], bad)
    np.savez(bad, other=np.zeros(3))
    with pytest.raises(InputError, match="no inputs"):
        embed(imported["fresh"], bad)
    with np.load(DATA / "inputs.npz") as z:
        arrays = {k: z[k] for k in z.files if k.startswith("vid__")}
    arrays["vid__X3D_L"] = arrays["vid__X3D_L"][:, :4]
    np.savez(bad, **arrays)
    with pytest.raises(InputError, match="vid__X3D_L"):
        embed(imported["fresh"], bad)


def test_cli_import_and_embed(tmp_path):
    runner = CliRunner()
    out = tmp_path / "model"
    r = runner.invoke(
        cli,
        [
            "model",
            "import-official",
            str(DATA / CHECKPOINTS["trained"]),
            "--out",
            str(out),
            "--vocab-dir",
            str(DATA),
            "--word2vec",
            str(DATA / "inputs.npz"),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "spaces: 4 x 8" in r.output
    assert load_model(out).meta["word2vec"] == str((DATA / "inputs.npz").resolve())
    r = runner.invoke(cli, ["model", "import-official", str(DATA / CHECKPOINTS["trained"]), "--out", str(out)])
    assert r.exit_code == 2 and "already exists" in r.output
    emb = tmp_path / "out.npz"
    args = ["model", "embed", "--model", str(out), "--features", str(DATA / "inputs.npz"), "--out", str(emb)]
    r = runner.invoke(cli, args)
    assert r.exit_code == 0, r.output
    with np.load(emb) as got, np.load(DATA / "trained_outputs.npz") as want:
        assert np.abs(got["sim_t2v"] - want["sim_t2v"]).max() < TOL
    assert runner.invoke(cli, args).exit_code == 2
    bad = tmp_path / "bad.pth.tar"
    bad.write_bytes(b"garbage")
    r = runner.invoke(cli, ["model", "import-official", str(bad), "--out", str(tmp_path / "m2")])
    assert r.exit_code == 2 and "avs: error:" in r.output and "not a PyTorch checkpoint" in r.output
