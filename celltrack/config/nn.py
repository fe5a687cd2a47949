"""Configuration shared by the deep-learning stages (detection and flow).

:class:`AugmentConfig` (random augmentation of training crops, :mod:`celltrack.nn.augment`)
and :class:`TilingConfig` (tiled prediction, :func:`celltrack.nn.predict_tiled`). Nothing
here imports torch.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from celltrack.config.base import Config

__all__ = ["AugmentConfig", "TilingConfig"]


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


class TilingConfig(Config):
    """Tiled prediction (:func:`celltrack.nn.predict_tiled`), shared by detection and flow."""

    tile_shape: tuple[int, int, int] = Field(
        (32, 192, 192), description="Tile (z, y, x) in voxels; memory is bounded by it"
    )
    overlap: tuple[int, int, int] = Field(
        (4, 16, 16), description="Overlap (z, y, x) between tiles, blended by ramps (voxels)"
    )
    batch_size: int = Field(1, ge=1, description="Tiles per forward pass")
    device: str = Field("cpu", description="torch device, e.g. 'cpu' or 'cuda'")

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
