"""Configuration of the classical detector: blur, threshold, distance-transform watershed.

No training: :func:`celltrack.detect.classical.detect_classical` finds nuclei from the
intensities alone, a baseline a learned detector has to beat and a start for the
proofreading loop. Sizes are in µm; ``None`` values are calibrated from the annotated
nuclei when annotations are given. Nothing here imports torch.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from celltrack.config.base import Config

__all__ = ["ClassicalConfig"]


class ClassicalConfig(Config):
    """Threshold + distance-transform watershed detection (scikit-image)."""

    sigma_um: float | None = Field(
        None,
        ge=0.0,
        description="Gaussian blur before thresholding, anisotropy-aware (µm); None = a "
        "quarter of the annotated nuclei's median radius, else 1 µm",
    )
    threshold: Literal["otsu", "triangle", "li"] | float = Field(
        "otsu",
        description="Foreground threshold: a scikit-image method computed per frame, or a "
        "value of the normalised frame (fraction of the percentile range)",
    )
    min_distance_um: float | None = Field(
        None,
        gt=0.0,
        description="Minimum distance between two nucleus centres, the watershed seeds' "
        "separation (µm); None = 0.8 x the annotated median radius, else 3 µm",
    )
    min_radius_um: float | None = Field(
        None,
        ge=0.0,
        description="Regions whose equivalent-sphere radius is below this are dropped (µm); "
        "None = half the smallest annotated radius, else 1 µm",
    )
    max_radius_um: float | None = Field(
        None,
        gt=0.0,
        description="Regions whose equivalent-sphere radius is above this are dropped (µm); "
        "None = twice the largest annotated radius, else no limit",
    )
