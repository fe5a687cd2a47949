"""One call per stage whatever its kind: train, load and apply the detection and motion models.

The detection section's ``kind`` is ELEPHANT's ``ellipsoid`` U-Net, the ``classical``
detector (no model) or Linajea's cell ``indicator``; the motion section's ``kind`` is
ELEPHANT's backward ``flow`` or Linajea's ``movement_vectors``, optionally ``joint`` with
the indicator (one network, both heads). :class:`celltrack.pipeline.Pipeline` and
:class:`celltrack.project.Project` go through these functions, so a new kind is added
here once. Importing this module does not import torch; calling the functions does.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from celltrack.config.stages import AnyDetectionConfig, AnyMotionConfig
from celltrack.errors import InvalidInputError
from celltrack.graph import TrackGraph

__all__ = [
    "detect_spots",
    "detection_trainer",
    "detector_name",
    "is_joint",
    "load_detector",
    "load_motion_model",
    "motion_name",
    "new_detector",
    "point_radius_um",
    "predict_parent_positions",
    "suppression_distance_um",
    "train_detector",
    "train_joint_model",
    "train_motion_model",
]


def is_joint(motion: AnyMotionConfig) -> bool:
    """Whether the motion model is Linajea's joint indicator + movement network."""
    return bool(getattr(motion, "joint", False))


def detector_name(cfg: AnyDetectionConfig) -> str:
    """The model file's stem for this detection kind (``detection`` or ``indicator``)."""
    return "indicator" if cfg.kind == "indicator" else "detection"


def motion_name(cfg: AnyMotionConfig) -> str:
    """The model file's stem for this motion kind (``flow``, ``movement`` or ``joint``)."""
    if cfg.kind == "flow":
        return "flow"
    return "joint" if is_joint(cfg) else "movement"


def train_detector(
    images: Any,
    annotations: TrackGraph | None,
    voxel_size: Sequence[float],
    cfg: AnyDetectionConfig,
    *,
    checkpoint: Path,
    progress: bool = False,
) -> tuple[Any, Any]:
    """Train the detection model of ``cfg.kind`` (resumable from ``checkpoint``).

    Parameters
    ----------
    images : ImageSeries or array_like, shape (T, Z, Y, X)
        The training movie.
    annotations : TrackGraph or None
        Reviewed annotations (µm). Without any, the ellipsoid U-Net gets its
        self-supervised prior only; the indicator cannot train.
    voxel_size : sequence of 3 float
        (z, y, x) µm.
    cfg : DetectionConfig or IndicatorConfig
        The detection section (not ``kind: classical``, which has no model).
    checkpoint : Path
        Resumable training checkpoint; it holds the finished model at the end.
    progress : bool
        Show progress bars.

    Returns
    -------
    (model, TrainingHistory)

    Raises
    ------
    InvalidInputError
        For the indicator without reviewed annotations.
    """
    annotated = annotations is not None and annotations.num_nodes > 0
    if cfg.kind == "indicator":
        if not annotated:
            raise InvalidInputError(
                "detection.kind: indicator learns from annotated points, but there are no "
                "reviewed annotations: set data.annotations (a few nuclei per frame in one or "
                "two frames), or use detection.kind: ellipsoid, whose prior needs none"
            )
        from celltrack.detect.indicator_training import train_indicator

        result = train_indicator(
            images, annotations, voxel_size, cfg, checkpoint=checkpoint, resume=True,
            progress=progress,
        )
        return result.model, result.history
    from celltrack.detect import build_model, save_model, train_detection, train_prior

    if annotated:
        result = train_detection(
            images, annotations, voxel_size, cfg, checkpoint=checkpoint, resume=True,
            progress=progress,
        )
        return result.model, result.history
    model = build_model(
        cfg.model, voxel_size, two_d=int(images.shape[1]) == 1, seed=cfg.train.seed
    )
    history = train_prior(model, images, cfg, progress=progress)
    save_model(checkpoint, model)
    return model, history


def load_detector(path: Path, cfg: AnyDetectionConfig) -> Any:
    """Load the model :func:`train_detector` left at ``path``."""
    if cfg.kind == "indicator":
        from celltrack.nn.linajea_unet import load_linajea_model

        return load_linajea_model(path, heads=("indicator",))
    from celltrack.detect import load_model

    return load_model(path)[0]


def detect_spots(
    model: Any,
    images: Any,
    cfg: AnyDetectionConfig,
    *,
    voxel_size: Sequence[float],
    annotations: TrackGraph | None = None,
    frames: Any = None,
    progress: bool = False,
) -> TrackGraph:
    """Spots of every (or the given) frame(s) with the detector of ``cfg.kind``.

    ``model`` is ignored for ``kind: classical``; for ``kind: indicator`` it may be the
    joint model (its indicator head is used). Reviewed ``annotations`` are merged and
    their tags re-checked as :func:`celltrack.detect.detect` does.
    """
    if cfg.kind == "classical":
        from celltrack.detect.classical import detect_classical

        return detect_classical(
            images, frames, cfg=cfg, voxel_size=voxel_size, annotations=annotations,
            progress=progress,
        )
    if cfg.kind == "indicator":
        from celltrack.detect.indicator_predict import detect_indicator

        return detect_indicator(
            model, images, frames, cfg, voxel_size=voxel_size, annotations=annotations,
            progress=progress,
        )
    from celltrack.detect import detect

    return detect(
        model, images, frames, cfg, voxel_size=voxel_size, annotations=annotations,
        progress=progress,
    )


def train_motion_model(
    images: Any,
    links: TrackGraph,
    voxel_size: Sequence[float],
    cfg: AnyMotionConfig,
    *,
    checkpoint: Path,
    model: Any = None,
    progress: bool = False,
) -> tuple[Any, Any]:
    """Train the (non-joint) motion model of ``cfg.kind`` from approved links (resumable).

    ``model`` is fine-tuned when given (a new one is built otherwise).

    Returns
    -------
    (model, TrainingHistory)
    """
    if cfg.kind == "movement_vectors":
        from celltrack.flow.movement_training import train_movement

        result = train_movement(
            images, links, voxel_size, cfg, model=model, checkpoint=checkpoint, resume=True,
            progress=progress,
        )
    else:
        from celltrack.flow import train_flow

        result = train_flow(
            images, links, voxel_size, cfg, model=model, checkpoint=checkpoint, resume=True,
            progress=progress,
        )
    return result.model, result.history


def train_joint_model(
    images: Any,
    annotations: TrackGraph,
    voxel_size: Sequence[float],
    detection: AnyDetectionConfig,
    motion: AnyMotionConfig,
    *,
    checkpoint: Path,
    progress: bool = False,
) -> tuple[Any, Any]:
    """Train Linajea's joint network (indicator and movement heads) from points and links.

    Returns
    -------
    (model, TrainingHistory)
    """
    from celltrack.joint import train_joint

    result = train_joint(
        images, annotations, voxel_size, detection, motion, checkpoint=checkpoint,
        resume=True, progress=progress,
    )
    return result.model, result.history


def load_motion_model(path: Path, cfg: AnyMotionConfig) -> Any:
    """Load the model :func:`train_motion_model` / :func:`train_joint_model` left at ``path``."""
    if cfg.kind == "movement_vectors":
        from celltrack.nn.linajea_unet import load_linajea_model

        heads = ("indicator", "movement") if is_joint(cfg) else ("movement",)
        return load_linajea_model(path, heads=heads)
    from celltrack.flow import load_flow_model

    return load_flow_model(path)


def predict_parent_positions(
    model: Any,
    images: Any,
    spots: TrackGraph,
    voxel_size: Sequence[float],
    cfg: AnyMotionConfig,
    *,
    progress: bool = False,
) -> TrackGraph:
    """``spots`` with ``parent_z/y/x`` (µm): where each nucleus was one frame earlier."""
    if cfg.kind == "movement_vectors":
        from celltrack.flow.movement_predict import predict_parents_movement

        return predict_parents_movement(
            model, images, spots, voxel_size, cfg, progress=progress
        )
    from celltrack.flow import predict_parents

    return predict_parents(model, images, spots, voxel_size, cfg, progress=progress)


def point_radius_um(cfg: AnyDetectionConfig) -> float:
    """Radius (µm) given to an annotation without a covariance, for this detection kind."""
    return float(cfg.nms.point_radius_um if cfg.kind == "indicator" else cfg.labels.point_radius_um)


def suppression_distance_um(cfg: AnyDetectionConfig) -> float:
    """Distance (µm) under which a prediction is the same nucleus as an annotation."""
    if cfg.kind == "indicator":
        return float(cfg.nms.suppression_distance_um)
    return float(cfg.spots.suppression_distance_um)


def detection_trainer(model: Any, cfg: AnyDetectionConfig, voxel_size: Sequence[float]) -> Any:
    """The stateful trainer (incremental and batch updates) of this detection kind."""
    if cfg.kind == "indicator":
        from celltrack.detect.indicator_training import IndicatorTrainer

        return IndicatorTrainer(model, cfg, voxel_size=voxel_size)
    from celltrack.detect import DetectionTrainer

    return DetectionTrainer(model, cfg, voxel_size=voxel_size)


def new_detector(cfg: AnyDetectionConfig, voxel_size: Sequence[float], *, two_d: bool) -> Any:
    """An untrained detection model of this kind (the indicator's or ELEPHANT's U-Net)."""
    if cfg.kind == "indicator":
        from celltrack.detect.indicator_model import build_indicator_model

        return build_indicator_model(cfg, voxel_size, two_d=two_d, seed=cfg.train.seed)
    from celltrack.detect import build_model

    return build_model(cfg.model, voxel_size, two_d=two_d)
