"""Detection: label rendering, detection U-Net, training, tiled prediction, spots.

Importing this package imports torch. Typical use::

    from celltrack.detect import DetectionConfig, build_model, DetectionTrainer, detect

    cfg = DetectionConfig.cpu()
    model = build_model(cfg.model, voxel_size)
    trainer = DetectionTrainer(model, cfg)
    trainer.prior(images)
    trainer.incremental(images, annotations, frame=t)
    spots = detect(model, images, cfg=cfg)

or, in one call from reviewed annotations (resumable)::

    result = train_detection(images, annotations, voxel_size, cfg, checkpoint="det.pt")

Movies go through :func:`celltrack.io.as_movie` (a 3-D array is (T, Y, X)). The configs
live in :mod:`celltrack.config.detection` (importable without torch) and are re-exported
here; augmentation and normalisation are :mod:`celltrack.nn`'s.
"""

from celltrack.config.detection import (
    DetectionConfig,
    LabelConfig,
    LossConfig,
    ModelConfig,
    PredictConfig,
    SpotConfig,
    TrainConfig,
)
from celltrack.config.nn import AugmentConfig
from celltrack.detect.api import detect
from celltrack.detect.calibrate import calibrate_spot_sizes, calibrate_threshold
from celltrack.detect.classical import calibrate_classical, detect_classical
from celltrack.detect.detector import Detector, check_detector
from celltrack.detect.evidence import intensity_background, nucleus_statistics
from celltrack.detect.labels import label_classes, label_is_false, label_summary, render_labels
from celltrack.detect.losses import DetectionLoss, prior_loss
from celltrack.detect.model import DetectionUNet, build_model, load_model, save_model
from celltrack.detect.predict import predict_probabilities
from celltrack.detect.spots import extract_spots, suppress_duplicates
from celltrack.detect.training import (
    DetectionTrainer,
    DetectionTrainResult,
    train_batch,
    train_detection,
    train_incremental,
    train_prior,
)
from celltrack.nn.augment import Transform, apply, random_transform
from celltrack.nn.normalize import normalize_frame

__all__ = [
    "AugmentConfig",
    "DetectionConfig",
    "DetectionLoss",
    "DetectionTrainResult",
    "DetectionTrainer",
    "DetectionUNet",
    "Detector",
    "LabelConfig",
    "LossConfig",
    "ModelConfig",
    "PredictConfig",
    "SpotConfig",
    "TrainConfig",
    "Transform",
    "apply",
    "build_model",
    "calibrate_classical",
    "calibrate_spot_sizes",
    "calibrate_threshold",
    "check_detector",
    "detect",
    "detect_classical",
    "extract_spots",
    "intensity_background",
    "label_classes",
    "label_is_false",
    "label_summary",
    "load_model",
    "normalize_frame",
    "nucleus_statistics",
    "predict_probabilities",
    "prior_loss",
    "random_transform",
    "render_labels",
    "save_model",
    "suppress_duplicates",
    "train_batch",
    "train_detection",
    "train_incremental",
    "train_prior",
]
