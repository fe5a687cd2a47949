"""Configuration of Linajea's cell-indicator detection path.

The cell indicator (Malin-Mayor et al., 2022) is a map in [0, 1] regressed by a U-Net
from a short window of frames: a Gaussian peak of height 1 at every nucleus centre.
Its training target is rendered from annotated points (:mod:`celltrack.detect.indicator_targets`),
trained by a masked mean squared error (only near annotated points, on rejected marks
and on automatic background), and nuclei are read off it by non-maximum suppression
(a max filter of ``nms.window_um`` and a score threshold, :mod:`celltrack.detect.nms`).

The defaults suit nuclei of ≈ 4 µm radius that are ≥ 7 µm apart (the synthetic embryo
of :mod:`celltrack.synth`, whose daughters start 7 µm apart): a peak of σ = 2 µm, trained
within 4 µm of each annotated centre, a suppression window of 6 µm. With ``nms.calibrate``
the window and the spot radius follow the annotated nuclei instead. Nothing here
imports torch; the detection code lives in :mod:`celltrack.detect`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from celltrack.config.base import Config
from celltrack.config.detection import ModelConfig, PredictConfig, TrainConfig
from celltrack.config.nn import AugmentConfig, NormalizeConfig

__all__ = [
    "IndicatorConfig",
    "IndicatorLossConfig",
    "IndicatorNMSConfig",
    "IndicatorTargetConfig",
]


def _positive_triplet(v: tuple[float, float, float], name: str) -> tuple[float, float, float]:
    if any(not s > 0 for s in v):
        raise ValueError(f"{name} must be 3 positive µm values (z, y, x), got {v}")
    return v


class IndicatorTargetConfig(Config):
    """How annotated points become the indicator target and its training weight."""

    sigma_um: tuple[float, float, float] = Field(
        (2.0, 2.0, 2.0),
        description="Standard deviation (z, y, x) of the Gaussian peak drawn at every "
        "annotated nucleus centre (µm; divided by the voxel size per axis, so anisotropic "
        "voxels get the same physical peak). About half the nucleus radius",
    )
    mask_radius_um: float = Field(
        4.0,
        gt=0.0,
        description="Radius of the ball around each annotated point that is trained (µm): "
        "the Gaussian inside the ball of a confirmed nucleus, 0 inside the ball of a "
        "rejected mark; keep it below the distance from a centre to its neighbours' "
        "centres minus their peak width, so unannotated neighbours are not trained as 0",
    )
    auto_background: Literal["off", "intensity"] = Field(
        "intensity",
        description="Negative evidence safe with sparse positives: 'intensity' trains as 0 "
        "the voxels of an annotated frame that are darker than the annotated nuclei and "
        "farther than auto_background_margin_um from anything brighter "
        "(celltrack.detect.evidence.intensity_background); without it a few points cannot "
        "teach where nuclei are not. 'off' trains only around the annotations",
    )
    auto_background_fraction: float = Field(
        0.25,
        gt=0.0,
        lt=1.0,
        description="'intensity' rule: background below this fraction of the way from the "
        "frame's background level up to the dimmest annotated nucleus' 10th intensity "
        "percentile (fraction; lower = safer for nuclei dimmer than the annotated ones)",
    )
    auto_background_margin_um: float = Field(
        2.0,
        ge=0.0,
        description="'intensity' rule: distance kept from any voxel brighter than the "
        "threshold, so the dim rims of unannotated nuclei stay untrained (µm)",
    )
    nucleus_radius_um: float = Field(
        4.0,
        gt=0.0,
        description="Radius of annotated nuclei without a covariance column, used for their "
        "intensity statistics in the 'intensity' rule (µm)",
    )

    @field_validator("sigma_um")
    @classmethod
    def _check_sigma(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        return _positive_triplet(v, "sigma_um")


class IndicatorLossConfig(Config):
    """Weights of the masked mean squared error of the indicator."""

    false_weight: float = Field(
        10.0,
        ge=0.0,
        description="Weight of voxels of corrections (fn nuclei added by a person, fp "
        "rejected predictions, fb false periphery marks) relative to confirmed ones "
        "(dimensionless)",
    )
    background_weight: float = Field(
        1.0,
        ge=0.0,
        description="Summed weight of a frame's automatic-background voxels relative to "
        "the summed weight of its annotated balls (dimensionless; each background voxel "
        "gets the same weight, at most 1). Background far outnumbers the annotated voxels: "
        "a per-voxel weight of 1 makes the network predict 0 everywhere",
    )


class IndicatorNMSConfig(Config):
    """Reading nuclei off the indicator: max filter, threshold and spot size."""

    window_um: tuple[float, float, float] = Field(
        (6.0, 6.0, 6.0),
        description="Full extent (z, y, x) of the max-filter window (µm; per axis the odd "
        "voxel count 2·floor(w / 2v) + 1). Linajea's rule: a bit smaller than the minimal "
        "distance between two nucleus centres (right after a division included)",
    )
    threshold: float = Field(
        0.3,
        gt=0.0,
        lt=1.0,
        description="A maximum is a nucleus if its indicator value exceeds this (indicator "
        "score; Linajea used 0.2 – 0.47)",
    )
    point_radius_um: float = Field(
        4.0,
        gt=0.0,
        description="Radius of the sphere given to every spot as its covariance (µm)",
    )
    suppression_distance_um: float = Field(
        3.0,
        ge=0.0,
        description="A predicted spot closer than this to an annotation of its frame is the "
        "same nucleus: the annotation is kept (µm; 0 = off)",
    )
    calibrate: bool = Field(
        True,
        description="When annotations are given to detect_indicator(), derive the window "
        "(1.75 × the median annotated nucleus radius, full extent, at least 3 voxels per "
        "axis), point_radius_um (the median radius) and suppression_distance_um "
        "(0.75 × the median radius) from the annotated nuclei with a covariance (≥ 3), "
        "and the threshold from the processed annotated frames (≥ 5 confirmed nuclei; "
        "grid 0.1–0.7, kept unless clearly better in F1 against found, missed and false "
        "maxima); False = the values above",
    )

    @field_validator("window_um")
    @classmethod
    def _check_window(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        return _positive_triplet(v, "window_um")


class IndicatorConfig(Config):
    """Root configuration of the cell-indicator detector (Linajea's detection path)."""

    kind: Literal["indicator"] = Field(
        "indicator", description="Discriminator: the Linajea cell-indicator detector"
    )
    window: tuple[int, int] = Field(
        (0, 0),
        description="Frames (before, after) t given to the network with frame t (frames; "
        "(0, 0) = the frame alone); clamped at the ends of the movie",
    )
    normalize: NormalizeConfig = Field(
        default_factory=NormalizeConfig,
        description="Per-frame intensity normalisation of the network input",
    )
    target: IndicatorTargetConfig = Field(
        default_factory=IndicatorTargetConfig, description="Target and training mask"
    )
    model: ModelConfig = Field(default_factory=ModelConfig, description="U-Net widths")
    loss: IndicatorLossConfig = Field(
        default_factory=IndicatorLossConfig, description="Masked MSE weights"
    )
    augment: AugmentConfig = Field(
        default_factory=lambda: AugmentConfig(scale=0.1, rotation_deg=180.0, contrast=0.2),
        description="Training augmentation",
    )
    train: TrainConfig = Field(
        default_factory=TrainConfig,
        description="Optimisation (the prior_* fields are not used: the indicator has no "
        "self-supervised prior)",
    )
    predict: PredictConfig = Field(default_factory=PredictConfig, description="Tiled prediction")
    nms: IndicatorNMSConfig = Field(
        default_factory=IndicatorNMSConfig, description="Non-maximum suppression"
    )

    @field_validator("window")
    @classmethod
    def _check_window(cls, v: tuple[int, int]) -> tuple[int, int]:
        if min(v) < 0:
            raise ValueError(f"window counts frames before and after t, ≥ 0 each; got {v}")
        return v

    @classmethod
    def cpu(cls, **overrides: Config) -> IndicatorConfig:
        """A preset for CPUs: the small U-Net, small crops in pairs, a higher learning rate.

        40 epochs of 5 crops of 8 × 64 × 64 voxels per annotated frame, 2 crops per step,
        learning rate 3e-3 decaying to 10 %: on the synthetic demo embryo (10 nuclei of
        one frame plus the 20 links the demo samples, i.e. 40 points in 2 frames: 200
        steps) training takes ≈ 1.5–2 minutes on one CPU thread and detection of the 20
        frames ≈ 8 s, reaching DET 0.997 (seeds 0 and 1). Keyword arguments replace whole
        sub-configs.
        """
        values: dict[str, Config] = {
            "model": ModelConfig(preset="cpu"),
            "train": TrainConfig(
                learning_rate=3e-3,
                crop_shape=(8, 64, 64),
                batch_size=2,
                incremental_steps=40,
                epochs=40,
                crops_per_frame=5,
                final_lr_fraction=0.1,
            ),
            "predict": PredictConfig(tile_shape=(32, 128, 128), overlap=(4, 16, 16)),
        }
        values.update(overrides)
        return cls(**values)
