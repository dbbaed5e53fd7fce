"""The training recipe as one value: what ``avs train`` options and :func:`avs.train.train` keyword arguments
set. Defaults are the official LAFF recipe (laff-method.md §10)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from avs.errors import InputError
from avs.eval.retrieval import METRICS


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 80
    batch_size: int = 64
    lr: float = 1e-4
    device: str = "cpu"
    seed: int = 2
    mask_same_video: bool = False  # leave a caption's other captions of the same video out of its negatives
    word2vec: str | os.PathLike | None = None
    clip_checkpoint: str | os.PathLike | None = None
    clip_bpe: str | os.PathLike | None = None
    vocab_threshold: int = 5
    patience: int = 10  # epochs without a better validation score before stopping
    grad_clip: float = 2.0
    metric: str = "mir"  # the validation metric that picks the best epoch
    eval_batch_size: int = 256

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def check(self) -> "TrainConfig":
        if self.metric not in METRICS:
            raise InputError(None, f"validation metric {self.metric!r} is not one of {', '.join(METRICS)}")
        if self.epochs < 1 or self.batch_size < 2 or self.lr <= 0 or self.patience < 1:
            raise InputError(None, "epochs and patience must be >= 1, batch size >= 2 and the learning rate > 0")
        return self
