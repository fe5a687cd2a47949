"""Detection: label rendering, detection U-Net, training, tiled prediction, spots."""

from celltrack.detect.augment import Transform, apply, random_transform
from celltrack.detect.config import (
    AugmentConfig,
    DetectionConfig,
    LabelConfig,
    LossConfig,
    ModelConfig,
    PredictConfig,
    SpotConfig,
    TrainConfig,
)

__all__ = [
    "AugmentConfig",
    "DetectionConfig",
    "LabelConfig",
    "LossConfig",
    "ModelConfig",
    "PredictConfig",
    "SpotConfig",
    "TrainConfig",
    "Transform",
    "apply",
    "random_transform",
]
