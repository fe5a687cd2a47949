"""Classical nucleus detection: blur, threshold, distance-transform watershed. No training.

Per frame (:func:`detect_classical`):

1. normalise the frame (:func:`celltrack.nn.normalize.normalize_frame`, ``cfg.normalize``);
2. Gaussian blur with ``sigma_um`` µm, i.e. ``sigma_um / voxel_size`` voxels per axis (z is
   not blurred in 2D+t data);
3. threshold the blurred frame (Otsu, triangle, Li, or a fixed value of the normalised
   frame), fill holes (in 2D, in the plane), drop objects smaller than a sphere (a disc
   in 2D) of ``min_radius_um``;
4. Euclidean distance transform of the foreground in µm (``sampling = voxel_size``); its
   local maxima at least ``min_distance_um`` apart (an ellipsoidal footprint in µm, so
   anisotropic voxels count right) seed a watershed of the negated distance inside the
   foreground, which splits touching nuclei along their neck (a foreground component
   without any seed keeps one at its deepest point);
5. one spot per watershed region, measured on the region's core: its voxels at or above
   half the height between the threshold and the region's mean blurred intensity (the
   blur and a low threshold widen a region; the core of a blurred uniform nucleus is the
   nucleus): the centroid (µm) and a covariance (µm²) from the core's second moments,
   scaled so a uniform ellipsoid gets its own semi-axes (see below); regions whose core's
   equivalent-sphere radius (equivalent-disc radius in 2D) lies outside
   ``[min_radius_um, max_radius_um]`` are dropped.

Covariance convention (:mod:`celltrack.geometry`): Σ = R·diag(r²)·Rᵀ with semi-axes r. The
second central moments of a solid ellipsoid are ``r²/5`` per axis and those of a solid
ellipse (a 2-D region) ``r²/4``; each voxel adds its own extent ``s²/12`` per axis (a
uniform box), as in :mod:`celltrack.detect.spots`. So Σ = 5·M in 3D and Σ = 4·M in the
y–x plane in 2D, where z (not observed) gets the root-mean-square of the two in-plane
semi-axes, as the U-Net's spots do.

Score: the contrast of the region over the threshold, ``clip((m − θ) / (1 − θ), 0, 1)``
with ``m`` the region's mean blurred normalised intensity and ``θ`` the threshold in the
same units (1 is the frame's high percentile): 0 for a region barely above the
threshold, 1 for one as bright as the brightest nuclei.

Unset (``None``) sizes of :class:`~celltrack.config.classical.ClassicalConfig` are
calibrated from annotated nuclei (:func:`calibrate_classical`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from celltrack.config.classical import ClassicalConfig
from celltrack.config.detection import DetectionConfig
from celltrack.config.nn import NormalizeConfig
from celltrack.detect.api import (
    _merge_annotations,
    checked_frames,
    collect_spots,
    open_movie,
    stamp_spots,
)
from celltrack.detect.calibrate import annotated_radii
from celltrack.detect.spots import region_moments
from celltrack.errors import InvalidInputError
from celltrack.geometry import bad_covariances
from celltrack.graph import TrackGraph
from celltrack.graph.tags import Tag
from celltrack.io import ImageSeries
from celltrack.nn.normalize import normalize_frame
from celltrack.progress import progress_bar

__all__ = ["calibrate_classical", "detect_classical"]

logger = logging.getLogger(__name__)

#: Values used for unset sizes when there are no annotated nuclei with a covariance (µm).
DEFAULT_SIGMA_UM = 1.0
DEFAULT_MIN_DISTANCE_UM = 3.0
DEFAULT_MIN_DEPTH_UM = 0.5
DEFAULT_MIN_RADIUS_UM = 1.0

#: Factors of the calibration rules (see :class:`ClassicalConfig`'s field descriptions).
SIGMA_PER_RADIUS = 0.15
MIN_DISTANCE_PER_RADIUS = 0.55
MIN_DEPTH_PER_RADIUS = 0.2
MIN_RADIUS_PER_SMALLEST = 0.5
MAX_RADIUS_PER_LARGEST = 2.0
#: Size level of a region: threshold + this fraction of (region mean − threshold); on CTC
#: HeLa / CHO it gives the reference masks' radii within 3 % (median).
SIZE_LEVEL = 0.5


def equivalent_radii(annotations: TrackGraph | None, *, two_d: bool = False) -> np.ndarray:
    """Equivalent radii (µm) of the annotated nuclei that have a covariance.

    The geometric mean of each nucleus' semi-axes
    (:func:`celltrack.detect.calibrate.annotated_radii`): the radius of the sphere of equal
    volume, in 2D+t (``two_d``) of the disc of equal area from the y–x semi-axes.

    Returns
    -------
    ndarray, shape (K,)
        One radius per usable nucleus; empty without covariances.

    Raises
    ------
    InvalidInputError
        If ``annotations`` is not a TrackGraph.
    """
    if annotations is None:
        return np.zeros(0)
    if not isinstance(annotations, TrackGraph):
        raise InvalidInputError(
            f"annotations must be a TrackGraph, got {type(annotations).__name__}"
        )
    axes = annotated_radii(annotations, two_d=two_d)
    return np.exp(np.log(axes).mean(axis=1)) if len(axes) else np.zeros(0)


def calibrate_classical(
    cfg: ClassicalConfig, annotations: TrackGraph | None, *, two_d: bool = False
) -> ClassicalConfig:
    """Resolve the unset (``None``) sizes of a classical config from annotated nuclei.

    Rules, from the radii ``r`` of the annotated nuclei (tags tp / fn with a covariance;
    see :func:`equivalent_radii`): ``sigma_um = 0.15 · median(r)``, ``min_distance_um =
    0.55 · median(r)``, ``min_depth_um = 0.2 · median(r)``, ``min_radius_um = 0.5 ·
    min(r)``, ``max_radius_um = 2 · max(r)``. Without such nuclei (no annotations, or
    points without covariance) the defaults are 1 µm, 3 µm, 0.5 µm, 1 µm and no upper
    limit. Values that are set are kept. (Factors tuned on CTC HeLa 2D+t and CHO 3D+t.)

    Parameters
    ----------
    cfg : ClassicalConfig
        The config to complete.
    annotations : TrackGraph or None
        Annotated spots (positions µm, ``covariance`` (N, 3, 3) µm²).
    two_d : bool
        2D+t data (radii from the y–x plane).

    Returns
    -------
    ClassicalConfig
        A copy with every size but possibly ``max_radius_um`` set.

    Examples
    --------
    >>> import numpy as np
    >>> from celltrack.graph import TrackGraph
    >>> ann = TrackGraph.from_positions([0, 0], np.zeros((2, 3)),
    ...                                 covariance=np.stack([np.eye(3) * 16.0] * 2))
    >>> round(calibrate_classical(ClassicalConfig(), ann).min_distance_um, 3)
    2.2
    """
    if not isinstance(cfg, ClassicalConfig):
        raise InvalidInputError(
            f"cfg must be a ClassicalConfig (DetectionConfig().classical), got {type(cfg).__name__}"
        )
    radii = equivalent_radii(annotations, two_d=two_d)
    if radii.size:
        median, small, large = (float(v) for v in (np.median(radii), radii.min(), radii.max()))
        found = {
            "sigma_um": SIGMA_PER_RADIUS * median,
            "min_distance_um": MIN_DISTANCE_PER_RADIUS * median,
            "min_depth_um": MIN_DEPTH_PER_RADIUS * median,
            "min_radius_um": MIN_RADIUS_PER_SMALLEST * small,
            "max_radius_um": MAX_RADIUS_PER_LARGEST * large,
        }
        logger.info(
            "classical detector calibrated from %d annotated nuclei (radius median %.2f µm, "
            "range %.2f-%.2f µm)",
            radii.size,
            median,
            small,
            large,
        )
    else:
        found = {
            "sigma_um": DEFAULT_SIGMA_UM,
            "min_distance_um": DEFAULT_MIN_DISTANCE_UM,
            "min_depth_um": DEFAULT_MIN_DEPTH_UM,
            "min_radius_um": DEFAULT_MIN_RADIUS_UM,
            "max_radius_um": None,
        }
    update = {k: v for k, v in found.items() if getattr(cfg, k) is None}
    return cfg.model_copy(update=update)


def _threshold(blurred: np.ndarray, method: str | float) -> float:
    if not isinstance(method, str):
        return float(method)
    from skimage import filters  # imported on use

    if float(blurred.max()) <= float(blurred.min()):
        return float(blurred.max())  # a constant frame: nothing is foreground
    func = {
        "otsu": filters.threshold_otsu,
        "triangle": filters.threshold_triangle,
        "li": filters.threshold_li,
    }[method]
    return float(func(blurred))


def _spaced(peaks: np.ndarray, height: np.ndarray, vs: np.ndarray, distance: float) -> np.ndarray:
    """Rows of ``peaks`` kept when higher peaks suppress those within ``distance`` µm."""
    from scipy.spatial import cKDTree

    if len(peaks) < 2:
        return np.arange(len(peaks))
    order = np.lexsort((*peaks.T[::-1], -height))  # highest first, then raster order
    pos = peaks[order] * vs
    pairs = cKDTree(pos).query_pairs(distance * (1 - 1e-9), output_type="ndarray")
    if len(pairs) == 0:
        return np.sort(order)
    pairs = np.sort(pairs, axis=1)  # (higher-ranked, lower-ranked)
    pairs = pairs[np.argsort(pairs[:, 0], kind="stable")]
    neighbours = np.split(pairs[:, 1], np.searchsorted(pairs[:, 0], np.arange(1, len(pos))))
    alive = np.ones(len(pos), bool)
    for i in np.unique(pairs[:, 0]):  # only peaks that have lower neighbours
        if alive[i]:
            alive[neighbours[i]] = False
    return np.sort(order[alive])


def _region_spots(
    regions: np.ndarray,
    n: int,
    blurred: np.ndarray,
    vs: np.ndarray,
    two_d: bool,
    level: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Centroid (µm), covariance (µm²), equivalent radius (µm) and mean intensity per region.

    With ``level`` (n + 1,), only the voxels of region ``k`` at or above ``level[k]`` count.
    """
    inside = regions > 0
    if level is not None:
        inside &= blurred >= level[regions]
    count, mean, moments, intensity = region_moments(regions, inside, n, vs, blurred)
    cov = np.zeros((n, 3, 3))
    if two_d:
        cov[:, 1:, 1:] = 4.0 * moments[:, 1:, 1:]
        lam = np.clip(np.linalg.eigvalsh(cov[:, 1:, 1:]), 0.0, None)
        cov[:, 0, 0] = lam.mean(axis=1)  # z semi-axis: RMS of the in-plane ones
        radius = np.sqrt(count * vs[1] * vs[2] / np.pi)
    else:
        cov = 5.0 * moments
        radius = np.cbrt(count * np.prod(vs) * 3.0 / (4.0 * np.pi))
    return mean, cov, radius, intensity


def classical_frame(
    frame: np.ndarray,
    voxel_size: Sequence[float] | np.ndarray,
    cfg: ClassicalConfig,
    normalize: NormalizeConfig | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Detect the nuclei of one frame (see the module docstring for the steps).

    Parameters
    ----------
    frame : ndarray, shape (Z, Y, X)
        One raw frame (2D: Z = 1).
    voxel_size : sequence of 3 float
        Voxel size (z, y, x) µm.
    cfg : ClassicalConfig
        Fully calibrated settings (:func:`calibrate_classical`).
    normalize : NormalizeConfig, optional
        Intensity normalisation (default percentile 1 – 99.8).

    Returns
    -------
    positions : ndarray, shape (N, 3)
        Centroids (z, y, x) µm.
    covariance : ndarray, shape (N, 3, 3)
        µm².
    score : ndarray, shape (N,)
        Contrast over the threshold, in [0, 1].
    regions : ndarray of int32, shape (Z, Y, X)
        The watershed regions, 0 = background, ``k`` = the spot of row ``k − 1`` (dropped
        regions are set to 0).
    """
    from skimage.feature import peak_local_max  # imported on use
    from skimage.morphology import h_maxima
    from skimage.segmentation import watershed

    vs = np.asarray(voxel_size, dtype=np.float64)
    if None in (cfg.sigma_um, cfg.min_distance_um, cfg.min_depth_um, cfg.min_radius_um):
        cfg = calibrate_classical(cfg, None)
    img = normalize_frame(frame, normalize)
    two_d = img.shape[0] == 1
    sigma = cfg.sigma_um / vs
    if two_d:
        sigma[0] = 0.0
    blurred = ndimage.gaussian_filter(img, sigma) if cfg.sigma_um > 0 else img
    thr = _threshold(blurred, cfg.threshold)
    mask = blurred > thr
    if two_d:
        mask[0] = ndimage.binary_fill_holes(mask[0])
    else:
        mask = ndimage.binary_fill_holes(mask)
    structure = ndimage.generate_binary_structure(3, 1)
    components, n_comp = ndimage.label(mask, structure=structure)
    if n_comp:
        if two_d:
            min_voxels = np.pi * cfg.min_radius_um**2 / (vs[1] * vs[2])
        else:
            min_voxels = 4.0 / 3.0 * np.pi * cfg.min_radius_um**3 / np.prod(vs)
        sizes = np.bincount(components.ravel(), minlength=n_comp + 1)
        small = sizes < min_voxels
        small[0] = True
        mask &= ~small[components]
        components[~mask] = 0
    empty = (np.zeros((0, 3)), np.zeros((0, 3, 3)), np.zeros(0), np.zeros(img.shape, np.int32))
    if not mask.any():
        return empty
    dist = ndimage.distance_transform_edt(mask, sampling=vs).astype(np.float32)
    full = np.ones((3, 3, 3), bool)
    if cfg.min_depth_um > 0:
        # one seed per maximum whose dynamic is >= min_depth: its deepest point
        deep, n_deep = ndimage.label(h_maxima(dist, cfg.min_depth_um) > 0, structure=full)
        peaks = np.asarray(
            ndimage.maximum_position(dist, deep, np.arange(1, n_deep + 1)), int
        ).reshape(-1, 3)
    else:
        peaks = peak_local_max(
            dist, footprint=full, min_distance=1, threshold_abs=0.0, exclude_border=False
        )
    peaks = peaks[_spaced(peaks, dist[tuple(peaks.T)], vs, cfg.min_distance_um)]
    # a component without a seed keeps one at its deepest point
    seeded = np.zeros(n_comp + 1, bool)
    seeded[components[tuple(peaks.T)]] = True
    missing = np.flatnonzero(~seeded[1:]) + 1
    missing = missing[np.isin(missing, np.unique(components))]
    if missing.size:
        deepest = ndimage.maximum_position(dist, components, missing)
        peaks = np.concatenate([peaks.reshape(-1, 3), np.asarray(deepest, int).reshape(-1, 3)])
    markers = np.zeros(img.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    regions = watershed(-dist, markers, mask=mask).astype(np.int32)
    n = len(peaks)
    # the blur and a low threshold widen each region: measure the nucleus at half its
    # height, between the threshold and the region's mean intensity
    ids = np.arange(1, n + 1)
    mean_in = np.asarray(ndimage.mean(blurred, regions, ids), np.float64).reshape(-1)
    level = np.concatenate([[np.inf], thr + SIZE_LEVEL * (mean_in - thr)])
    pos, cov, radius, _ = _region_spots(regions, n, blurred, vs, two_d, level)
    intensity = mean_in
    keep = radius >= cfg.min_radius_um
    if cfg.max_radius_um is not None:
        keep &= radius <= cfg.max_radius_um
    keep &= ~bad_covariances(cov)
    score = np.clip((intensity - thr) / max(1.0 - thr, 1e-6), 0.0, 1.0)
    relabel = np.zeros(n + 1, np.int32)
    relabel[1:][keep] = np.arange(1, int(keep.sum()) + 1)
    return pos[keep], cov[keep], score[keep], relabel[regions]


def detect_classical(
    images: Any,
    frames: int | Iterable[int] | None = None,
    cfg: DetectionConfig | None = None,
    *,
    voxel_size: Sequence[float] | None = None,
    annotations: TrackGraph | None = None,
    progress: bool = False,
) -> TrackGraph:
    """Detect nuclei by threshold + distance-transform watershed (no model, no training).

    Parameters
    ----------
    images : array_like, path or ImageSeries
        The movie, opened by :func:`celltrack.io.as_movie`: a 4-D array is (T, Z, Y, X),
        a 3-D array (T, Y, X) 2D+t; frames are read one at a time.
    frames : int or iterable of int, optional
        Frames to process (default all).
    cfg : DetectionConfig, optional
        ``cfg.classical`` (the detector), ``cfg.normalize`` (intensity normalisation),
        ``cfg.spots.suppression_distance_um`` and ``cfg.labels.point_radius_um`` (merging
        annotations, as :func:`~celltrack.detect.api.detect` does). Default
        ``DetectionConfig(kind="classical")``.
    voxel_size : sequence of 3 float, optional
        Voxel size (z, y, x) µm; required for arrays, default a file's own.
    annotations : TrackGraph, optional
        Reviewed spots. Their nuclei (tp, fn, with covariances, any frame) calibrate the
        unset sizes of ``cfg.classical`` (:func:`calibrate_classical`); in the processed
        frames they are merged with the detections exactly as
        :func:`~celltrack.detect.api.detect` merges them (kept, duplicates suppressed, tags
        re-checked, ids kept and new spots numbered above them).
    progress : bool
        Show a tqdm bar over frames.

    Returns
    -------
    TrackGraph
        Nodes only, the schema of :func:`~celltrack.detect.api.detect`: ``t``, ``z, y, x``
        (µm), ``covariance`` (N, 3, 3) µm², ``score`` in [0, 1] (contrast over the
        threshold) and ``tag`` (``"unlabeled"`` for detections). ``attrs`` holds
        ``voxel_size``, ``detection_config`` (with the calibrated classical sizes),
        ``celltrack_version`` and, when annotations are given, ``calibration`` (number of
        annotated nuclei with a size, their median radius µm, the fields calibrated).

    Raises
    ------
    InvalidInputError
        Missing voxel size for an array, frames outside the movie, a config or
        annotations of the wrong type, NaN intensities.
    ShapeError
        A movie that is not 3-D (T, Y, X) or 4-D (T, Z, Y, X).

    Examples
    --------
    >>> import numpy as np
    >>> movie = np.zeros((1, 1, 32, 32), np.uint16)
    >>> movie[0, 0, 8:14, 8:14] = movie[0, 0, 18:26, 16:24] = 1000
    >>> spots = detect_classical(movie, voxel_size=(1.0, 1.0, 1.0))
    >>> spots.num_nodes
    2
    """
    cfg = DetectionConfig(kind="classical") if cfg is None else cfg
    if not isinstance(cfg, DetectionConfig):
        raise InvalidInputError(
            f"cfg must be a DetectionConfig (e.g. DetectionConfig(kind='classical')), got "
            f"{type(cfg).__name__}"
        )
    if annotations is not None and not isinstance(annotations, TrackGraph):
        raise InvalidInputError(
            f"annotations must be a TrackGraph, got {type(annotations).__name__}"
        )
    if voxel_size is None and not isinstance(images, (ImageSeries, str, Path)):
        raise InvalidInputError(
            "the movie is an array without a voxel size: pass voxel_size=(z, y, x) in µm "
            "(for 2D+t data (1.0, y, x))"
        )
    movie = open_movie(images, voxel_size)
    vs = np.asarray(movie.voxel_size, dtype=np.float64)
    two_d = movie.shape[1] == 1
    frame_list = checked_frames(frames, movie.shape[0])
    classical = calibrate_classical(cfg.classical, annotations, two_d=two_d)
    calibration: dict[str, Any] | None = None
    if annotations is not None and annotations.num_nodes:
        radii = equivalent_radii(annotations, two_d=two_d)
        calibration = {
            "annotated_nuclei": int(radii.size),
            "radius_median_um": float(np.median(radii)) if radii.size else None,
            "calibrated": [
                k
                for k in ClassicalConfig.model_fields
                if getattr(cfg.classical, k) is None and radii.size
            ],
        }
    logger.debug("classical detection with %s", classical)

    per_frame = []
    for t in progress_bar(frame_list, desc="detect (classical)", disable=not progress, leave=False):
        pos, cov, score, _ = classical_frame(np.asarray(movie[t]), vs, classical, cfg.normalize)
        n = len(pos)
        per_frame.append(
            TrackGraph.from_positions(
                np.full(n, t, np.int64),
                pos.reshape(n, 3),
                covariance=cov.reshape(n, 3, 3),
                score=score,
                tag=np.full(n, Tag.UNLABELED.value),
            )
        )
    spots = collect_spots(per_frame)
    if annotations is not None and annotations.num_nodes:
        spots = _merge_annotations(spots, annotations, frame_list, cfg, vs)
    used = cfg.model_copy(update={"classical": classical})
    stamp_spots(spots, vs, used)
    if calibration is not None:
        spots.attrs["calibration"] = calibration
    logger.info("classical detection: %d spots in %d frames", spots.num_nodes, len(frame_list))
    return spots
