"""Spot settings calibrated from the annotations instead of fixed defaults.

Three things a few annotated nuclei tell about the data, used by
:func:`celltrack.detect.detect` when ``cfg.spots.calibrate`` is on:

* **Sizes** (:func:`calibrate_spot_sizes`): from the semi-axes of the annotated nuclei
  (tags tp, fn, tb, fb with a covariance; in 2D+t the two in-plane axes),
  ``r_min_um = 0.3 × their 5th percentile``, ``r_max_um = 1.5 × their 95th percentile``
  and ``suppression_distance_um = 0.5 × the median nucleus radius`` (geometric mean of
  a nucleus' semi-axes), never below the configured distance. At least
  :data:`MIN_SIZE_NUCLEI` nuclei are needed.
* **Threshold** (:func:`calibrate_threshold`): in processed frames that have
  annotations, spots are extracted at each centre-probability threshold of
  :data:`THRESHOLD_GRID`; an annotated nucleus (tp, fn) is *found* when a spot centre lies
  inside its ellipsoid, and *false* spots are those inside a rejected mark (fp, tn), on
  automatic background (:mod:`celltrack.detect.evidence`), or the second and later spot
  inside one annotated nucleus (a split). Spots anywhere else are not judged (nobody
  said what is there). The threshold with the highest
  ``F1 = 2·found / (2·found + missed + false)`` wins; ties go to the one closest to the
  configured ``spots.threshold``, and the configured threshold stays unless the best is
  at least :data:`MIN_GAIN` better in F1 (the frames judged are usually the training
  frames, where a model is nearly right at any threshold). At least
  :data:`MIN_THRESHOLD_NUCLEI` annotated nuclei are needed in those frames, else the
  configured threshold stays too.
* **Density** (:func:`expected_count`): the nuclei a frame should hold, estimated as the
  foreground volume of the 'intensity' rule divided by the mean annotated nucleus
  volume; :func:`check_density` warns when predictions are far off it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from celltrack.config.detection import SpotConfig
from celltrack.detect.evidence import DRAWN_NUCLEUS_TAGS
from celltrack.detect.spots import extract_spots
from celltrack.geometry import check_voxel_size
from celltrack.graph import TrackGraph
from celltrack.graph.tags import BACKGROUND, NUCLEUS, Tag, tags_of

__all__ = [
    "DENSITY_FACTOR",
    "MIN_GAIN",
    "MIN_SIZE_NUCLEI",
    "MIN_THRESHOLD_NUCLEI",
    "THRESHOLD_GRID",
    "ThresholdCalibration",
    "annotated_radii",
    "calibrate_spot_sizes",
    "calibrate_threshold",
    "check_density",
    "expected_count",
]

logger = logging.getLogger(__name__)

#: Annotated nuclei (with covariance) needed to calibrate the spot sizes.
MIN_SIZE_NUCLEI = 3
#: Annotated nuclei in processed frames needed to calibrate the threshold.
MIN_THRESHOLD_NUCLEI = 5
#: Centre-probability thresholds tried by :func:`calibrate_threshold`.
THRESHOLD_GRID: tuple[float, ...] = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
#: F1 gain over the configured threshold needed to move away from it (noise guard).
MIN_GAIN = 0.02
#: ``r_min_um`` per 5th percentile of the annotated semi-axes: daughters right after a
#: division are much smaller than the nuclei a person tends to annotate (0.5 dropped them:
#: synthetic-embryo DET 0.971 → 0.952)
R_MIN_PER_P5 = 0.3
#: :func:`check_density` warns above this factor times the expected count, and below its
#: inverse squared: the bright volume is an upper bound of the nuclei's volume (halos, dim
#: rims and debris count too; it ran 2–3× high on the synthetic embryo and on HeLa)
DENSITY_FACTOR = 3.0


def annotated_radii(annotations: TrackGraph, *, two_d: bool = False) -> np.ndarray:
    """Semi-axes of the annotated nuclei (µm), sorted per nucleus.

    Parameters
    ----------
    annotations : TrackGraph
        Spots with a ``covariance`` column (µm²); nuclei are those tagged tp, fn, tb or
        fb (every spot without a ``tag`` column).
    two_d : bool
        2D+t data: only the two in-plane (y, x) semi-axes count (z is not observed).

    Returns
    -------
    ndarray, shape (N, 3) or (N, 2)
        Semi-axes per nucleus in µm; empty without a covariance column.
    """
    k = 2 if two_d else 3
    if not isinstance(annotations, TrackGraph) or "covariance" not in annotations.nodes:
        return np.zeros((0, k))
    rows = np.isin(tags_of(annotations, default=Tag.TP), DRAWN_NUCLEUS_TAGS)
    cov = np.asarray(annotations.nodes["covariance"], float).reshape(-1, 3, 3)[rows]
    block = cov[:, 1:, 1:] if two_d else cov
    with np.errstate(invalid="ignore"):
        radii = np.sqrt(np.clip(np.linalg.eigvalsh(block), 0.0, None))
    return radii[np.all(np.isfinite(radii) & (radii > 0), axis=1)]


def calibrate_spot_sizes(
    cfg: SpotConfig, annotations: TrackGraph, *, two_d: bool = False
) -> SpotConfig:
    """``r_min_um``, ``r_max_um`` and ``suppression_distance_um`` from the annotated radii.

    Parameters
    ----------
    cfg : SpotConfig
        The configured settings (returned unchanged when there are fewer than
        :data:`MIN_SIZE_NUCLEI` annotated nuclei with a covariance).
    annotations : TrackGraph
        Annotations of any frames (µm, µm²).
    two_d : bool
        2D+t data (in-plane semi-axes only).

    Returns
    -------
    SpotConfig
        A copy with ``r_min_um = 0.3 × P5``, ``r_max_um = 1.5 × P95`` of the semi-axes and
        ``suppression_distance_um = 0.5 ×`` the median radius, at least the configured
        one (0 stays 0: off).
    """
    radii = annotated_radii(annotations, two_d=two_d)
    if len(radii) < MIN_SIZE_NUCLEI:
        logger.info(
            "spot sizes not calibrated: %d annotated nuclei with a covariance (need %d); "
            "using r_min_um %.3g, r_max_um %.3g",
            len(radii),
            MIN_SIZE_NUCLEI,
            cfg.r_min_um,
            cfg.r_max_um,
        )
        return cfg
    axes = radii.ravel()
    r_min = R_MIN_PER_P5 * float(np.percentile(axes, 5))
    r_max = max(1.5 * float(np.percentile(axes, 95)), r_min * 1.01)
    radius = float(np.median(np.exp(np.log(radii).mean(axis=1))))
    # duplicates lie within half a radius; never below the configured distance (lowering it
    # for small nuclei let double detections through: synthetic-embryo DET 0.971 → 0.965)
    configured = cfg.suppression_distance_um
    suppression = max(0.5 * radius, configured) if configured > 0 else 0.0
    logger.info(
        "spot sizes calibrated from %d annotated nuclei (median radius %.3g µm): r_min_um "
        "%.3g, r_max_um %.3g, suppression_distance_um %.3g",
        len(radii),
        radius,
        r_min,
        r_max,
        suppression,
    )
    return cfg.model_copy(
        update={"r_min_um": r_min, "r_max_um": r_max, "suppression_distance_um": suppression}
    )


@dataclass(frozen=True)
class ThresholdCalibration:
    """Outcome of :func:`calibrate_threshold`.

    Attributes
    ----------
    threshold : float
        The chosen centre-probability threshold (the configured one when not calibrated).
    calibrated : bool
        Whether enough annotations were there to choose.
    n_nuclei : int
        Annotated nuclei judged.
    scores : dict of float to tuple
        Per threshold: (F1, found, missed, false).
    """

    threshold: float
    calibrated: bool
    n_nuclei: int
    scores: dict[float, tuple[float, int, int, int]] = field(default_factory=dict)


def _inside(points: np.ndarray, centres: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """(M, N) bool: point m lies inside ellipsoid n (Mahalanobis distance ≤ 1)."""
    if len(points) == 0 or len(centres) == 0:
        return np.zeros((len(points), len(centres)), bool)
    inv = np.linalg.inv(cov)
    d = points[:, None, :] - centres[None, :, :]
    return np.einsum("mni,nij,mnj->mn", d, inv, d) <= 1.0


def calibrate_threshold(
    centre_maps: Mapping[int, np.ndarray],
    annotations: TrackGraph,
    voxel_size: Sequence[float],
    cfg: SpotConfig,
    *,
    backgrounds: Mapping[int, np.ndarray] | None = None,
    default_radius_um: float = 3.0,
) -> ThresholdCalibration:
    """Choose the centre-probability threshold that best separates nuclei from background.

    Parameters
    ----------
    centre_maps : mapping of int to ndarray, shape (Z, Y, X)
        Predicted centre probability of annotated frames, by frame index.
    annotations : TrackGraph
        Annotations (µm, µm²) of any frames; those of the frames in ``centre_maps`` are
        judged.
    voxel_size : sequence of 3 float
        (z, y, x) µm.
    cfg : SpotConfig
        Spot settings (the threshold is varied; the rest is used as given).
    backgrounds : mapping of int to ndarray of bool, optional
        Automatic background of those frames (spots there are false).
    default_radius_um : float
        Radius of annotations without covariance (µm).

    Returns
    -------
    ThresholdCalibration
    """
    from celltrack.detect.labels import spot_arrays

    vs = check_voxel_size(voxel_size)
    backgrounds = backgrounds or {}
    judged = []
    n_nuclei = 0
    for t, pc in centre_maps.items():
        spots = annotations.subgraph(nodes=annotations.t == t)
        pos, cov, tags = spot_arrays(spots, default_radius_um)
        nucleus = np.isin(tags, NUCLEUS)
        rejected = np.isin(tags, BACKGROUND)
        n_nuclei += int(nucleus.sum())
        judged.append((t, pc, pos[nucleus], cov[nucleus], pos[rejected], cov[rejected]))
    if n_nuclei < MIN_THRESHOLD_NUCLEI:
        logger.info(
            "detection threshold not calibrated: %d annotated nuclei in the processed frames "
            "(need %d); using spots.threshold %.3g",
            n_nuclei,
            MIN_THRESHOLD_NUCLEI,
            cfg.threshold,
        )
        return ThresholdCalibration(cfg.threshold, False, n_nuclei)
    scores: dict[float, tuple[float, int, int, int]] = {}
    for tau in THRESHOLD_GRID:
        at = cfg.model_copy(update={"threshold": tau})
        found = missed = false = 0
        for t, pc, npos, ncov, rpos, rcov in judged:
            pred = extract_spots(pc, vs, at, t=t).positions
            hits = _inside(pred, npos, ncov)  # (M, N)
            per_nucleus = hits.sum(axis=0)
            found += int((per_nucleus > 0).sum())
            missed += int((per_nucleus == 0).sum())
            false += int(np.clip(per_nucleus - 1, 0, None).sum())
            free = ~hits.any(axis=1)  # spots not inside an annotated nucleus
            bad = _inside(pred, rpos, rcov).any(axis=1)
            mask = backgrounds.get(t)
            if mask is not None and len(pred):
                idx = np.clip(np.rint(pred / vs).astype(int), 0, np.asarray(mask.shape) - 1)
                bad |= mask[tuple(idx.T)]
            false += int((bad & free).sum())
        f1 = 2 * found / max(2 * found + missed + false, 1)
        scores[tau] = (f1, found, missed, false)
    best = max(scores.values())[0]
    ties = [tau for tau, s in scores.items() if s[0] >= best - 1e-12]
    threshold = min(ties, key=lambda tau: (abs(tau - cfg.threshold), tau))
    configured = _f1_at(cfg.threshold, scores)
    if configured is not None and best - configured < MIN_GAIN:
        threshold = cfg.threshold  # not clearly better: keep the configured threshold
    logger.info(
        "detection threshold calibrated on %d annotated nuclei in %d frame(s): %.2g "
        "(F1 %.3f; found %d, missed %d, false %d)",
        n_nuclei,
        len(judged),
        threshold,
        *scores[threshold],
    )
    return ThresholdCalibration(float(threshold), True, n_nuclei, scores)


def _f1_at(threshold: float, scores: Mapping[float, tuple[float, int, int, int]]) -> float | None:
    for tau, s in scores.items():
        if abs(tau - threshold) < 1e-9:
            return s[0]
    return None


def expected_count(foreground: np.ndarray, voxel_size: Sequence[float], volume_um3: float) -> float:
    """Nuclei a frame should hold: foreground volume / mean annotated nucleus volume.

    Parameters
    ----------
    foreground : ndarray of bool, shape (Z, Y, X)
        Foreground of the 'intensity' rule (:class:`~celltrack.detect.evidence.IntensityEvidence`).
    voxel_size : sequence of 3 float
        (z, y, x) µm; for Z = 1 a voxel counts as its area (× 1 µm), like the volume.
    volume_um3 : float
        Mean annotated nucleus volume (µm³; in 2D the area, µm²).

    Returns
    -------
    float
    """
    vs = check_voxel_size(voxel_size)
    foreground = np.asarray(foreground, bool)
    voxel = float(vs[1] * vs[2]) if foreground.shape[0] == 1 else float(np.prod(vs))
    return float(foreground.sum()) * voxel / max(float(volume_um3), 1e-12)


def check_density(predicted: float, expected: float) -> str | None:
    """Warn (and return the message) when predictions per frame are far off the expected.

    Parameters
    ----------
    predicted : float
        Mean spots per frame found.
    expected : float
        Mean nuclei per frame the annotations imply (:func:`expected_count`).

    Returns
    -------
    str or None
        The warning logged, or None when within the bounds of :data:`DENSITY_FACTOR`.
    """
    if expected <= 0:
        return None
    ratio = predicted / expected
    if ratio > DENSITY_FACTOR:
        message = (
            f"detection found {predicted:.0f} spots per frame but the annotations imply about "
            f"{expected:.0f} nuclei per frame (bright volume / mean annotated nucleus volume): "
            "the model fires on background. Mark background (tag tn) or reject wrong "
            "predictions (tag fp) and retrain, or raise spots.threshold"
        )
    elif ratio < 1.0 / DENSITY_FACTOR**2:
        message = (
            f"detection found {predicted:.0f} spots per frame but the annotations imply about "
            f"{expected:.0f} nuclei per frame (bright volume / mean annotated nucleus volume): "
            "the model misses nuclei. Annotate missed nuclei (tag fn) and retrain, or lower "
            "spots.threshold"
        )
    else:
        return None
    logger.warning(message)
    return message
