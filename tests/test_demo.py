"""The SIMULATED demo reproduces the LAFF paper's qualitative findings (Tab. 9, 11, 14).

Builds the demo exactly as ``avs demo`` does, trains the ablation models with the same recipe, and evaluates
every model on all shipped topics against the demo's (simulated) judgments.
"""

import dataclasses

import numpy as np
import pytest
import torch

from avs.demo import builtin as D
from avs.engine.index import build_index
from avs.engine.searcher import search_topics
from avs.eval.infap import load_labels
from avs.formats.runs import write_trec
from avs.formats.store import open_store
from avs.formats.topics import LABELS, shipped_dir
from avs.models import load_config, load_model
from avs.train.loop import open_data, train
from trec_eval_compat.evaluate import Qrels, evaluate


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    return D.build(tmp_path_factory.mktemp("demo") / "home", progress=False)


def _mean_infap_per_topic(demo, model_dir, index, tmp):
    qrels = Qrels.read(demo.qrels)
    per_topic = {}
    for f in sorted(shipped_dir().glob("*.xml")):
        res = search_topics(f, model_dir, index)
        run = tmp / f"{f.stem}.trec"
        write_trec(res.run, run, force=True)
        per_topic.update(evaluate(qrels, run).per_topic["infAP"].to_dict())
    return per_topic


@pytest.fixture(scope="session")
def ablation(demo, tmp_path_factory):
    """infAP per topic for the demo LAFF and for models trained the same way on fewer features / concat."""
    base = load_config(D.CONFIG)
    variants = {
        "concat": dataclasses.replace(base, fusion="concat", heads=1),
        "no_motion": dataclasses.replace(base, video=tuple(v for v in base.video if v.name != "motion")),
    }
    variants.update({f"only_{v.name}": dataclasses.replace(base, video=(v,)) for v in base.video})
    tmp = tmp_path_factory.mktemp("ablation")
    out = {"laff": _mean_infap_per_topic(demo, demo.model, demo.index, tmp)}
    for name, cfg in variants.items():
        tr = open_data(demo.collection / "simtrain", cfg, store=demo.store)
        va = open_data(demo.collection / "simval", cfg, store=demo.store)
        train(cfg, tr, va, tmp / name, epochs=D.EPOCHS, lr=D.LR, seed=D.SEED, progress=False)
        build_index(tmp / name, demo.store, tmp / f"{name}.h5", progress=False)
        out[name] = _mean_infap_per_topic(demo, tmp / name, tmp / f"{name}.h5", tmp)
    return out


def test_laff_beats_every_single_feature_and_concat(ablation):
    means = {name: np.mean(list(v.values())) for name, v in ablation.items()}
    assert len(ablation["laff"]) == 210
    for name in ("only_appearance", "only_motion", "only_scene", "concat"):
        assert means["laff"] > means[name], means


def test_appearance_gets_the_largest_attention(demo):
    loaded = load_model(demo.model)
    store = open_store(demo.store)
    feats = {f.name: torch.from_numpy(store.get(f.name, dtype=np.float32)) for f in loaded.config.video}
    with torch.no_grad():
        _, w = loaded.model.encode_video(feats, return_weights=True)
    mean = dict(zip(feats, w.mean(dim=(0, 1)).tolist()))
    assert max(mean, key=mean.get) == "appearance", mean


def test_action_topics_gain_most_from_motion(ablation):
    labels = load_labels(None)
    gain = {
        lab: np.mean(
            [ablation["laff"][t] - ablation["no_motion"][t] for t in ablation["laff"] if lab in labels[int(t[1:])]]
        )
        for lab in LABELS
    }
    assert max(gain, key=gain.get) == "action", gain
    assert gain["action"] > 0


def test_default_search_and_eval_use_the_demo(demo, run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("AVS_DEMO_DIR", str(demo.root))
    monkeypatch.chdir(tmp_path)
    r = run_cli("search", "--topics", shipped_dir() / "tv20.xml")
    assert r.exit_code == 0, r.stderr
    assert "SIMULATED" in r.stdout and (tmp_path / "runs" / "demo_laff_tv20.xml").exists()
    r = run_cli("eval", "infap", "runs/demo_laff_tv20.xml", "--per-query")
    assert r.exit_code == 0 and "SIMULATED demo judgments" in r.stdout
    assert "a person paddling kayak in the water" in r.stdout and "location" in r.stdout
    assert run_cli("run", "validate", "runs/demo_laff_tv20.xml", "--topics", shipped_dir() / "tv20.xml").exit_code == 0


def test_demo_manifest_and_refusals(demo):
    assert demo.ready()
    with pytest.raises(Exception, match="already exists"):
        D.build(demo.root)
