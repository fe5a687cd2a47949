"""Configuration of Linajea's movement vectors (and of the joint indicator + movement model).

A movement-vector model (:mod:`celltrack.flow.movement_training`) reads a window of
frames around t and regresses, at every voxel near an annotated child nucleus of frame t,
the offset from the voxel to the centre of its parent in frame t−1 (µm). The parent
position of a spot is then its position plus the vector read at its centre
(:mod:`celltrack.flow.movement_predict`), written as the node columns
``parent_z, parent_y, parent_x`` that the candidate graph and the linkers use.

Every model here is a frozen, extra-forbidding :class:`celltrack.config.Config`; a bad
value raises :class:`celltrack.errors.ConfigError`. Nothing here imports torch.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, field_validator

from celltrack.config.base import Config
from celltrack.config.detection import ModelConfig
from celltrack.config.flow import FlowPredictConfig
from celltrack.config.nn import AugmentConfig, NormalizeConfig

__all__ = [
    "MAX_WINDOW_FRAMES",
    "MovementConfig",
    "MovementLossConfig",
    "MovementPredictConfig",
    "MovementTargetConfig",
    "MovementTrainConfig",
]

Triple = tuple[float, float, float]
IntTriple = tuple[int, int, int]

#: Most frames before (or after) t a window may hold: Linajea uses 3 (7 frames in all).
MAX_WINDOW_FRAMES = 8


class MovementTargetConfig(Config):
    """How annotated links become movement-vector targets.

    See :func:`celltrack.flow.movement_targets.movement_training_target`.
    """

    radius_um: float = Field(
        4.0,
        gt=0,
        description=(
            "Radius of the ball around each annotated child (frame t) inside which the "
            "vector to its parent is trained (µm; Linajea's object_radius). About the "
            "nucleus radius: larger balls give more training voxels but reach into "
            "neighbours (where balls overlap the nearest child wins)."
        ),
    )
    max_displacement_um: Triple = Field(
        (20.0, 20.0, 20.0),
        description=(
            "Largest movement vector |parent centre − voxel| per axis (z, y, x) the model "
            "can output (µm): the network's tanh output is multiplied by it and the loss "
            "divides by it, so the axes are balanced. Must cover the motion per frame plus "
            "radius_um; keep it fixed when fine-tuning a model."
        ),
    )
    approved_only: bool = Field(
        True,
        description=(
            "When the links carry an edge column 'approved', train only from approved "
            "links (otherwise from every edge)."
        ),
    )

    @field_validator("max_displacement_um")
    @classmethod
    def _check_max(cls, v: Triple) -> Triple:
        if any(not math.isfinite(x) or x <= 0 for x in v):
            raise ValueError(
                f"max_displacement_um must be finite and > 0 on every axis (z, y, x) µm, got {v}"
            )
        return v


class MovementLossConfig(Config):
    """Weights of the movement loss and the joint model's two-phase blend.

    The movement term is a masked mean squared error of the vectors divided by
    ``max_displacement_um`` (unitless). The joint model minimises
    ``indicator_weight · L_CI + α(step) · L_MV,maxima + (1 − α(step)) · L_MV,mask`` with
    ``α(step) = 1 / (1 + exp(blend_rate · (blend_offset_steps − step)))``: first the
    vectors are fitted over the whole cell mask, later only where the indicator has its
    maxima (where the vectors are read). A movement-only model uses ``L_MV,mask``.
    """

    dim_weights: Triple = Field(
        (1.0, 1.0, 1.0),
        description=(
            "Relative weight of the z, y, x components in the squared error (unitless; "
            "normalised to sum 1 over the axes the model predicts)."
        ),
    )
    movement_weight: float = Field(
        1.0, gt=0, description="Weight of the movement-vector terms (unitless)."
    )
    indicator_weight: float = Field(
        1.0,
        ge=0,
        description="Joint model: weight w_I of the cell-indicator loss L_CI (unitless).",
    )
    blend_rate: float = Field(
        0.02,
        gt=0,
        description=(
            "Joint model: steepness f of the blend α(step) (1/step). Linajea: 0.01 over "
            "400,000 steps; ours is scaled to trainings of a few hundred steps."
        ),
    )
    blend_offset_steps: float = Field(
        300.0,
        ge=0,
        description=(
            "Joint model: step o at which α = 0.5, i.e. half of the movement loss is taken "
            "at the indicator maxima (steps). Linajea: 20,000 of 400,000."
        ),
    )

    @field_validator("dim_weights")
    @classmethod
    def _check_dims(cls, v: Triple) -> Triple:
        if any(not math.isfinite(w) or w < 0 for w in v) or sum(v) <= 0:
            raise ValueError(f"dim_weights must be ≥ 0 with a positive sum, got {v}")
        return v


class MovementTrainConfig(Config):
    """Batch training from annotated links (crops around annotated children)."""

    epochs: int = Field(40, ge=1, description="Number of epochs (count).")
    crops_per_frame: int = Field(
        8, ge=1, description="Crops drawn per annotated frame per epoch (count)."
    )
    batch_size: int = Field(4, ge=1, description="Crops per optimisation step (count).")
    crop_shape: IntTriple = Field(
        (16, 96, 96),
        description=(
            "Training crop size (z, y, x) in voxels, clipped to the image. On 2D+t data "
            "(Z = 1) a crop with z > 1 becomes an in-plane crop of the same voxel budget; "
            "a crop with z = 1 is used as given."
        ),
    )
    learning_rate: float = Field(2e-3, gt=0, description="Adam learning rate (1/step).")
    final_lr_fraction: float = Field(
        0.05,
        gt=0,
        le=1,
        description=(
            "Cosine decay of the learning rate over the epochs down to this fraction of "
            "learning_rate in the last epoch (unitless; 1 = constant)."
        ),
    )
    seed: int = Field(0, description="Seed of crops, augmentations and weight init.")
    num_threads: int | None = Field(
        None,
        ge=1,
        description="torch CPU threads during training (count; None = the cores free now).",
    )
    device: str = Field("cpu", description="torch device for training (e.g. 'cuda:0').")

    @field_validator("crop_shape")
    @classmethod
    def _check_crop(cls, v: IntTriple) -> IntTriple:
        if any(s < 1 for s in v):
            raise ValueError(f"crop_shape must be ≥ 1 voxel per axis, got {v}")
        return v


class MovementPredictConfig(FlowPredictConfig):
    """Tiled movement prediction and how a spot reads its vector."""

    edge_length: int = Field(
        1,
        ge=1,
        description=(
            "Side of the cube of voxels around a spot's centre voxel whose vectors are "
            "averaged, each corrected by its offset to the centre (voxels, odd; 1 = the "
            "centre voxel only; Linajea's edge_length). On 2D+t data the cube is a square."
        ),
    )

    @field_validator("edge_length")
    @classmethod
    def _check_edge(cls, v: int) -> int:
        if v % 2 == 0:
            raise ValueError(f"edge_length must be odd (voxels), got {v}")
        return v


class MovementConfig(Config):
    """Root configuration of the movement-vector stage (Linajea)."""

    kind: Literal["movement_vectors"] = Field(
        "movement_vectors",
        description="Motion model: 'movement_vectors' = Linajea's per-voxel vectors to the parent.",
    )
    window: tuple[int, int] = Field(
        (2, 1),
        description=(
            "Frames before and after t in the network input (frames): (2, 1) reads "
            "t−2 … t+1. At least 1 before (the parent frame t−1); frames outside the "
            f"movie repeat its first/last frame. At most {MAX_WINDOW_FRAMES} on each side."
        ),
    )
    normalize: NormalizeConfig = Field(
        default_factory=NormalizeConfig,
        description="Per-frame intensity normalisation of every frame of the window.",
    )
    target: MovementTargetConfig = Field(
        default_factory=MovementTargetConfig, description="Movement-vector targets."
    )
    model: ModelConfig = Field(
        default_factory=ModelConfig,
        description="U-Net widths (preset 'default' 16-32-64-128-256 or 'cpu' 8-16-32-64).",
    )
    loss: MovementLossConfig = Field(
        default_factory=MovementLossConfig, description="Loss weights and the joint blend."
    )
    augment: AugmentConfig = Field(
        default_factory=lambda: AugmentConfig(flip=True),
        description=(
            "Random zoom / flip / yx rotation / contrast of training crops, applied "
            "consistently to every frame of the window, the mask and the vectors (a flip "
            "negates its component, a rotation rotates the vectors, a zoom scales them)."
        ),
    )
    train: MovementTrainConfig = Field(
        default_factory=MovementTrainConfig, description="Optimisation."
    )
    predict: MovementPredictConfig = Field(
        default_factory=MovementPredictConfig, description="Tiled prediction."
    )
    joint: bool = Field(
        False,
        description=(
            "One U-Net with indicator and movement heads trained together (Linajea's joint "
            "model); needs detection.kind: indicator."
        ),
    )

    @field_validator("window")
    @classmethod
    def _check_window(cls, v: tuple[int, int]) -> tuple[int, int]:
        before, after = v
        if before < 1 or after < 0:
            raise ValueError(
                f"window is (frames before t, frames after t) with ≥ 1 before (the parent "
                f"frame t−1) and ≥ 0 after, got {v}"
            )
        if max(before, after) > MAX_WINDOW_FRAMES:
            raise ValueError(
                f"window {v} is too long: at most {MAX_WINDOW_FRAMES} frames on each side "
                "(Linajea uses (3, 3)); shorten it"
            )
        return v

    @classmethod
    def cpu(cls, **overrides: Any) -> MovementConfig:
        """CPU preset: the small U-Net, flat crops, rotation/zoom augmentation, window (1, 0).

        100 epochs of 32 crops of 4 × 48 × 48 per annotated frame, 4 crops per step,
        learning rate 1e-3 decaying to 5 %. ``sample_annotations`` (and a person
        proofreading one frame) puts all ~20 links in one frame, so this is 800 steps: about
        4 minutes of training on one core for a demo-sized movie (24 × 96 × 96 voxels; the
        whole Linajea run of ``benchmarks/bench_linajea.py`` took 5.5–6 minutes, the joint
        model's 8.5, at 2 threads on a shared 2-core machine). Issue #14 (synthetic 3D+t
        large-motion embryo, seed 0): the earlier 8 crops per frame gave one link frame only
        200 steps, after which the model still answered "no motion" (parent error 0.98 of
        "no motion", training loss 0.064 → 0.052); at 200 steps the outcome also swung with
        the learning rate and the weight seed (5e-4: 0.59 or 1.00). With 800 steps at 1e-3
        the error is 0.57 / 0.77 of "no motion" (weight seeds 0 / 1; flips without rotation:
        0.53 / 0.85; 2e-3 or 2.5e-4 did worse at 200 steps). Benchmark seeds 1 / 2: 0.45 /
        0.80 of "no motion" (was 0.87 / 0.91), TRA 0.98 / 0.91; joint model 0.82 / 0.55
        (was 0.73 / 1.01), TRA 0.94 / 0.97. The window is (1, 0) (frames
        t−1 and t): on the synthetic large-motion embryo it beat (2, 1) in every trial
        (parent error 0.48 vs 0.62 of "no motion" in 2D+t), the extra frames mostly giving a
        small network more to overfit; averaging the parent votes of the 3 × 3 × 3 voxels
        around each spot (``edge_length`` 3) lowered the 3D error from 0.71 to 0.66 in an
        earlier trial.

        Parameters
        ----------
        **overrides
            Fields (``window=...``) or whole sub-configs (``train=...``) replacing the
            preset's.
        """
        values: dict[str, Any] = {
            "window": (1, 0),
            "model": ModelConfig(preset="cpu"),
            "augment": AugmentConfig(flip=True, rotation_deg=180.0, scale=0.1),
            "train": MovementTrainConfig(
                epochs=100,
                crops_per_frame=32,
                crop_shape=(4, 48, 48),
                batch_size=4,
                learning_rate=1e-3,
            ),
            "predict": MovementPredictConfig(
                tile_shape=(16, 128, 128), overlap=(2, 16, 16), edge_length=3
            ),
        }
        values.update(overrides)
        return cls(**values)
