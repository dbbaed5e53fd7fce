"""Text-to-video models: LAFF, LAFF-ml and the fusion blocks of the LAFF paper's ablation."""

from avs.models.config import (
    FrameFeature,
    ModelConfig,
    TextFeature,
    VideoFeature,
    config_from_dict,
    list_configs,
    load_config,
)
from avs.models.laff import TextVideoModel, count_parameters

__all__ = [
    "ModelConfig",
    "VideoFeature",
    "TextFeature",
    "FrameFeature",
    "load_config",
    "list_configs",
    "config_from_dict",
    "TextVideoModel",
    "count_parameters",
]
from avs.models.io import LoadedModel, check_video_features, load_model, save_model, usable_device  # noqa: E402

__all__ += ["LoadedModel", "load_model", "save_model", "check_video_features", "usable_device"]
