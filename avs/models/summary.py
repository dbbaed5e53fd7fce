"""Parameter accounting of a model, per feature transform and fusion block."""

from __future__ import annotations

import pandas as pd
from torch import nn

from avs.models.laff import TextVideoModel, count_parameters


def _row(part: str, module: nn.Module | None) -> dict:
    return {"part": part, "module": type(module).__name__, "parameters": count_parameters(module)}


def parameter_table(model: TextVideoModel) -> pd.DataFrame:
    """One row per feature transform / encoder / fusion block; the rows add up to the trainable total."""
    cfg = model.config
    rows = []
    for side, names in (
        ("video", [f.name for f in cfg.video] + ([cfg.frame.name] if cfg.frame else [])),
        ("text", [f.name for f in cfg.text]),
    ):
        tower = getattr(model, side)
        if side == "video" and model.frame_fusion is not None:
            rows.append(_row(f"video/{cfg.frame.name} frame fusion", model.frame_fusion))
        if side == "text" and model.gru is not None:
            rows.append(_row("text/gru encoder", model.gru))
        for name, t in zip(names, tower.transforms):
            rows.append(_row(f"{side}/{name} transform", t))
        if not tower.transforms:
            for i, p in enumerate(tower.joint):
                rows.append(_row(f"{side}/joint projection {i}", p))
        if tower.fusion is not None and count_parameters(tower.fusion):
            rows.append(_row(f"{side}/fusion", tower.fusion))
    df = pd.DataFrame(rows, columns=["part", "module", "parameters"])
    assert df["parameters"].sum() == count_parameters(model), "summary rows must cover every parameter"
    return df
