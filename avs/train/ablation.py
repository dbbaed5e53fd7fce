"""The fusion-block ablation of the LAFF supplement (Tab. 11): each fusion config trained on the same data and
scored on the same test captions, as one table. Its files are written by ``avs.eval.report.write_outputs``."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from avs.errors import InputError
from avs.models import ModelConfig, config_from_dict, load_config

# ----------------------------------------------------------------------------------------------------------
# Tab. 11: fusion-block ablation

BASELINE = "concat"


ABLATION_FILES = ("ablation.csv", "ablation.md")


# What a features config contributes to every ablation config: the inputs, and the size of the joint space
# they are projected into; the fusion itself (fusion, heads, ...) stays the ablation config's.
_FEATURE_FIELDS = ("video", "text", "frame", "space_dim", "gru_embed", "gru_hidden")


def ablation_configs(names: Sequence[str], features: str | os.PathLike | None = None) -> dict[str, ModelConfig]:
    """Name -> config for each shipped config name or TOML path; with ``features`` (a config too) every one
    takes its inputs and space size from it, so the configs differ in the fusion block only."""
    if not names:
        raise InputError(None, "no config to ablate")
    dupes = sorted({n for n in names if list(names).count(n) > 1})
    if dupes:
        raise InputError(None, f"config named twice: {', '.join(dupes)}")
    configs = {n: load_config(n) for n in names}
    if features is None:
        return configs
    base = load_config(features).to_dict()
    out = {}
    for name, cfg in configs.items():
        d = {k: v for k, v in cfg.to_dict().items() if k not in _FEATURE_FIELDS}
        d.update({k: base[k] for k in _FEATURE_FIELDS if k in base})
        out[name] = config_from_dict(d, f"{name} with the features of {features}")
    return out


@dataclass
class AblationResult:
    """``table``: Tab. 11 form, one row per config: config, fusion, R@1, R@5, R@10, MedR, mAP (text→video on
    the test data) and ``mAP change %`` relative to the baseline's mAP. ``models``: where each was trained
    (empty when no output directory was given: the models were temporary)."""

    table: pd.DataFrame
    baseline: str
    models: dict[str, Path]


def run_ablation(
    configs: Sequence[str],
    train_data: str | os.PathLike,
    val_data: str | os.PathLike,
    test_data: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    features: str | os.PathLike | None = None,
    store: str | os.PathLike | None = None,
    baseline: str = BASELINE,
    epochs: int = 80,
    batch_size: int = 64,
    lr: float = 1e-4,
    seed: int = 2,
    word2vec: str | os.PathLike | None = None,
    force: bool = False,
    progress: bool = True,
) -> AblationResult:
    """Train every config on the same train/val data with the same recipe (``avs.train.train``), score each
    on the test data (``avs.train.evaluate_retrieval``) and compare mAP with ``baseline`` (one of
    ``configs``). Models go to ``out_dir/models/<config>`` (a temporary directory without ``out_dir``)."""
    from avs.eval.retrieval import LABELS as METRIC_LABELS
    from avs.train.loop import evaluate_retrieval, open_data, train

    cfgs = ablation_configs(configs, features)
    if baseline not in cfgs:
        raise InputError(None, f"the baseline {baseline!r} is not among the configs ({', '.join(cfgs)})")
    if out_dir is not None:
        targets = {n: Path(out_dir) / "models" / Path(n).stem for n in cfgs}
        taken = [p for p in (*targets.values(), *(Path(out_dir) / f for f in ABLATION_FILES)) if p.exists()]
        if taken and not force:
            raise InputError(taken[0], "already exists (use --force to overwrite)")
    with tempfile.TemporaryDirectory(prefix="avs-ablate-") as tmp:
        root = Path(out_dir) / "models" if out_dir is not None else Path(tmp)
        rows, models = [], {}
        for name, cfg in cfgs.items():
            model_dir = root / Path(name).stem
            train(
                cfg,
                open_data(train_data, cfg, store),
                open_data(val_data, cfg, store),
                model_dir,
                epochs=epochs,
                batch_size=batch_size,
                lr=lr,
                seed=seed,
                word2vec=word2vec,
                force=force,
                progress=progress,
            )
            m = evaluate_retrieval(model_dir, test_data, store=store, word2vec=word2vec)["t2v"]
            rows.append(
                {
                    "config": name,
                    "fusion": cfg.fusion,
                    **{METRIC_LABELS[k]: m[k] for k in ("r1", "r5", "r10", "medr", "map")},
                }
            )
            if out_dir is not None:
                models[name] = model_dir
    table = pd.DataFrame(rows)
    base_map = float(table.loc[table["config"] == baseline, "mAP"].iloc[0])
    table["mAP change %"] = (table["mAP"] - base_map) / base_map * 100.0 if base_map > 0 else np.nan
    return AblationResult(table, baseline, models)


def ablation_markdown(res: AblationResult) -> str:
    """Tab. 11 as the supplement prints it: mAP with its relative change against the baseline in parentheses."""
    t = res.table.copy()
    t["mAP"] = [
        f"{m:.3f}" if c == res.baseline or np.isnan(r) else f"{m:.3f} ({abs(r):.2f}%{'↑' if r >= 0 else '↓'})"
        for c, m, r in zip(t["config"], t["mAP"], t["mAP change %"])
    ]
    t["MedR"] = t["MedR"].map(lambda v: f"{v:g}")
    from avs.eval.report import markdown_table

    return f"# Fusion blocks compared (baseline: {res.baseline}; text-to-video on the test data)\n\n" + markdown_table(
        t.drop(columns="mAP change %"), digits=1
    )


def ablation_files(res: AblationResult) -> dict[str, str | bytes]:
    return dict(zip(ABLATION_FILES, (res.table.to_csv(index=False), ablation_markdown(res))))
