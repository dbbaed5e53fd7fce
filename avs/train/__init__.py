"""Training: the LAFF recipe on caption datasets (:func:`train`, :class:`TrainConfig`), retrieval evaluation of a
trained model (:func:`evaluate_retrieval`), and the fusion-block ablation (:mod:`avs.train.ablation`)."""

from avs.train.config import TrainConfig
from avs.train.loop import CaptionData, TrainResult, evaluate_retrieval, open_data, train

__all__ = ["CaptionData", "TrainConfig", "TrainResult", "evaluate_retrieval", "open_data", "train"]
