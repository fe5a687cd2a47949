"""Re-export of the detection configs, which live in :mod:`celltrack.config.detection`.

Kept so that ``from celltrack.detect.config import DetectionConfig`` keeps working; new
code imports from :mod:`celltrack.config.detection` (no torch) or :mod:`celltrack.detect`.
"""

from celltrack.config.detection import (
    PRESET_WIDTHS,
    DetectionConfig,
    LabelConfig,
    LossConfig,
    ModelConfig,
    PredictConfig,
    SpotConfig,
    TrainConfig,
)
from celltrack.config.nn import AugmentConfig, TilingConfig

__all__ = [
    "PRESET_WIDTHS",
    "AugmentConfig",
    "DetectionConfig",
    "LabelConfig",
    "LossConfig",
    "ModelConfig",
    "PredictConfig",
    "SpotConfig",
    "TilingConfig",
    "TrainConfig",
]
