"""Configuration shared by the deep-learning stages (detection and flow).

:class:`AugmentConfig` (random augmentation of training crops, :mod:`celltrack.nn.augment`)
and :class:`TilingConfig` (tiled prediction, :func:`celltrack.nn.predict_tiled`), and
:class:`NormalizeConfig` (per-frame intensity normalisation of network inputs,
:func:`celltrack.nn.normalize_frame`). Nothing here imports torch.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from celltrack.config.base import Config

__all__ = ["AugmentConfig", "BlockwisePredictConfig", "NormalizeConfig", "TilingConfig"]


class AugmentConfig(Config):
    """Random augmentation of training crops (shared by detection and flow)."""

    scale: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="Zoom jitter: the finest axis is zoomed by U(1-s, 1+s), coarser axes by "
        "proportionally less (fraction); 0 = off",
    )
    flip: bool = Field(True, description="Flip each spatial axis with probability 0.5")
    rotation_deg: float = Field(
        0.0, ge=0.0, le=180.0, description="Maximum in-plane (y-x) rotation angle (degrees)"
    )
    contrast: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Foreground contrast jitter: the foreground-background difference is "
        "multiplied by U(1-c, 1) (fraction); 0 = off",
    )
    intensity: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Global gain/offset jitter: I -> I*U(1-a, 1+a) + U(-a, a)/2 "
        "(fraction); 0 = off",
    )
    noise: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Additive Gaussian noise with a standard deviation drawn from U(0, n), "
        "in units of the normalised intensity range (fraction); 0 = off",
    )
    blur_um: float = Field(
        0.0,
        ge=0.0,
        description="Gaussian blur with a sigma drawn from U(0, b) per crop, anisotropy-aware "
        "(µm); 0 = off",
    )
    gradient: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Uneven illumination: the crop is multiplied by a linear ramp of random "
        "in-plane direction from 1 - g/2 to 1 + g/2 across it (fraction); 0 = off",
    )


class TilingConfig(Config):
    """Tiled prediction (:func:`celltrack.nn.predict_tiled`), shared by detection and flow."""

    tile_shape: tuple[int, int, int] = Field(
        (32, 192, 192),
        description="Tile (z, y, x) in voxels, clipped to the volume; memory is bounded by it. "
        "On 2D+t data (Z = 1) a tile with z > 1 becomes an in-plane tile of the same voxel "
        "budget, rounded to multiples of 16 (e.g. 32×128×128 → 1×720×720); a tile with z = 1 "
        "is used as given",
    )
    overlap: tuple[int, int, int] = Field(
        (4, 16, 16), description="Overlap (z, y, x) between tiles, blended by ramps (voxels)"
    )
    batch_size: int = Field(1, ge=1, description="Tiles per forward pass")
    tile_mode: Literal["auto", "fixed"] = Field(
        "auto",
        description="'auto': tile_shape is a voxel budget; a frame within it is one tile, a "
        "larger one gets the fewest equal tiles within it, sized to the network's pooling "
        "(few voxels processed twice); 'fixed': tiles of tile_shape as given (clipped)",
    )
    device: str = Field("cpu", description="torch device, e.g. 'cpu' or 'cuda'")
    num_threads: int | None = Field(
        None,
        ge=1,
        description="torch CPU threads during prediction (None = chosen from the cores that "
        "are free now, see celltrack.nn.threads)",
    )

    @field_validator("tile_shape")
    @classmethod
    def _check_tile(cls, v: tuple[int, int, int]) -> tuple[int, int, int]:
        if any(s < 1 for s in v):
            raise ValueError(f"tile_shape must be ≥ 1 voxel per axis, got {v}")
        return v

    @field_validator("overlap")
    @classmethod
    def _check_overlap(cls, v: tuple[int, int, int]) -> tuple[int, int, int]:
        if any(s < 0 for s in v):
            raise ValueError(f"overlap must be ≥ 0 voxels per axis, got {v}")
        return v


class NormalizeConfig(Config):
    """Per-frame intensity normalisation of network inputs (training and prediction alike)."""

    mode: Literal["percentile", "minmax"] = Field(
        "percentile",
        description="'percentile': map the low/high percentiles of each frame to 0/1 (robust "
        "to hot pixels and uneven background, values outside are kept); 'minmax': map the "
        "frame's minimum/maximum to 0/1",
    )
    low_percentile: float = Field(
        1.0, ge=0.0, lt=50.0, description="'percentile' mode: intensity mapped to 0 (percent)"
    )
    high_percentile: float = Field(
        99.8, gt=50.0, le=100.0, description="'percentile' mode: intensity mapped to 1 (percent)"
    )

    @model_validator(mode="after")
    def _ordered(self) -> NormalizeConfig:
        if self.low_percentile >= self.high_percentile:
            raise ValueError(
                f"low_percentile ({self.low_percentile}) must be below high_percentile "
                f"({self.high_percentile})"
            )
        return self


class BlockwisePredictConfig(Config):
    """Block-wise prediction over chunked movies (:func:`celltrack.scale.predict_blockwise`)."""

    block_shape: tuple[int, int, int] = Field(
        (32, 128, 128),
        description="Core (z, y, x) each block writes, in voxels; rounded up to the network's "
        "downsampling factor; peak memory per worker grows with (core + 2 halo) voxels",
    )
    halo: tuple[int, int, int] | None = Field(
        None,
        description="Context (z, y, x) read on each side of a core (voxels); None = the "
        "network's receptive radius (celltrack.scale.receptive_halo), which makes the "
        "block-wise output equal the whole-frame output",
    )
    dtype: Literal["float32", "float16"] = Field(
        "float32", description="dtype of the output Zarr array"
    )
    group_norm: Literal["frame", "block"] = Field(
        "frame",
        description="GroupNorm statistics: 'frame' = the whole frame's, gathered block-wise in "
        "one extra pass per GroupNorm layer (exactly the whole-frame result); 'block' = each "
        "block's own (one pass, like tiled prediction, not equal to the whole-frame result)",
    )
    n_workers: int | None = Field(
        None, ge=1, description="Worker processes of the 'processes' executor (None = CPUs)"
    )
    start_method: Literal["spawn", "forkserver", "fork"] = Field(
        "spawn",
        description="Multiprocessing start method of the 'processes' executor ('spawn' is safe "
        "with torch's thread pools)",
    )
    num_threads: int | None = Field(
        None,
        ge=1,
        description="torch CPU threads per worker (None = 1 in worker processes, chosen from "
        "the free cores in-process); workers × threads should not exceed the free cores",
    )
    device: str = Field("cpu", description="torch device, e.g. 'cpu' or 'cuda'")

    @field_validator("block_shape")
    @classmethod
    def _check_block(cls, v: tuple[int, int, int]) -> tuple[int, int, int]:
        if any(s < 1 for s in v):
            raise ValueError(f"block_shape must be ≥ 1 voxel per axis, got {v}")
        return v

    @field_validator("halo")
    @classmethod
    def _check_halo(cls, v: tuple[int, int, int] | None) -> tuple[int, int, int] | None:
        if v is not None and any(s < 0 for s in v):
            raise ValueError(f"halo must be ≥ 0 voxels per axis, got {v}")
        return v
