"""Calibrating the indicator's NMS from the annotations: window, spot size, threshold.

:func:`calibrate_nms` sizes the max-filter window, the spots and the suppression distance
from the annotated nuclei; :func:`calibrate_indicator_threshold` picks the score threshold
that best reproduces the annotations of the predicted frames (found vs missed vs false
maxima), as :mod:`celltrack.detect.calibrate` does for the ellipsoid detector.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from celltrack.config.indicator import IndicatorConfig, IndicatorNMSConfig
from celltrack.detect.calibrate import (
    MIN_GAIN,
    MIN_SIZE_NUCLEI,
    MIN_THRESHOLD_NUCLEI,
    annotated_radii,
)
from celltrack.detect.evidence import intensity_background
from celltrack.detect.indicator_targets import REJECTED_TAGS, evidence_config
from celltrack.detect.nms import indicator_maxima
from celltrack.graph import TrackGraph
from celltrack.graph.tags import NUCLEUS, Tag, tags_of
from celltrack.io import ImageSeries

__all__ = [
    "THRESHOLD_GRID",
    "calibrate_indicator_threshold",
    "calibrate_nms",
    "indicator_backgrounds",
]

logger = logging.getLogger(__name__)

#: Calibrated window (full extent) per median annotated nucleus radius.
WINDOW_PER_RADIUS = 1.75
#: Calibrated suppression distance per median annotated nucleus radius.
SUPPRESSION_PER_RADIUS = 0.75
#: Indicator thresholds tried by :func:`calibrate_indicator_threshold`.
THRESHOLD_GRID: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)


def calibrate_nms(
    nms: IndicatorNMSConfig,
    annotations: TrackGraph,
    voxel_size: Sequence[float],
    *,
    two_d: bool = False,
) -> IndicatorNMSConfig:
    """Window, spot radius and suppression distance from the annotated nuclei' sizes.

    With at least :data:`~celltrack.detect.calibrate.MIN_SIZE_NUCLEI` annotated nuclei
    with a covariance (tags tp, fn, tb, fb), the median radius r (geometric mean of a
    nucleus' semi-axes; in-plane ones for 2D+t) gives ``window_um`` = 1.75 r per axis
    (full extent, a bit less than a nucleus diameter; at least 3 voxels),
    ``point_radius_um`` = r and
    ``suppression_distance_um`` = 0.75 r. Otherwise ``nms`` is returned unchanged.

    Parameters
    ----------
    nms : IndicatorNMSConfig
        The configured settings.
    annotations : TrackGraph
        Annotations (µm, µm²).
    voxel_size : sequence of 3 float
        (z, y, x) µm.
    two_d : bool
        2D+t data.

    Returns
    -------
    IndicatorNMSConfig
    """
    radii = annotated_radii(annotations, two_d=two_d)
    if len(radii) < MIN_SIZE_NUCLEI:
        return nms
    r = float(np.median(np.exp(np.mean(np.log(radii), axis=1))))
    vs = np.asarray(voxel_size, float)
    window = np.maximum(WINDOW_PER_RADIUS * r, 3.0 * vs)  # never below 3 voxels
    update = {
        "window_um": tuple(float(w) for w in window),
        "point_radius_um": r,
        "suppression_distance_um": SUPPRESSION_PER_RADIUS * r,
    }
    logger.info(
        "indicator NMS calibrated from %d annotated nuclei (median radius %.2f µm): window "
        "%s µm, spot radius %.2f µm",
        len(radii),
        r,
        [round(w, 2) for w in update["window_um"]],  # type: ignore[union-attr]
        r,
    )
    return nms.model_copy(update=update)


def _counts(
    maps: dict[int, np.ndarray],
    annotations: TrackGraph,
    vs: np.ndarray,
    cfg: IndicatorConfig,
    backgrounds: dict[int, np.ndarray] | None,
    grid: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Found nuclei and false maxima per threshold of ``grid``, and the nuclei judged."""
    tags = tags_of(annotations, default=Tag.TP)
    radius = cfg.target.mask_radius_um
    found = np.zeros(grid.size)
    false = np.zeros(grid.size)
    n_nuclei = 0
    for t, indicator in maps.items():
        rows = annotations.t == t
        nuclei = annotations.positions[rows & np.isin(tags, NUCLEUS)]
        rejected = annotations.positions[rows & np.isin(tags, REJECTED_TAGS)]
        n_nuclei += len(nuclei)
        vox, scores = indicator_maxima(indicator, vs, cfg.nms.window_um, float(grid.min()) / 2)
        pos = vox * vs
        two_d = indicator.shape[0] == 1
        on_nucleus = _within(pos, nuclei, radius, two_d)
        elsewhere = ~on_nucleus.any(axis=1)
        on_rejected = _within(pos, rejected, radius, two_d).any(axis=1) & elsewhere
        bg = None if backgrounds is None else backgrounds.get(t)
        on_background = np.zeros(len(vox), bool)
        if bg is not None and len(vox):
            on_background = bg[tuple(vox.T)] & elsewhere
        for i, thr in enumerate(grid):
            keep = scores > thr
            hits = on_nucleus[keep].sum(axis=0)
            found[i] += np.count_nonzero(hits)
            false[i] += np.sum(np.maximum(hits - 1, 0))
            false[i] += np.count_nonzero(on_rejected[keep] | on_background[keep])
    return found, false, n_nuclei


def _within(pos: np.ndarray, points: np.ndarray, radius: float, two_d: bool) -> np.ndarray:
    """(N, M) mask: maximum n lies within ``radius`` µm of point m (z ignored in 2D)."""
    if not len(points) or not len(pos):
        return np.zeros((len(pos), len(points)), bool)
    a, b = pos.astype(float), np.asarray(points, float)
    if two_d:
        a, b = a[:, 1:], b[:, 1:]
    return np.linalg.norm(a[:, None] - b[None], axis=2) <= radius


def calibrate_indicator_threshold(
    maps: dict[int, np.ndarray],
    annotations: TrackGraph,
    voxel_size: Sequence[float],
    cfg: IndicatorConfig,
    *,
    backgrounds: dict[int, np.ndarray] | None = None,
) -> tuple[float, dict[str, Any]]:
    """The NMS threshold that best reproduces the annotations of predicted frames.

    The maxima of a map do not depend on the threshold (only which are kept), so every
    threshold of :data:`THRESHOLD_GRID` (and the configured one) is judged on one NMS per
    frame. A confirmed nucleus (tp, fn) is *found* when a kept maximum lies within
    ``target.mask_radius_um`` of it; *false* maxima are the second and later ones near one
    nucleus, those near a rejected or periphery mark (fp, tn, fb, tb) and no nucleus, and
    those on automatic background (``backgrounds``); maxima anywhere else are not judged.
    The threshold with the highest ``F1 = 2·found / (2·found + missed + false)`` wins
    (ties: the one closest to ``cfg.nms.threshold``); the configured threshold stays
    unless the best is at least :data:`~celltrack.detect.calibrate.MIN_GAIN` better, or
    when the frames hold fewer than :data:`~celltrack.detect.calibrate.MIN_THRESHOLD_NUCLEI`
    confirmed nuclei (the frames judged are usually the training frames, where a model
    is right at most thresholds).

    Parameters
    ----------
    maps : dict of int to ndarray, shape (Z, Y, X)
        Predicted indicator per annotated frame.
    annotations : TrackGraph
        Reviewed spots (µm).
    voxel_size : sequence of 3 float
        (z, y, x) µm.
    cfg : IndicatorConfig
        ``nms`` (window, configured threshold) and ``target.mask_radius_um``.
    backgrounds : dict of int to ndarray of bool, shape (Z, Y, X), optional
        Automatic background per frame.

    Returns
    -------
    threshold : float
        The threshold to use.
    report : dict
        ``calibrated`` (bool), ``nuclei`` (count judged) and ``f1`` per threshold.
    """
    vs = np.asarray(voxel_size, float)
    configured = float(cfg.nms.threshold)
    grid = np.asarray(sorted({*THRESHOLD_GRID, configured}))
    found, false, n_nuclei = _counts(maps, annotations, vs, cfg, backgrounds, grid)
    report: dict[str, Any] = {"calibrated": False, "nuclei": n_nuclei}
    if n_nuclei < MIN_THRESHOLD_NUCLEI:
        return configured, report
    f1 = 2 * found / np.maximum(2 * found + (n_nuclei - found) + false, 1)
    report["f1"] = {float(g): float(v) for g, v in zip(grid, f1)}
    best = max(range(grid.size), key=lambda i: (round(f1[i], 9), -abs(grid[i] - configured)))
    at_configured = float(f1[int(np.flatnonzero(grid == configured)[0])])
    if f1[best] < at_configured + MIN_GAIN:
        return configured, report
    report["calibrated"] = True
    logger.info(
        "indicator threshold calibrated on %d annotated nuclei: %.2f (F1 %.3f; the "
        "configured %.2f gives %.3f)", n_nuclei, grid[best], f1[best], configured,
        at_configured,
    )
    return float(grid[best]), report


def indicator_backgrounds(
    movie: ImageSeries, maps: dict[int, np.ndarray], annotations: TrackGraph, cfg: IndicatorConfig
) -> dict[int, np.ndarray]:
    """Automatic background of the calibration frames (empty when the rule is off)."""
    if cfg.target.auto_background != "intensity":
        return {}
    out = {}
    for t in maps:
        ev = intensity_background(
            np.asarray(movie[t]), annotations.subgraph(nodes=annotations.t == t),
            movie.voxel_size, evidence_config(cfg),
        )
        if ev is not None:
            out[t] = ev.background
    return out
