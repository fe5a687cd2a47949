"""From centre probabilities to spots (ellipsoids or points), and duplicate suppression.

Component mode: threshold the centre probability, label 26-connected components (8 in
2D), and fit each an ellipsoid from its second moments. Moments are computed for all
components at once with ``np.bincount`` (no Python loop over components). The covariance
of a component includes each voxel's own extent (a uniform box adds ``s²/12`` per
axis), and a solid ellipsoid with semi-axes ``r`` has moments ``r²/5``, so the semi-axes
are ``√(5λ)`` (ELEPHANT used ``2√λ`` plus a bounding-box fudge); they are then enlarged
by ``1 / centre_ratio`` because the component is the nucleus' centre core. Spots with a
semi-axis below ``r_min`` are dropped and semi-axes are clamped to ``r_max``. The score
is the mean centre probability of the component.

Maxima mode: local maxima of the centre probability above the threshold within an
ellipsoidal neighbourhood of ``nms_radius_um`` (:func:`skimage.feature.peak_local_max`
with that footprint; a constant map has none), as spheres of ``point_radius_um``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from celltrack.config.detection import SpotConfig
from celltrack.errors import InvalidInputError, ShapeError
from celltrack.geometry import check_voxel_size, sphere_covariances
from celltrack.graph import TrackGraph
from celltrack.graph.tags import recheck_tags as recheck
from celltrack.graph.tags import reviewed_mask, tags_of

__all__ = ["extract_spots", "region_moments", "suppress_duplicates"]



def _centre_map(prob: np.ndarray) -> np.ndarray:
    prob = np.asarray(prob)
    if prob.ndim == 4:
        if prob.shape[0] != 3:
            raise ShapeError(
                f"prob must be (3, Z, Y, X) class probabilities or a (Z, Y, X) centre map, "
                f"got shape {prob.shape}"
            )
        prob = prob[2]
    if prob.ndim != 3:
        raise ShapeError(f"prob must be (3, Z, Y, X) or (Z, Y, X), got shape {prob.shape}")
    return prob.astype(np.float32, copy=False)


def region_moments(
    labels: np.ndarray, inside: np.ndarray, n: int, vs: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Voxel count, centroid, second central moments and mean value of labelled regions.

    Parameters
    ----------
    labels : ndarray of int, shape (Z, Y, X)
        Region labels 1..n (0 = none).
    inside : ndarray of bool, shape (Z, Y, X)
        The voxels that count (every one of them must carry a label ≥ 1).
    n : int
        Number of regions.
    vs : ndarray, shape (3,)
        Voxel size (z, y, x) µm.
    values : ndarray, shape (Z, Y, X)
        Averaged per region (e.g. a probability or an intensity).

    Returns
    -------
    count : ndarray, shape (n,)
        Voxels per region.
    mean : ndarray, shape (n, 3)
        Centroids (µm).
    moments : ndarray, shape (n, 3, 3)
        Second central moments (µm²), each voxel adding its own extent ``s²/12`` per axis
        (a uniform box).
    mean_value : ndarray, shape (n,)
        Mean of ``values`` per region.
    """
    idx = labels[inside] - 1
    coords = np.stack(np.nonzero(inside), axis=1).astype(np.float64) * vs
    count = np.bincount(idx, minlength=n).astype(np.float64)
    mean = np.stack([np.bincount(idx, coords[:, d], n) for d in range(3)], axis=1) / count[:, None]
    centred = coords - mean[idx]
    moments = np.empty((n, 3, 3))
    for i in range(3):
        for j in range(i, 3):
            moments[:, i, j] = moments[:, j, i] = (
                np.bincount(idx, centred[:, i] * centred[:, j], n) / count
            )
    moments[:, [0, 1, 2], [0, 1, 2]] += vs**2 / 12.0
    mean_value = np.bincount(idx, values[inside].astype(np.float64), n) / count
    return count, mean, moments, mean_value


def _component_spots(
    pc: np.ndarray, vs: np.ndarray, cfg: SpotConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    two_d = pc.shape[0] == 1
    mask = pc > cfg.threshold
    structure = np.ones((3, 3, 3), bool)
    lab, n = ndimage.label(mask, structure=structure)
    if n == 0:
        return np.zeros((0, 3)), np.zeros((0, 3, 3)), np.zeros(0)
    _, mean, cov, score = region_moments(lab, mask, n, vs, pc)
    if two_d:
        cov[:, 0, :] = cov[:, :, 0] = 0.0
        cov[:, 0, 0] = -1.0  # placeholder: the smallest eigenvalue, eigenvector = z
    lam, vec = np.linalg.eigh(cov)
    radii = np.sqrt(5.0 * np.clip(lam, 0.0, None)) / cfg.centre_ratio
    if two_d:
        # z is not observed: give the spot a z semi-axis equal to its mean xy semi-axis
        is_z = np.abs(vec[:, 0, :]) > 0.5  # the eigenvector along z (from the placeholder)
        xy_mean = np.sqrt((radii**2 * ~is_z).sum(1) / 2.0)
        radii = np.where(is_z, xy_mean[:, None], radii)
        checked = np.where(is_z, np.inf, radii)
        lam = np.where(is_z, 1.0, lam)
    else:
        checked = radii
    keep = np.all(checked >= cfg.r_min_um, axis=1) & np.all(lam > 0, axis=1)
    radii = np.minimum(radii, cfg.r_max_um)
    cov = np.einsum("nij,nj,nkj->nik", vec, radii**2, vec)
    return mean[keep], cov[keep], score[keep]


def _maxima_spots(
    pc: np.ndarray, vs: np.ndarray, cfg: SpotConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from skimage.feature import peak_local_max  # ~20 ms to import: only when used

    reach = np.floor(cfg.nms_radius_um / vs).astype(int)
    if pc.shape[0] == 1:
        reach[0] = 0
    grids = np.meshgrid(*[np.arange(-r, r + 1) * s for r, s in zip(reach, vs)], indexing="ij")
    footprint = sum(g**2 for g in grids) <= cfg.nms_radius_um**2
    peaks = peak_local_max(
        pc, footprint=footprint, threshold_abs=cfg.threshold, exclude_border=False
    )
    peaks = peaks[np.lexsort(peaks.T[::-1])]  # raster order (skimage sorts by height)
    pos = peaks.astype(np.float64) * vs
    score = pc[tuple(peaks.T)].astype(np.float64)
    return pos, sphere_covariances(len(pos), cfg.point_radius_um), score


def extract_spots(
    prob: np.ndarray,
    voxel_size: Sequence[float],
    cfg: SpotConfig | None = None,
    *,
    t: int = 0,
    suppress: bool = True,
) -> TrackGraph:
    """Spots of one frame from predicted probabilities.

    Parameters
    ----------
    prob : ndarray, shape (3, Z, Y, X) or (Z, Y, X)
        Class probabilities (background, periphery, centre) or the centre map alone.
    voxel_size : sequence of 3 float
        Voxel size (z, y, x) in µm.
    cfg : SpotConfig, optional
        Mode, threshold, centre ratio, radius limits, suppression distance.
    t : int
        Frame index written to the ``t`` column.
    suppress : bool
        Remove duplicates closer than ``cfg.suppression_distance_um`` (larger nucleus,
        then higher score, wins).

    Returns
    -------
    TrackGraph
        Nodes (ids 0..N−1) with ``z, y, x`` (µm), ``covariance`` (N, 3, 3) µm²,
        ``score`` (mean / peak centre probability) and ``tag`` = ``"unlabeled"``.
    """
    cfg = cfg or SpotConfig()
    vs = check_voxel_size(voxel_size)
    pc = _centre_map(prob)
    if not np.all(np.isfinite(pc)):
        raise InvalidInputError("prob contains NaN or infinite values")
    if cfg.mode == "components":
        pos, cov, score = _component_spots(pc, vs, cfg)
    else:
        pos, cov, score = _maxima_spots(pc, vs, cfg)
    n = len(pos)
    graph = TrackGraph.from_positions(
        np.full(n, int(t), np.int64),
        pos.reshape(n, 3),
        covariance=cov.reshape(n, 3, 3),
        score=score,
        tag=np.full(n, "unlabeled"),
    )
    if suppress and cfg.suppression_distance_um > 0 and n > 1:
        graph = suppress_duplicates(graph, cfg.suppression_distance_um)
    return graph


def suppress_duplicates(
    spots: TrackGraph, distance_um: float, *, recheck_tags: bool = False
) -> TrackGraph:
    """Keep one spot per cluster of spots closer than ``distance_um`` in the same frame.

    Priority: a human-reviewed spot (tag other than ``unlabeled``) beats a prediction,
    then the larger nucleus (determinant of the covariance) wins, then the higher
    ``score``, then the smaller row. Two reviewed spots never suppress each other. The
    result equals greedy suppression in priority order, computed by vectorised rounds.

    Parameters
    ----------
    spots : TrackGraph
        Spots (any frames); ``covariance``, ``score`` and ``tag`` are used when present.
    distance_um : float
        Suppression distance (µm).
    recheck_tags : bool
        Apply ELEPHANT's re-check to reviewed spots: reset pessimistically (tp→fn,
        fp→tn, fb→tb), then upgrade the ones that suppressed a prediction (fn→tp,
        tn→fp, tb→fb). Use when ``spots`` holds a frame's annotations plus its new
        predictions.

    Returns
    -------
    TrackGraph
        The kept spots (edges between kept nodes preserved).
    """
    if not isinstance(spots, TrackGraph):
        raise InvalidInputError(f"spots must be a TrackGraph, got {type(spots).__name__}")
    if not np.isfinite(distance_um) or distance_um < 0:
        raise InvalidInputError(f"distance_um must be ≥ 0 µm, got {distance_um}")
    n = spots.num_nodes
    tags = tags_of(spots)
    human = reviewed_mask(tags)
    found = np.zeros(n, bool)  # reviewed spots that suppressed a prediction
    if n == 0 or distance_um == 0:
        out = spots.copy()
        if recheck_tags and n:
            out.set_node_column("tag", recheck(tags, found))
        return out
    volume = (
        np.abs(np.linalg.det(np.asarray(spots.nodes["covariance"], dtype=np.float64)))
        if "covariance" in spots.nodes
        else np.zeros(n)
    )
    has_score = "score" in spots.nodes
    score = np.asarray(spots.nodes["score"], dtype=np.float64) if has_score else np.zeros(n)
    order = np.lexsort((np.arange(n), -score, -volume, ~human))
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)

    pos = spots.positions
    span = float(np.ptp(pos, axis=0).max()) if n else 0.0
    key = np.column_stack([spots.t.astype(np.float64) * (span + 4 * distance_um + 1.0), pos])
    pairs = cKDTree(key).query_pairs(distance_um, output_type="ndarray")
    pairs = pairs[~(human[pairs[:, 0]] & human[pairs[:, 1]])]
    better = rank[pairs[:, 0]] < rank[pairs[:, 1]]
    a = np.where(better, pairs[:, 0], pairs[:, 1])  # the preferred spot of each pair
    b = np.where(better, pairs[:, 1], pairs[:, 0])
    state = np.zeros(n, np.int8)  # 0 undecided, 1 kept, -1 suppressed
    while np.any(state == 0):
        hit = (state[a] == 1) & (state[b] == 0)
        state[b[hit]] = -1
        found[a[hit][~human[b[hit]]]] = True
        blocked = np.zeros(n, bool)
        blocked[b[(state[a] == 0) & (state[b] == 0)]] = True
        state[(state == 0) & ~blocked] = 1
    kept = state == 1
    out = spots.copy()
    if recheck_tags:
        out.set_node_column("tag", np.where(human, recheck(tags, found & human), tags))
    return out.subgraph(nodes=kept)
