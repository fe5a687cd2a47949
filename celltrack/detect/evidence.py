"""Negative evidence that is safe with sparse positives: the 'intensity' background rule.

A few annotated nuclei say what a nucleus looks like; nothing says what background is,
and a network trained from positives alone fires everywhere. The 'intensity' rule
(``LabelConfig.auto_background = "intensity"``) derives background labels from the
annotated nuclei's own statistics, on the frame normalised by percentiles (1 – 99.8) and
smoothed by a Gaussian of σ = 0.2 × the median annotated semi-axis (at least one voxel
in-plane):

1. ``low`` — the 10th intensity percentile of the voxels inside each annotated nucleus
   (tags ``tp``, ``fn``, ``tb``, ``fb``), of the dimmest one;
2. ``level`` — the frame's background level: the mode of the darker half of the frame's
   smoothed intensities (robust for sparse and for dense frames);
3. ``threshold = level + fraction × (low − level)``; voxels at or above it are
   *foreground* (possible nuclei, never background);
4. background = voxels below the threshold that are farther than ``margin_um`` from any
   foreground voxel (Euclidean distance transform in µm, per-axis voxel size), so the dim
   rims of nuclei nobody annotated stay unlabelled.

A frame without annotated nuclei (e.g. only rejected predictions) uses the contrast
``low − level`` pooled over the annotated frames (:func:`pool_statistics`) above its own
level. When the nuclei are not brighter than the background level, the rule gives nothing
(and says so in the log). The annotated ellipsoids themselves are never automatic
background: :func:`celltrack.detect.labels.render_labels` paints the rule's voxels only
where no annotation drew anything.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from celltrack.config.detection import LabelConfig
from celltrack.config.nn import NormalizeConfig
from celltrack.errors import ShapeError
from celltrack.geometry import check_voxel_size, ellipsoid_mask
from celltrack.graph import TrackGraph
from celltrack.graph.tags import NUCLEUS, PERIPHERY, Tag, tags_of
from celltrack.nn.normalize import normalize_frame

__all__ = [
    "DRAWN_NUCLEUS_TAGS",
    "IntensityEvidence",
    "NucleusStatistics",
    "background_level",
    "intensity_background",
    "nucleus_statistics",
    "pool_statistics",
    "smooth_frame",
]

logger = logging.getLogger(__name__)

#: Tags whose ellipsoid is drawn as (part of) a nucleus: their voxels are nucleus samples.
DRAWN_NUCLEUS_TAGS: tuple[str, ...] = (*NUCLEUS, *PERIPHERY)
#: Percentile of the annotated nuclei's smoothed intensities that stands for "dim nucleus".
NUCLEUS_PERCENTILE = 10.0
#: Gaussian σ of the smoothing relative to the median annotated semi-axis (fraction).
SMOOTH_FRACTION = 0.2
_NORMALIZE = NormalizeConfig()


@dataclass(frozen=True)
class NucleusStatistics:
    """Intensity statistics of annotated nuclei in normalised, smoothed frames.

    Attributes
    ----------
    level : float
        Background level of the frame(s) measured (normalised intensity).
    low : float
        :data:`NUCLEUS_PERCENTILE` percentile inside the dimmest annotated nucleus
        (normalised).
    sigma_um : float
        Gaussian σ of the smoothing (µm).
    n_nuclei : int
        Annotated nuclei measured.
    volume_um3 : float
        Mean volume of the annotated ellipsoids (µm³; in 2D the area in µm² times 1 µm).
    """

    level: float
    low: float
    sigma_um: float
    n_nuclei: int
    volume_um3: float

    @property
    def contrast(self) -> float:
        """``low − level``: how much brighter than background a dim nucleus is."""
        return self.low - self.level


@dataclass(frozen=True)
class IntensityEvidence:
    """The 'intensity' rule applied to one frame.

    Attributes
    ----------
    background : ndarray of bool, shape (Z, Y, X)
        Voxels the rule makes background.
    foreground : ndarray of bool, shape (Z, Y, X)
        Voxels at or above the threshold (possible nuclei).
    threshold : float
        Normalised intensity threshold used.
    statistics : NucleusStatistics
        Statistics the threshold came from.
    """

    background: np.ndarray
    foreground: np.ndarray
    threshold: float
    statistics: NucleusStatistics


def _normalized(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[None]
    if image.ndim != 3:
        raise ShapeError(f"a frame must be (Z, Y, X), got shape {image.shape}")
    return normalize_frame(image, _NORMALIZE)


def smooth_frame(image: np.ndarray, voxel_size: Sequence[float], sigma_um: float) -> np.ndarray:
    """Gaussian smoothing with σ in µm (per-axis voxel size; z not smoothed when Z = 1).

    Parameters
    ----------
    image : ndarray, shape (Z, Y, X)
    voxel_size : sequence of 3 float
        (z, y, x) µm.
    sigma_um : float
        Gaussian σ (µm).

    Returns
    -------
    ndarray, shape (Z, Y, X), float32
    """
    vs = check_voxel_size(voxel_size)
    image = np.asarray(image, np.float32)
    sigma = np.asarray(sigma_um, float) / vs
    if image.shape[0] == 1:
        sigma[0] = 0.0
    sigma[sigma < 0.3] = 0.0
    return ndimage.gaussian_filter(image, sigma, mode="nearest") if sigma.any() else image


def background_level(smoothed: np.ndarray) -> float:
    """Background level of a frame: the mode of the darker half of its intensities.

    The mode (of a 128-bin histogram between the minimum and the median) is robust both
    when the frame is mostly empty and when nuclei cover much of it.

    Parameters
    ----------
    smoothed : ndarray
        Normalised, smoothed intensities.

    Returns
    -------
    float
    """
    values = np.asarray(smoothed, np.float32).ravel()
    lo, median = float(values.min()), float(np.median(values))
    if median <= lo:
        return median
    dark = values[values <= median]
    counts, edges = np.histogram(dark, bins=128, range=(lo, median))
    counts = np.convolve(counts, np.ones(3) / 3, mode="same")  # one-bin noise
    k = int(np.argmax(counts))
    return float(0.5 * (edges[k] + edges[k + 1]))


def _nucleus_rows(spots: TrackGraph) -> np.ndarray:
    return np.isin(tags_of(spots, default=Tag.TP), DRAWN_NUCLEUS_TAGS)


def _radii(cov: np.ndarray, two_d: bool) -> np.ndarray:
    """Semi-axes (N, k) µm from covariances (k = 2 in-plane axes for 2D data, else 3)."""
    cov = np.asarray(cov, float).reshape(-1, 3, 3)
    block = cov[:, 1:, 1:] if two_d else cov
    return np.sqrt(np.clip(np.linalg.eigvalsh(block), 0.0, None))


def _sigma_um(radii: np.ndarray, vs: np.ndarray, two_d: bool) -> float:
    floor = float(np.min(vs[1:]) if two_d else np.min(vs))
    if radii.size == 0:
        return floor
    return max(SMOOTH_FRACTION * float(np.median(radii)), floor)


def nucleus_statistics(
    image: np.ndarray,
    spots: TrackGraph,
    voxel_size: Sequence[float],
    *,
    default_radius_um: float = 3.0,
) -> NucleusStatistics | None:
    """Intensity statistics of the annotated nuclei of one frame.

    Parameters
    ----------
    image : ndarray, shape (Z, Y, X)
        The frame (raw or normalised: it is percentile-normalised here).
    spots : TrackGraph
        This frame's annotations (µm); nuclei are the spots tagged tp, fn, tb or fb
        (without a ``tag`` column every spot); without a ``covariance`` column they are
        spheres of ``default_radius_um``.
    voxel_size : sequence of 3 float
        (z, y, x) µm.
    default_radius_um : float
        Radius of annotations without covariance (µm).

    Returns
    -------
    NucleusStatistics or None
        None when the frame has no annotated nucleus inside the image.
    """
    vs = check_voxel_size(voxel_size)
    found = _statistics(_normalized(image), spots, vs, default_radius_um)
    return None if found is None else found[0]


def _statistics(
    norm: np.ndarray, spots: TrackGraph, vs: np.ndarray, default_radius_um: float
) -> tuple[NucleusStatistics, np.ndarray] | None:
    """Statistics and the smoothed frame, or None without annotated nuclei."""
    from celltrack.detect.labels import spot_arrays  # labels imports this module

    two_d = norm.shape[0] == 1
    rows = _nucleus_rows(spots)
    if not rows.any():
        return None
    pos, cov, _ = spot_arrays(spots.subgraph(nodes=rows), default_radius_um)
    radii = _radii(cov, two_d)
    sigma = _sigma_um(radii, vs, two_d)
    smoothed = smooth_frame(norm, vs, sigma)
    lows = []
    for p, c in zip(pos, cov):
        sl, mask = ellipsoid_mask(p, c, vs, norm.shape, min_voxels=1)
        if mask.any():
            lows.append(float(np.percentile(smoothed[sl][mask], NUCLEUS_PERCENTILE)))
    if not lows:
        return None
    if two_d:
        volume = float(np.mean(np.pi * np.prod(radii, axis=1)))  # µm² (× 1 µm)
    else:
        volume = float(np.mean(4.0 / 3.0 * np.pi * np.prod(radii, axis=1)))
    stats = NucleusStatistics(
        level=background_level(smoothed),
        low=min(lows),  # the dimmest annotated nucleus
        sigma_um=sigma,
        n_nuclei=int(rows.sum()),
        volume_um3=volume,
    )
    return stats, smoothed


def pool_statistics(stats: Sequence[NucleusStatistics | None]) -> NucleusStatistics | None:
    """Statistics of several annotated frames in one (medians, weighted by nothing).

    Parameters
    ----------
    stats : sequence of NucleusStatistics or None
        Per-frame statistics (None entries are skipped).

    Returns
    -------
    NucleusStatistics or None
        Median level, low and σ, summed nucleus count, nucleus-weighted mean volume;
        None when no entry has statistics.
    """
    items = [s for s in stats if s is not None]
    if not items:
        return None
    n = np.asarray([s.n_nuclei for s in items], float)
    return NucleusStatistics(
        level=float(np.median([s.level for s in items])),
        low=float(np.median([s.low for s in items])),
        sigma_um=float(np.median([s.sigma_um for s in items])),
        n_nuclei=int(n.sum()),
        volume_um3=float(np.sum(n * [s.volume_um3 for s in items]) / n.sum()),
    )


def intensity_background(
    image: np.ndarray,
    spots: TrackGraph,
    voxel_size: Sequence[float],
    cfg: LabelConfig | None = None,
    *,
    statistics: NucleusStatistics | None = None,
) -> IntensityEvidence | None:
    """Apply the 'intensity' background rule (module docstring) to one frame.

    Parameters
    ----------
    image : ndarray, shape (Z, Y, X)
        The frame (raw or normalised).
    spots : TrackGraph
        This frame's annotations (µm). Its annotated nuclei give the statistics; without
        any, ``statistics`` is used.
    voxel_size : sequence of 3 float
        (z, y, x) µm.
    cfg : LabelConfig, optional
        ``auto_background_fraction``, ``auto_background_margin_um`` and
        ``point_radius_um``.
    statistics : NucleusStatistics, optional
        Statistics pooled over other annotated frames, used when this frame has no
        annotated nucleus (its contrast is applied above this frame's own level).

    Returns
    -------
    IntensityEvidence or None
        None when there are no statistics, or the nuclei are not brighter than the
        background (logged).
    """
    cfg = cfg or LabelConfig()
    vs = check_voxel_size(voxel_size)
    norm = _normalized(image)
    found = _statistics(norm, spots, vs, cfg.point_radius_um)
    if found is None and statistics is None:
        logger.info(
            "automatic background: no annotated nucleus in this frame and no statistics of "
            "other frames; training only what was annotated here"
        )
        return None
    if found is not None:
        stats, smoothed = found
        level = stats.level
    else:
        stats = statistics  # type: ignore[assignment]
        smoothed = smooth_frame(norm, vs, stats.sigma_um)
        level = background_level(smoothed)
    contrast = stats.contrast
    if not contrast > 0:
        logger.warning(
            "automatic background: the annotated nuclei (10th percentile %.3g) are not "
            "brighter than the background level (%.3g); no automatic background. Mark "
            "background regions by hand (tag tn) or set labels.auto_background='off'",
            stats.low,
            stats.level,
        )
        return None
    threshold = level + cfg.auto_background_fraction * contrast
    foreground = smoothed >= threshold
    if foreground.any():
        dist = ndimage.distance_transform_edt(~foreground, sampling=vs)
        background = dist > cfg.auto_background_margin_um
    else:
        background = np.ones(norm.shape, bool)
    return IntensityEvidence(
        background=background,
        foreground=foreground,
        threshold=float(threshold),
        statistics=NucleusStatistics(
            level=level,
            low=level + contrast,
            sigma_um=stats.sigma_um,
            n_nuclei=stats.n_nuclei,
            volume_um3=stats.volume_um3,
        ),
    )
