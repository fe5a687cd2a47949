"""Detection: label rendering, detection U-Net, training, tiled prediction, spots.

Importing this package imports torch. Typical use::

    from celltrack.detect import DetectionConfig, build_model, DetectionTrainer, detect

    cfg = DetectionConfig.cpu()
    model = build_model(cfg.model, voxel_size)
    trainer = DetectionTrainer(model, cfg)
    trainer.prior(images)
    trainer.incremental(images, annotations, frame=t)
    spots = detect(model, images, cfg=cfg)
"""

from celltrack.detect.api import detect
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
from celltrack.detect.labels import label_classes, label_is_false, render_labels
from celltrack.detect.losses import DetectionLoss, prior_loss
from celltrack.detect.model import DetectionUNet, build_model, load_model, save_model
from celltrack.detect.predict import normalize_frame, predict_probabilities
from celltrack.detect.spots import extract_spots, suppress_duplicates
from celltrack.detect.training import (
    DetectionTrainer,
    train_batch,
    train_incremental,
    train_prior,
)

__all__ = [
    "AugmentConfig",
    "DetectionConfig",
    "DetectionLoss",
    "DetectionTrainer",
    "DetectionUNet",
    "LabelConfig",
    "LossConfig",
    "ModelConfig",
    "PredictConfig",
    "SpotConfig",
    "TrainConfig",
    "Transform",
    "apply",
    "build_model",
    "detect",
    "extract_spots",
    "label_classes",
    "label_is_false",
    "load_model",
    "normalize_frame",
    "predict_probabilities",
    "prior_loss",
    "random_transform",
    "render_labels",
    "save_model",
    "suppress_duplicates",
    "train_batch",
    "train_incremental",
    "train_prior",
]
