"""Configuration of the detection stage: labels, model, losses, training, prediction, spots.

Every sub-config is a frozen pydantic model (:class:`celltrack.config.Config`); the root
:class:`DetectionConfig` nests them and loads/saves as YAML, TOML or JSON. Nothing here
imports torch; :mod:`celltrack.detect` re-exports these classes.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from celltrack.config.base import Config
from celltrack.config.classical import ClassicalConfig
from celltrack.config.nn import AugmentConfig, NormalizeConfig, TilingConfig

__all__ = [
    "PRESET_WIDTHS",
    "DetectionConfig",
    "LabelConfig",
    "LossConfig",
    "ModelConfig",
    "PredictConfig",
    "SpotConfig",
    "TrainConfig",
]

#: U-Net channel widths per preset (encoder top → bottleneck).
PRESET_WIDTHS: dict[str, tuple[int, ...]] = {
    "default": (16, 32, 64, 128, 256),  # ELEPHANT's detection U-Net
    "cpu": (8, 16, 32, 64),  # ~16x fewer multiply-adds per voxel, for laptops
}


class LabelConfig(Config):
    """How annotations are rendered into a 4-class label volume (one frame)."""

    centre_ratio: float = Field(
        0.4,
        gt=0.0,
        lt=1.0,
        description="Semi-axes of the centre region relative to the nucleus (fraction, "
        "ELEPHANT c_ratio); the same ratio enlarges centre components back at detection",
    )
    point_radius_um: float = Field(
        3.0,
        gt=0.0,
        description="Radius of the sphere drawn for annotations without covariance (µm)",
    )
    min_voxels: int = Field(
        9,
        ge=1,
        description="Minimum voxels of a nucleus ellipsoid; tiny ones grow by 10 % steps (voxels)",
    )
    min_centre_voxels: int = Field(
        1, ge=1, description="Minimum voxels of a nucleus' centre region (voxels)"
    )
    background_threshold: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="If set, voxels of the min-max normalised frame below this value become "
        "background before the ellipsoids are drawn (fraction of the intensity range); None = off",
    )
    auto_background: Literal["off", "intensity"] = Field(
        "intensity",
        description="Negative evidence that is safe with sparse positives: 'intensity' trains "
        "as background the voxels of an annotated frame that are darker than the annotated "
        "nuclei (after percentile normalisation and smoothing, below the background level + "
        "auto_background_fraction × (dimmest annotated nucleus' 10th percentile − level)) and "
        "farther than auto_background_margin_um from any brighter voxel; frames with only "
        "rejected marks use the other annotated frames' statistics "
        "(celltrack.detect.evidence); 'off' trains only what was annotated",
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
        description="'intensity' rule: keep this distance from any voxel brighter than the "
        "threshold, so the dim rims of unannotated nuclei stay unlabelled (µm)",
    )


class ModelConfig(Config):
    """Architecture of the detection U-Net."""

    preset: Literal["default", "cpu"] = Field(
        "default",
        description="Width preset: 'default' = ELEPHANT 16-32-64-128-256, 'cpu' = 8-16-32-64",
    )
    widths: tuple[int, ...] | None = Field(
        None,
        min_length=2,
        description="Channels per level (encoder top → bottleneck); overrides the preset",
    )

    def resolved_widths(self) -> tuple[int, ...]:
        """The channel widths actually used (``widths`` or the preset's)."""
        return tuple(self.widths) if self.widths is not None else PRESET_WIDTHS[self.preset]


class LossConfig(Config):
    """Weights of the detection loss terms."""

    class_weights: tuple[float, float, float] = Field(
        (1.0, 10.0, 10.0),
        description="NLL weight of background, periphery, centre voxels (dimensionless)",
    )
    false_weight: float = Field(
        10.0,
        ge=0.0,
        description="Extra weight of voxels from 'false' annotations (fn, fp, fb: corrections "
        "of the model) relative to true ones (dimensionless)",
    )
    nll_weight: float = Field(1.0, ge=0.0, description="Weight of the class-weighted NLL term")
    dice_weight: float = Field(5.0, ge=0.0, description="Weight of the centre soft-Dice term")
    smooth_weight: float = Field(
        1.0, ge=0.0, description="Weight of the centre-map smoothness term"
    )
    smooth_sigma_um: float = Field(
        2.0, gt=0.0, description="Gaussian sigma of the smoothness reference blur (µm)"
    )


class TrainConfig(Config):
    """Optimisation settings for prior, incremental and batch training."""

    learning_rate: float = Field(1e-3, gt=0.0, description="Adam learning rate")
    crop_shape: tuple[int, int, int] = Field(
        (16, 96, 96),
        description="Training crop (z, y, x) in voxels; clipped to the image. On 2D+t data "
        "(Z = 1) a crop with z > 1 becomes an in-plane crop of the same voxel budget, rounded "
        "to multiples of 16 (e.g. 8×64×64 → 1×176×176); a crop with z = 1 is used as given",
    )
    batch_size: int = Field(1, ge=1, description="Crops per optimisation step")
    incremental_steps: int = Field(
        20, ge=1, description="Optimisation steps of one incremental update"
    )
    final_lr_fraction: float = Field(
        1.0,
        gt=0.0,
        le=1.0,
        description="Cosine decay of the learning rate within one incremental update or one "
        "batch run down to this fraction of learning_rate (fraction; 1 = constant, as "
        "ELEPHANT); a lower end value makes the model less noisy after an update",
    )
    incremental_replay: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Share of the crops of an incremental update drawn from the other "
        "frames with reviewed nuclei (replay), so one frame of corrections cannot make the "
        "model forget the rest (fraction; 0 = ELEPHANT's update on the edited frame only)",
    )
    epochs: int = Field(10, ge=1, description="Epochs of batch training")
    crops_per_frame: int = Field(
        5, ge=1, description="Crops drawn per annotated frame and epoch in batch training"
    )
    prior_learning_rates: tuple[float, ...] = Field(
        (1e-2, 1e-3, 1e-4),
        min_length=1,
        description="One prior (self-supervised) epoch per learning rate",
    )
    prior_crops: int = Field(5, ge=1, description="Random crops per prior epoch")
    seed: int = Field(0, description="Seed of crops, augmentation and weight initialisation")
    num_threads: int | None = Field(
        None, ge=1, description="torch CPU threads during training (None = the cores free now, see "
        "celltrack.nn.threads)"
    )
    device: str = Field("cpu", description="torch device, e.g. 'cpu' or 'cuda'")


class PredictConfig(TilingConfig):
    """Tiled detection prediction settings."""

    median_correction: bool = Field(
        False, description="Shift each z slice to the global median before normalising"
    )


class SpotConfig(Config):
    """Turning centre probabilities into spots."""

    mode: Literal["components", "maxima"] = Field(
        "components",
        description="'components': ellipsoids from connected centre regions; 'maxima': points "
        "at local maxima of the centre probability (non-maximum suppression)",
    )
    threshold: float = Field(
        0.5, gt=0.0, lt=1.0, description="Centre probability threshold (probability)"
    )
    centre_ratio: float = Field(
        0.4,
        gt=0.0,
        lt=1.0,
        description="Centre components are enlarged by 1/centre_ratio (must equal the label "
        "ratio)",
    )
    r_min_um: float = Field(
        1.0,
        ge=0.0,
        description="Spots with a semi-axis below this are dropped (µm). Calibrated (0.3 × "
        "the 5th percentile of the annotated semi-axes) when calibrate is on and annotations "
        "are given",
    )
    r_max_um: float = Field(
        10.0,
        gt=0.0,
        description="Semi-axes are clamped to this (µm); calibrated (1.5 × the 95th percentile "
        "of the annotated semi-axes) when calibrate is on and annotations are given",
    )
    nms_radius_um: float = Field(
        2.0, gt=0.0, description="'maxima' mode: neighbourhood radius of a local maximum (µm)"
    )
    point_radius_um: float = Field(
        3.0, gt=0.0, description="'maxima' mode: radius of the sphere given to each point (µm)"
    )
    suppression_distance_um: float = Field(
        3.0,
        ge=0.0,
        description="Spots closer than this are duplicates: human annotations win, then the "
        "larger nucleus (µm); 0 = off",
    )
    calibrate: bool = Field(
        True,
        description="When annotations are given to detect(), derive r_min_um, r_max_um and "
        "the suppression distance (0.5 × the median radius) from the annotated nuclei, the "
        "threshold from processed annotated frames (≥ 5 nuclei; grid 0.2–0.8, kept unless "
        "clearly better), and warn when predictions per frame are over 3× or under 1/3 of "
        "the density the annotations imply (celltrack.detect.calibrate); False = the values "
        "above",
    )


class DetectionConfig(Config):
    """Root configuration of :mod:`celltrack.detect`."""

    kind: Literal["ellipsoid", "classical"] = Field(
        "ellipsoid",
        description="'ellipsoid': ELEPHANT's 3-class U-Net trained from the annotations; "
        "'classical': threshold + distance-transform watershed, no training (see classical); "
        "'indicator': Linajea's cell indicator from points, whose section has its own keys "
        "(celltrack.config.indicator)",
    )
    classical: ClassicalConfig = Field(
        default_factory=ClassicalConfig, description="Classical detector (kind: classical)"
    )
    normalize: NormalizeConfig = Field(
        default_factory=NormalizeConfig,
        description="Per-frame intensity normalisation of the network input",
    )
    labels: LabelConfig = Field(default_factory=LabelConfig, description="Label rendering")
    model: ModelConfig = Field(default_factory=ModelConfig, description="U-Net architecture")
    loss: LossConfig = Field(default_factory=LossConfig, description="Loss weights")
    augment: AugmentConfig = Field(
        default_factory=lambda: AugmentConfig(scale=0.1, rotation_deg=180.0, contrast=0.2),
        description="Training augmentation",
    )
    train: TrainConfig = Field(default_factory=TrainConfig, description="Optimisation")
    predict: PredictConfig = Field(default_factory=PredictConfig, description="Tiled prediction")
    spots: SpotConfig = Field(default_factory=SpotConfig, description="Spot extraction")

    @model_validator(mode="after")
    def _same_centre_ratio(self) -> DetectionConfig:
        if abs(self.labels.centre_ratio - self.spots.centre_ratio) > 1e-12:
            raise ValueError(
                f"labels.centre_ratio ({self.labels.centre_ratio}) and spots.centre_ratio "
                f"({self.spots.centre_ratio}) must be equal: detection enlarges centre regions "
                "by the ratio they were drawn with"
            )
        return self

    @classmethod
    def cpu(cls, **overrides: Config) -> DetectionConfig:
        """A preset for CPUs: the small U-Net, small crops in pairs, a higher learning rate.

        Batches of 2 crops keep torch on its oneDNN kernels, and ``(8, 64, 64)`` crops
        make one step ~0.2 s on one core, so an incremental update of 40 steps takes
        seconds; the learning rate decays to 10 % within each update. The centre ratio
        is 0.5 (ELEPHANT's server default): larger centre cores are learnt in fewer
        steps, which matters for small nuclei right after a division. Keyword arguments
        replace whole sub-configs (``labels`` and ``spots`` must keep equal ratios).
        """
        values: dict[str, Config] = {
            "labels": LabelConfig(centre_ratio=0.5),
            "spots": SpotConfig(centre_ratio=0.5),
            "model": ModelConfig(preset="cpu"),
            "train": TrainConfig(
                learning_rate=3e-3,
                crop_shape=(8, 64, 64),
                batch_size=2,
                incremental_steps=40,
                prior_crops=8,
                final_lr_fraction=0.1,
            ),
            "predict": PredictConfig(tile_shape=(32, 128, 128), overlap=(4, 16, 16)),
        }
        values.update(overrides)
        return cls(**values)
