"""Configuration of the backward-flow stage: labels, network, loss, training, prediction.

Every model is a frozen, extra-forbidding :class:`celltrack.config.Config`. Building one
directly with a bad value (e.g. a maximum displacement ≤ 0) raises
:class:`celltrack.errors.ConfigError` rather than pydantic's own error, so callers catch
one exception type whichever way a config was made. Nothing here imports torch;
:mod:`celltrack.flow` re-exports these classes.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, field_validator

from celltrack.config.base import Config
from celltrack.config.nn import AugmentConfig, NormalizeConfig, TilingConfig

__all__ = [
    "FlowConfig",
    "FlowLabelConfig",
    "FlowLossConfig",
    "FlowModelConfig",
    "FlowPredictConfig",
    "FlowTrainConfig",
]

Triple = tuple[float, float, float]
IntTriple = tuple[int, int, int]


def _positive_triple(value: tuple[float, ...], what: str) -> tuple[float, ...]:
    if any(not math.isfinite(v) or v <= 0 for v in value):
        raise ValueError(f"{what} must be finite and > 0 on every axis (z, y, x), got {value}")
    return value


class FlowLabelConfig(Config):
    """How annotated links become flow labels (see :func:`celltrack.flow.render_flow_labels`)."""

    max_displacement_um: Triple = Field(
        (20.0, 20.0, 20.0),
        description=(
            "Largest backward displacement |parent − child| per axis (z, y, x) the model can "
            "represent (µm); labels are divided by it and the network's tanh output is "
            "multiplied by it. Keep it fixed when fine-tuning a model."
        ),
    )
    default_radius_um: float = Field(
        3.0,
        gt=0,
        description="Radius of the sphere painted for a child node without covariance (µm).",
    )
    min_voxels: int = Field(
        9,
        ge=0,
        description=(
            "Minimum number of voxels painted per child ellipsoid (the ellipsoid grows until "
            "it covers this many; voxels)."
        ),
    )
    approved_only: bool = Field(
        True,
        description=(
            "When the links carry an edge column 'approved', use only approved links "
            "(otherwise all edges are used)."
        ),
    )

    @field_validator("max_displacement_um")
    @classmethod
    def _check_max(cls, v: Triple) -> Triple:
        return _positive_triple(v, "max_displacement_um")  # type: ignore[return-value]


class FlowModelConfig(Config):
    """Flow U-Net architecture (residual encoder, plain decoder, tanh output)."""

    widths: tuple[int, ...] = Field(
        (16, 32, 64, 128, 256),
        description="Channels per U-Net level, top → bottleneck (count; ≥ 2 levels).",
    )

    @field_validator("widths")
    @classmethod
    def _check_widths(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if len(v) < 2 or any(w <= 0 for w in v):
            raise ValueError(f"widths needs ≥ 2 positive channel counts, got {v}")
        return v

    @classmethod
    def cpu(cls) -> FlowModelConfig:
        """Small preset for CPU training and tests: widths (8, 16, 32, 64)."""
        return cls(widths=(8, 16, 32, 64))


class FlowLossConfig(Config):
    """Weights of the flow loss (see :class:`celltrack.flow.losses.FlowLoss`).

    The defaults (1, 0.2, 0.1) did best on the synthetic large-motion benchmark
    (``benchmarks/bench_flow.py``): a photometric weight of 0.2 lowered the parent error
    by ≈ 10 % over 0 and over 0.5; ELEPHANT's effective 0.98 / 0.0098 / 0.0098 leaves the
    unlabelled voxels almost unsupervised.
    """

    dim_weights: Triple = Field(
        (1.0, 1.0, 1.0),
        description=(
            "Relative weight of the z, y, x components in the masked L1 term (unitless; "
            "normalised to sum 1 over the axes the model predicts)."
        ),
    )
    instance_weight: float = Field(
        1.0, ge=0, description="Weight of the masked L1 term against the labels (unitless)."
    )
    ssim_weight: float = Field(
        0.2,
        ge=0,
        description=(
            "Weight of the photometric term 1 − SSIM(frame t, frame t−1 warped onto frame t "
            "by the predicted flow) (unitless)."
        ),
    )
    smooth_weight: float = Field(
        0.1,
        ge=0,
        description="Weight of the smoothness term, mean |∇flow| in normalised units (unitless).",
    )
    ssim_window: IntTriple = Field(
        (3, 7, 7),
        description=(
            "SSIM Gaussian window size (z, y, x) in voxels (odd; the z size is 1 for 2D+t data)."
        ),
    )
    ssim_sigma: float = Field(
        1.5, gt=0, description="Standard deviation of the SSIM Gaussian window (voxels)."
    )

    @field_validator("dim_weights")
    @classmethod
    def _check_dims(cls, v: Triple) -> Triple:
        if any(not math.isfinite(w) or w < 0 for w in v) or sum(v) <= 0:
            raise ValueError(f"dim_weights must be ≥ 0 with a positive sum, got {v}")
        return v

    @field_validator("ssim_window")
    @classmethod
    def _check_window(cls, v: IntTriple) -> IntTriple:
        if any(w < 1 or w % 2 == 0 for w in v):
            raise ValueError(f"ssim_window sizes must be odd and ≥ 1, got {v}")
        return v


class FlowTrainConfig(Config):
    """Batch training from annotated links (crops around annotated children)."""

    epochs: int = Field(10, ge=1, description="Number of epochs (count).")
    crops_per_frame: int = Field(
        5, ge=1, description="Crops drawn per annotated frame per epoch (count)."
    )
    batch_size: int = Field(2, ge=1, description="Crops per optimisation step (count).")
    crop_shape: IntTriple = Field(
        (16, 128, 128),
        description="Training crop size (z, y, x) in voxels, clipped to the image. On 2D+t "
        "data (Z = 1) a crop with z > 1 becomes an in-plane crop of the same voxel budget "
        "(e.g. 8×64×64 → 1×176×176); a crop with z = 1 is used as given.",
    )
    learning_rate: float = Field(1e-3, gt=0, description="Adam learning rate (1/step).")
    final_lr_fraction: float = Field(
        0.05,
        gt=0,
        le=1,
        description=(
            "Cosine decay of the learning rate over the epochs down to this fraction of "
            "learning_rate in the last epoch (unitless; 1 = constant)."
        ),
    )
    augment: AugmentConfig = Field(
        default_factory=lambda: AugmentConfig(flip=True),
        description=(
            "Random zoom / flip / yx rotation / contrast of training crops, applied "
            "consistently to both frames, the mask and the flow vectors (a flip negates "
            "its component, a rotation rotates the vectors, a zoom scales them)."
        ),
    )
    seed: int = Field(0, description="Seed of crops, augmentations and weight init.")
    num_threads: int | None = Field(
        None,
        ge=1,
        description="torch CPU threads during training (count; None = the cores free now).",
    )
    device: str = Field("cpu", description="torch device for training (e.g. 'cuda:0').")


class FlowPredictConfig(TilingConfig):
    """Tiled flow prediction (larger default tiles than detection's)."""

    tile_shape: IntTriple = Field(
        (32, 256, 256),
        description="Tile size (z, y, x) in voxels, clipped to the volume. On 2D+t data "
        "(Z = 1) a tile with z > 1 becomes an in-plane tile of the same voxel budget; a tile "
        "with z = 1 is used as given.",
    )
    overlap: IntTriple = Field(
        (4, 32, 32), description="Overlap (z, y, x) between neighbouring tiles (voxels)."
    )


class FlowConfig(Config):
    """Root configuration of the flow stage (ELEPHANT's backward flow; ``motion.kind: flow``)."""

    kind: Literal["flow"] = Field(
        "flow",
        description="'flow': ELEPHANT's backward flow from frame pairs (this section); "
        "'movement_vectors': Linajea's movement vectors from a window of frames "
        "(celltrack.config.movement)",
    )
    label: FlowLabelConfig = Field(
        default_factory=FlowLabelConfig, description="Flow label rendering."
    )
    model: FlowModelConfig = Field(
        default_factory=FlowModelConfig, description="Flow U-Net architecture."
    )
    loss: FlowLossConfig = Field(default_factory=FlowLossConfig, description="Flow loss weights.")
    train: FlowTrainConfig = Field(default_factory=FlowTrainConfig, description="Training.")
    predict: FlowPredictConfig = Field(
        default_factory=FlowPredictConfig, description="Tiled prediction."
    )
    normalize: NormalizeConfig = Field(
        default_factory=NormalizeConfig,
        description="Per-frame intensity normalisation of the two input frames.",
    )

    @classmethod
    def cpu(cls, **overrides: Any) -> FlowConfig:
        """CPU preset: small network, small crops and tiles.

        Parameters
        ----------
        **overrides
            Sub-configs (``label=...``, ``loss=...``) replacing the preset's.
        """
        base: dict[str, Any] = {
            "model": FlowModelConfig.cpu(),
            "train": FlowTrainConfig(crop_shape=(8, 64, 64), batch_size=4),
            "predict": FlowPredictConfig(tile_shape=(16, 128, 128), overlap=(2, 16, 16)),
        }
        base.update(overrides)
        return cls(**base)
