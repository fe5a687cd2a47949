"""Time-window decomposition of the LP relaxation, stitched by exact dual bounds.

HiGHS' dual simplex grows faster than linearly with the model (≈ N^1.3 on candidate
graphs), while the tree ILP is local in time. :func:`windowed_multipliers` therefore
solves the LP on overlapping time windows and stitches their row multipliers:

1. ⌈frames / ``window``⌉ windows whose cores (consecutive frame ranges) hold about the
   same number of variables — a growing embryo's late frames get shorter cores, so no
   window dominates the time (:func:`balanced_cores`) — each extended by ``overlap``
   frames on both sides; every window's LP holds the variables in its extended frame
   range and the rows whose variables all lie in it; a row takes its multiplier from the
   window whose core holds the row's first frame;
2. seam repair: at every boundary between two cores, the rows within ``seam`` frames of
   it are re-optimised with all other multipliers fixed — the LP over the seam's variables
   with the reduced costs ``c + A_outᵀ μ_out`` — which is block-coordinate ascent on the
   Lagrangian dual and removes the mismatch of the two windows' multipliers.

The multipliers are a dual *guess*: whatever they are, the bound is recomputed from them
exactly over all rows (:func:`~celltrack.solve.ilp.lp.exact_dual`), so it is always
valid; on candidate graphs it usually equals the LP optimum. The primal values are the windows'
core values (a start for the heuristics, not an LP optimum); around the seams, where two
windows' values meet, the local search repairs them exactly. Frames of the variables come
from :func:`variable_frames`; models with blocks it does not know are solved without windows.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from celltrack.solve.ilp.model import StandardModel
from celltrack.solve.ilp.problem import LinkingProblem

__all__ = ["balanced_cores", "variable_frames", "windowed_multipliers"]


def _block_frames(name: str, aux: object, problem: LinkingProblem) -> np.ndarray | None:
    """Frame of each variable of one block, or None for a block without a frame.

    A node's variables take its frame, an edge its child's; a candidate division its
    daughters' frame; a short-track or short-daughter path its first node's; a
    shared-child cut variable z_{k,d,c} the frame of the shared child c.
    """
    t = problem.t
    if name in ("node", "split", "disappear"):
        return t
    if name == "edge":
        return t[problem.tgt]
    if name == "pair":
        return t[aux.daughter1]
    if name in ("short_track", "short_daughter"):
        return t[aux.start]
    if name == "short_daughter_cut":
        return t[problem.tgt[np.concatenate([aux.edge_a, aux.edge_b])]]
    return None


def variable_frames(model: StandardModel, problem: LinkingProblem) -> np.ndarray | None:
    """Frame of every model variable, int64 (V,), or None if a block has no frame.

    See :func:`_block_frames` for the frame of each block's variables.
    """
    frames = np.zeros(model.num_vars, np.int64)
    for name, block in model.blocks.items():
        mine = _block_frames(name, model.aux.get(name), problem)
        if mine is None or mine.size != block.stop - block.start:
            return None
        frames[block] = mine
    return frames


def balanced_cores(frames: np.ndarray, window: int) -> np.ndarray:
    """Core boundaries of the LP windows, int64 (W + 1,): core i is frames [b_i, b_{i+1}).

    W = ⌈(frame span) / ``window``⌉ cores, cut where the cumulative variable count crosses
    multiples of 1/W of the total, so each core holds about the same number of variables;
    every core keeps at least one frame.

    Parameters
    ----------
    frames : ndarray of int64, shape (F,)
        Frame of every variable.
    window : int
        Mean core length (frames).
    """
    lo, hi = int(frames.min()), int(frames.max()) + 1
    n = -(-(hi - lo) // int(window))
    counts = np.cumsum(np.bincount(frames - lo, minlength=hi - lo))
    targets = counts[-1] * np.arange(1, n) / n
    cuts = lo + 1 + np.searchsorted(counts, targets, side="left")
    previous = lo
    for i in range(n - 1):  # strictly increasing, at least one frame per core
        cuts[i] = previous = min(max(int(cuts[i]), previous + 1), hi - (n - 1 - i))
    return np.concatenate([[lo], cuts, [hi]]).astype(np.int64)


def _row_frames(A, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last frame of the variables of each row."""
    coo = A.tocoo()
    first = np.full(A.shape[0], np.iinfo(np.int64).max, np.int64)
    last = np.full(A.shape[0], np.iinfo(np.int64).min, np.int64)
    np.minimum.at(first, coo.row, frames[coo.col])
    np.maximum.at(last, coo.row, frames[coo.col])
    return first, last


def windowed_multipliers(
    c: np.ndarray,
    A,
    b: np.ndarray,
    frames: np.ndarray,
    *,
    window: int,
    overlap: int,
    seam: int,
    time_limit_s: float,
    workers: int = 1,
    presolve: bool = False,
) -> tuple[np.ndarray, np.ndarray, dict] | None:
    """Primal values and row multipliers from windowed LPs (see module docstring).

    Parameters
    ----------
    c : ndarray of float, shape (F,)
    A : csr_matrix of float, shape (R, F)
    b : ndarray of float, shape (R,)
    frames : ndarray of int64, shape (F,)
        Frame of every variable.
    window, overlap, seam : int
        Mean core length (:func:`balanced_cores`), extension on each side and half-width
        of the seam repair (frames).
    time_limit_s : float
        Budget of all windows together (s).
    workers : int
        Windows solved at the same time (threads).
    presolve : bool
        HiGHS' own presolve.

    Returns
    -------
    (values, mu, seams, stats) or None
        ``seams``: the variables of the seam repairs (the windows' values there may not
        fit together); None if a window's LP failed (the caller then solves the LP whole).
    """
    from celltrack.solve.ilp.lp import _highs

    t_end = time.perf_counter() + float(time_limit_s)
    A = A.tocsr()
    first, last = _row_frames(A, frames)
    bounds = balanced_cores(frames, window)
    cores = list(zip(bounds[:-1].tolist(), bounds[1:].tolist()))
    values = np.where(c < 0, 1.0, 0.0)
    mu = np.zeros(A.shape[0])
    AT = A.T.tocsr()

    def solve_window(core: tuple[int, int]):
        lo, hi = core[0] - overlap, core[1] + overlap
        cols = np.flatnonzero((frames >= lo) & (frames < hi))
        rows = np.flatnonzero((first >= lo) & (last < hi))
        if rows.size == 0:
            return core, cols, rows, values[cols], np.zeros(0)
        sub = A[rows][:, cols]
        x, m, _ = _highs(c[cols], sub, b[rows], max(1e-3, t_end - time.perf_counter()), presolve)
        return core, cols, rows, x, m

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, int(workers))) as pool:
        # the largest windows first, so threads do not wait on one started last
        sizes = np.diff(np.searchsorted(np.sort(frames), bounds))
        results = list(pool.map(solve_window, [cores[i] for i in np.argsort(-sizes)]))
    for (start, stop), cols, rows, x, m in results:
        if x is None:
            return None
        core_rows = (first[rows] >= start) & (first[rows] < stop)
        mu[rows[core_rows]] = m[core_rows]
        core_cols = (frames[cols] >= start) & (frames[cols] < stop)
        values[cols[core_cols]] = x[core_cols]
    t_windows = time.perf_counter() - t0

    # seam repair, one boundary after the other (each uses the multipliers fixed so far)
    t0 = time.perf_counter()
    seams: list[np.ndarray] = []
    for start in bounds[1:-1].tolist():
        lo, hi = start - seam, start + seam
        cols = np.flatnonzero((frames >= lo) & (frames < hi))
        rows = np.flatnonzero((first >= lo) & (last < hi))
        if rows.size == 0 or cols.size == 0:
            continue
        mu_out = mu.copy()
        mu_out[rows] = 0.0
        # reduced costs of the seam's variables with every other row's multiplier fixed
        r_cols = c[cols] + AT[cols] @ mu_out
        left = max(1e-3, t_end - time.perf_counter())
        x, m, _ = _highs(r_cols, A[rows][:, cols], b[rows], left, presolve)
        if x is None:
            return None
        mu[rows] = m
        seams.append(cols)
    stats = {
        "lp_windows": len(cores),
        "lp_window_time": t_windows,
        "lp_seam_time": time.perf_counter() - t0,
    }
    seam_cols = np.unique(np.concatenate(seams)) if seams else np.zeros(0, np.int64)
    return values, mu, seam_cols, stats
