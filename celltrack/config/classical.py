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
    """Threshold + distance-transform watershed detection (scikit-image).

    Radii are those of the sphere of equal volume (in 2D+t the disc of equal area) of a
    region's core: its voxels above half its height over the threshold
    (:mod:`celltrack.detect.classical`).
    """

    sigma_um: float | None = Field(
        None,
        ge=0.0,
        description="Gaussian blur before thresholding, anisotropy-aware (µm); None = 0.15 x "
        "the annotated nuclei's median radius, else 1 µm",
    )
    threshold: Literal["otsu", "triangle", "li"] | float = Field(
        "triangle",
        description="Foreground threshold of the blurred, normalised frame: a scikit-image "
        "method computed per frame ('triangle' keeps dim nuclei on a dark background; "
        "'otsu' and 'li' lie higher), or a value of the normalised frame (fraction of the "
        "percentile range)",
    )
    min_distance_um: float | None = Field(
        None,
        gt=0.0,
        description="Minimum distance between two nucleus centres, the watershed seeds' "
        "separation (µm); None = 0.55 x the annotated median radius, else 3 µm",
    )
    min_depth_um: float | None = Field(
        None,
        ge=0.0,
        description="A maximum of the distance transform seeds a nucleus of its own only if "
        "it rises at least this far above the saddle towards a deeper one (h-maxima "
        "dynamic, µm): bumps of one irregular nucleus stay one seed, touching nuclei with a "
        "neck get two; 0 = every maximum; None = 0.2 x the annotated median radius, else 0.5 µm",
    )
    min_radius_um: float | None = Field(
        None,
        ge=0.0,
        description="Regions whose equivalent-sphere radius is below this are dropped (µm); "
        "None = half the smallest annotated radius, else 1 µm (2D+t: equivalent-disc radius)",
    )
    max_radius_um: float | None = Field(
        None,
        gt=0.0,
        description="Regions whose equivalent-sphere radius is above this are dropped (µm); "
        "None = twice the largest annotated radius, else no limit",
    )
