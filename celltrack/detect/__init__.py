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

Linajea's cell indicator from points (a Gaussian peak per nucleus, masked MSE, NMS)::

    cfg = IndicatorConfig.cpu()
    result = train_indicator(images, annotations, voxel_size, cfg)
    spots = detect_indicator(result.model, images, cfg=cfg, annotations=annotations)

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
from celltrack.config.indicator import (
    IndicatorConfig,
    IndicatorLossConfig,
    IndicatorNMSConfig,
    IndicatorTargetConfig,
)
from celltrack.config.nn import AugmentConfig
from celltrack.detect.api import detect
from celltrack.detect.calibrate import calibrate_spot_sizes, calibrate_threshold
from celltrack.detect.classical import calibrate_classical, detect_classical
from celltrack.detect.detector import Detector, check_detector
from celltrack.detect.evidence import intensity_background, nucleus_statistics
from celltrack.detect.indicator_calibrate import calibrate_indicator_threshold, calibrate_nms
from celltrack.detect.indicator_model import build_indicator_model
from celltrack.detect.indicator_predict import detect_indicator, predict_indicator
from celltrack.detect.indicator_targets import indicator_training_target
from celltrack.detect.indicator_training import (
    IndicatorTrainer,
    IndicatorTrainResult,
    indicator_loss,
    train_indicator,
)
from celltrack.detect.labels import label_classes, label_is_false, label_summary, render_labels
from celltrack.detect.losses import DetectionLoss, prior_loss
from celltrack.detect.model import DetectionUNet, build_model, load_model, save_model
from celltrack.detect.nms import indicator_maxima, indicator_maxima_mask, window_voxels
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
    "IndicatorConfig",
    "IndicatorLossConfig",
    "IndicatorNMSConfig",
    "IndicatorTargetConfig",
    "IndicatorTrainResult",
    "IndicatorTrainer",
    "LabelConfig",
    "LossConfig",
    "ModelConfig",
    "PredictConfig",
    "SpotConfig",
    "TrainConfig",
    "Transform",
    "apply",
    "build_indicator_model",
    "build_model",
    "calibrate_classical",
    "calibrate_indicator_threshold",
    "calibrate_nms",
    "calibrate_spot_sizes",
    "calibrate_threshold",
    "check_detector",
    "detect",
    "detect_classical",
    "detect_indicator",
    "extract_spots",
    "indicator_loss",
    "indicator_maxima",
    "indicator_maxima_mask",
    "indicator_training_target",
    "intensity_background",
    "label_classes",
    "label_is_false",
    "label_summary",
    "load_model",
    "normalize_frame",
    "nucleus_statistics",
    "predict_indicator",
    "predict_probabilities",
    "prior_loss",
    "random_transform",
    "render_labels",
    "save_model",
    "suppress_duplicates",
    "train_batch",
    "train_detection",
    "train_incremental",
    "train_indicator",
    "train_prior",
    "window_voxels",
]
