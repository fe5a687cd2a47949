"""Fast synthetic candidate graphs for block-wise tests and scale benchmarks.

Cells follow a coherent flow (a slow rotation plus drift) with random-walk noise, divide
at a given rate (a random cell leaves per division, so the count stays constant), are
missed now and then, and false detections are sprinkled uniformly. Candidate edges join
detections in consecutive frames closer than ``radius_um`` (one :class:`cKDTree` per frame
pair). Everything is vectorised per frame, so 10⁶ nodes take a few seconds.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from celltrack.errors import InvalidInputError
from celltrack.graph import TrackGraph

__all__ = ["synthetic_candidates"]


def synthetic_candidates(
    num_frames: int,
    cells_per_frame: int,
    *,
    ndim: int = 3,
    spacing_um: float = 10.0,
    step_um: float = 2.0,
    radius_um: float = 8.0,
    division_rate: float = 0.02,
    miss_rate: float = 0.02,
    false_rate: float = 0.05,
    seed: int | np.random.Generator = 0,
) -> TrackGraph:
    """A random candidate graph with ground-truth-like structure.

    Parameters
    ----------
    num_frames : int
        Frames T (>= 1).
    cells_per_frame : int
        True cells per frame (>= 1); the box is sized for a mean spacing of
        ``spacing_um``.
    ndim : {2, 3}
        Spatial dimensions (2: z = 0 for every node).
    spacing_um : float
        Mean distance between neighbouring cells (µm).
    step_um : float
        Random-walk step per frame and axis (µm, standard deviation).
    radius_um : float
        Candidate edge radius (µm).
    division_rate, miss_rate, false_rate : float
        Per cell and frame: probability to divide, to be missed, and false detections
        per true cell.
    seed : int or numpy.random.Generator
        Randomness.

    Returns
    -------
    TrackGraph
        Node columns ``id, t, z, y, x, score, true`` (``true``: not a false detection);
        edge columns ``distance``, ``pred_distance`` (µm, equal), ``frame_gap`` (1).
        ``attrs["roi_um"]`` is the box.
    """
    if num_frames < 1 or cells_per_frame < 1 or ndim not in (2, 3):
        raise InvalidInputError(
            f"need num_frames >= 1, cells_per_frame >= 1 and ndim in (2, 3); got "
            f"{num_frames}, {cells_per_frame}, {ndim}"
        )
    rng = np.random.default_rng(seed)
    side = spacing_um * cells_per_frame ** (1.0 / ndim)
    lo = np.zeros(3)
    hi = np.array([side if ndim == 3 else 0.0, side, side])
    centre = (lo + hi) / 2
    active = hi > lo
    pos = rng.uniform(lo, hi, size=(cells_per_frame, 3))
    frames_t, frames_pos, frames_true = [], [], []
    angle = 0.01  # rad per frame: a slow rotation about the z axis (coherent flow)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    for t in range(num_frames):
        if t:
            rel = pos[:, 1:] - centre[1:]
            pos[:, 1:] = centre[1:] + rel @ rot.T
            pos += rng.normal(0.0, step_um, size=pos.shape) * active
            divide = rng.random(len(pos)) < division_rate
            if divide.any():
                offset = rng.normal(0.0, spacing_um / 4, size=(int(divide.sum()), 3)) * active
                daughters = pos[divide] + offset
                pos[divide] -= offset
                leave = rng.choice(len(pos), size=len(daughters), replace=False)
                pos[leave] = daughters
            # reflect at the box faces so the density stays uniform
            pos = np.where(pos < lo, 2 * lo - pos, pos)
            pos = np.where(pos > hi, 2 * hi - pos, pos)
            pos = np.clip(pos, lo, hi)
        seen = pos[rng.random(len(pos)) >= miss_rate]
        n_false = rng.binomial(len(pos), false_rate)
        false = rng.uniform(lo, hi, size=(n_false, 3))
        frames_pos.append(np.concatenate([seen, false]))
        frames_true.append(np.r_[np.ones(len(seen), bool), np.zeros(n_false, bool)])
        frames_t.append(np.full(len(seen) + n_false, t, np.int64))
    t_all = np.concatenate(frames_t)
    pos_all = np.concatenate(frames_pos)
    true = np.concatenate(frames_true)
    score = np.where(true, rng.uniform(0.6, 1.0, true.size), rng.uniform(0.0, 0.5, true.size))
    starts = np.cumsum([0] + [len(p) for p in frames_pos])
    sources, targets, dists = [], [], []
    for t in range(1, num_frames):
        prev = cKDTree(frames_pos[t - 1])
        cur = cKDTree(frames_pos[t])
        pairs = cur.sparse_distance_matrix(prev, radius_um, output_type="ndarray")
        targets.append(pairs["i"].astype(np.int64) + starts[t])
        sources.append(pairs["j"].astype(np.int64) + starts[t - 1])
        dists.append(pairs["v"].astype(np.float64))
    src = np.concatenate(sources) if sources else np.zeros(0, np.int64)
    tgt = np.concatenate(targets) if targets else np.zeros(0, np.int64)
    dist = np.concatenate(dists) if dists else np.zeros(0)
    nodes = {
        "id": np.arange(t_all.size, dtype=np.int64),
        "t": t_all,
        "z": pos_all[:, 0],
        "y": pos_all[:, 1],
        "x": pos_all[:, 2],
        "score": score,
        "true": true,
    }
    edges = {
        "source": src,
        "target": tgt,
        "distance": dist,
        "pred_distance": dist.copy(),
        "frame_gap": np.ones(src.size, np.int64),
    }
    roi = [[0.0, float(num_frames - 1)], *[[float(a), float(b)] for a, b in zip(lo, hi)]]
    return TrackGraph(nodes, edges, attrs={"roi_um": roi}, validate=False)
