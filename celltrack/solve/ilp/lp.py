"""LP relaxation (HiGHS via SciPy), a certified Lagrangian lower bound and reduced-cost fixing.

For the model ``min c·z, A z ≤ b, lb ≤ z ≤ ub`` any multipliers ``μ ≥ 0`` give the bound
``c·z ≥ −μ·b + Σ_j min(r_j lb_j, r_j ub_j)`` with reduced costs ``r = c + Aᵀμ``. The bound is
recomputed here from the LP duals in *exact integer arithmetic* (:func:`exact_dual`): the
multipliers are rounded to multiples of ``1 / D`` (``D`` a power of two), so ``D·r``, ``D·μ·b``
and ``D·bound`` are integers, computed without any rounding error (int64 elements, sums in
Python integers). The bound is therefore a proof that does not rely on the LP solver's
tolerances nor on a float safety margin; costs are integers, so it is rounded up.

Reduced-cost fixing: if moving z_j off the bound its reduced cost favours would cost at
least ``|r_j|`` above the bound, and ``bound + |r_j| > incumbent − 1``, no solution strictly
better than the incumbent moves z_j, so z_j may be fixed (exact; compared in the same
integers).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linprog

from celltrack.solve.ilp.presolve import Restricted

__all__ = ["ExactDual", "LPResult", "exact_dual", "exact_sum", "reduced_cost_fixing", "solve_lp"]

logger = logging.getLogger(__name__)


@dataclass
class LPResult:
    """Relaxation outcome.

    Attributes
    ----------
    ok : bool
        False if HiGHS failed (then only ``message`` is meaningful).
    values : ndarray, shape (V,)
        LP solution.
    bound : int or None
        Certified integer lower bound on the ILP optimum.
    bound_float : float
        The exact Lagrangian bound ``bound_scaled / denominator`` as a float (display).
    reduced : ndarray, shape (V,)
        Reduced costs ``c + Aᵀμ``.
    integral : bool
        Whether the LP solution is integral.
    message : str
    mu : ndarray
        Row multipliers (≥ 0) on the rows of the restricted model the LP was solved on.
    denominator : int
        ``D`` of the exact certificate (a power of two; 0 when there is none).
    reduced_scaled : ndarray of int64, shape (V,), or None
        ``D · r`` exactly (0 for fixed variables).
    bound_scaled : int or None
        ``D ·`` the Lagrangian bound exactly (incl. the fixed variables' constant); ``bound``
        is its ceiling divided by ``D``.
    info : dict
        Statistics of a windowed solve (``lp_windows``, ``lp_window_time``, ``lp_seam_time``).
    uncertain : ndarray of int64 or None
        Variables (restricted-model indices) whose values may not fit together (the seams
        of a windowed solve); the local search starts from them too.
    """

    ok: bool
    values: np.ndarray
    bound: int | None
    bound_float: float
    reduced: np.ndarray
    integral: bool
    message: str
    mu: np.ndarray | None = None
    denominator: int = 0
    reduced_scaled: np.ndarray | None = None
    bound_scaled: int | None = None
    info: dict = field(default_factory=dict)
    uncertain: np.ndarray | None = None


def exact_sum(values: np.ndarray) -> int:
    """Exact sum of an int64 array as a Python integer (no int64 overflow).

    Elements are summed in int64 chunks small enough never to overflow, the chunk sums
    as Python integers.
    """
    values = np.asarray(values, np.int64).ravel()
    if values.size == 0:
        return 0
    peak = int(np.max(np.abs(values)))
    chunk = max(1, (2**62) // (peak + 1))
    if chunk >= values.size:
        return int(np.sum(values))
    starts = np.arange(0, values.size, chunk)
    return sum(int(v) for v in np.add.reduceat(values, starts))


@dataclass
class ExactDual:
    """An exact Lagrangian certificate in units of ``1 / denominator``.

    Attributes
    ----------
    denominator : int
        ``D``, a power of two.
    mu : ndarray of int64, shape (R,)
        ``D · μ`` (≥ 0), the rounded multipliers.
    reduced : ndarray of int64, shape (F,)
        ``D · r = D · c + Aᵀ (D μ)``, exact.
    bound : int
        ``D ·`` the bound ``−μ·b + Σ_j min(0, r_j)`` (binary variables), exact.
    """

    denominator: int
    mu: np.ndarray
    reduced: np.ndarray
    bound: int

    @property
    def ceiling(self) -> int:
        """The bound rounded up to an integer (costs are integers)."""
        return -((-self.bound) // self.denominator)


#: largest magnitude of one element in the exact certificate (2^61: sums of two fit int64)
_EXACT_PEAK = 2**61
#: finest resolution of the rounded multipliers (D ≤ 2^40)
_EXACT_MAX_SHIFT = 40


def exact_dual(c: np.ndarray, A, b: np.ndarray, mu: np.ndarray) -> ExactDual:
    """Exact Lagrangian bound of ``min c·z, A z ≤ b, z ∈ {0, 1}`` from multipliers ``mu``.

    ``μ`` is rounded to the nearest multiple of ``1 / D`` with ``D = 2^k`` as fine as int64
    allows (every element of ``D·c``, ``Aᵀ(Dμ)`` and ``Dμ·b`` below 2^61); any ``μ ≥ 0`` gives a
    valid bound, so the rounding only costs ``≤ Σ_j Σ_i |A_ij| / (2D)`` of strength, never
    validity.

    Parameters
    ----------
    c : ndarray of int64, shape (F,)
    A : sparse matrix of int64, shape (R, F)
    b : ndarray of int64, shape (R,)
    mu : ndarray of float, shape (R,)
        Multipliers (negative or non-finite entries are treated as 0).
    """
    from scipy import sparse

    c = np.asarray(c, np.int64)
    b = np.asarray(b, np.int64)
    mu = np.nan_to_num(np.asarray(mu, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    mu = np.maximum(mu, 0.0)
    A = sparse.csr_matrix(A, dtype=np.int64)
    abs_a = abs(A)
    col_weight = float(np.max(np.asarray(abs_a.sum(axis=0)).ravel())) if A.nnz else 0.0
    cmax = float(np.max(np.abs(c))) if c.size else 0.0
    bmax = float(np.max(np.abs(b))) if b.size else 0.0
    mmax = float(np.max(mu)) if mu.size else 0.0
    peak = cmax + (col_weight + bmax) * (mmax + 1.0) + 1.0
    shift = min(_EXACT_MAX_SHIFT, math.floor(math.log2(_EXACT_PEAK / (4.0 * peak))))
    if shift < 0:  # absurd multipliers: shrink them (still a valid bound)
        mu = mu * 2.0**shift
        shift = 0
    denominator = 2**shift
    mu_int = np.rint(mu * denominator).astype(np.int64)
    reduced = denominator * c + (A.T.tocsr() @ mu_int if mu_int.size else 0)
    reduced = np.asarray(reduced, np.int64)
    bound = -exact_sum(mu_int * b) + exact_sum(np.minimum(reduced, 0))
    return ExactDual(denominator, mu_int, reduced, bound)


def float_margin(magnitude: float) -> float:
    """Safety margin for a Lagrangian bound computed in float64 from terms of this size.

    No longer used by the certificates (they are exact, :func:`exact_dual`); kept for
    callers that bound float sums.

    Rounding errors of the reduced costs and of the (pairwise) sums stay far below
    ``1e-12 · magnitude``; the margin makes the rounded-up bound a proof.
    """
    return 1e-12 * magnitude + 1e-6


#: components of at most this many variables are solved together in one LP
_BATCH_VARIABLES = 20000


def components(A, num_vars: int) -> tuple[int, np.ndarray, np.ndarray]:
    """Connected components of a model's variable–row graph.

    Two variables are connected when a row holds both; a row belongs to the component of
    its variables (a row without variables gets label −1).

    Parameters
    ----------
    A : sparse matrix, shape (R, F)
    num_vars : int
        F.

    Returns
    -------
    count : int
        Number of components (isolated variables are components of their own).
    var_label : ndarray of int64, shape (F,)
    row_label : ndarray of int64, shape (R,)
    """
    from scipy import sparse
    from scipy.sparse.csgraph import connected_components

    coo = sparse.coo_matrix(A)
    num_rows = A.shape[0]
    n = num_rows + num_vars
    graph = sparse.coo_matrix(
        (np.ones(coo.nnz, np.int8), (coo.row, num_rows + coo.col)), shape=(n, n)
    )
    _, label = connected_components(graph, directed=False)
    var_label = label[num_rows:]
    # renumber by the variables' components only (rows always join one of them)
    uniq, var_label = np.unique(var_label, return_inverse=True)
    lookup = np.full(n, -1, np.int64)
    lookup[uniq] = np.arange(uniq.size)
    row_label = lookup[label[:num_rows]]
    return int(uniq.size), var_label.astype(np.int64), row_label


def component_groups(
    var_label: np.ndarray, count: int, batch: int = _BATCH_VARIABLES
) -> list[np.ndarray]:
    """Group component labels into LPs: large components alone, small ones together.

    Returns a list of arrays of component labels, each group holding at most ``batch``
    variables unless it is a single component larger than that.
    """
    sizes = np.bincount(var_label, minlength=count)
    order = np.argsort(-sizes, kind="stable")
    groups: list[np.ndarray] = []
    big = order[sizes[order] > batch]
    groups.extend(np.array([k]) for k in big.tolist())
    small = order[sizes[order] <= batch]
    current: list[int] = []
    filled = 0
    for k, size in zip(small.tolist(), sizes[small].tolist()):  # one pass, consecutive runs
        if current and filled + size > batch:
            groups.append(np.array(current, np.int64))
            current, filled = [], 0
        current.append(k)
        filled += size
    if current:
        groups.append(np.array(current, np.int64))
    return groups


def _highs(c, A, b, time_limit_s: float, presolve: bool = False):
    """One HiGHS LP over binaries relaxed to [0, 1]: values and row multipliers (≥ 0)."""
    res = linprog(
        c,
        A_ub=A,
        b_ub=b,
        bounds=(0.0, 1.0),
        method="highs",
        options={"time_limit": float(time_limit_s), "presolve": bool(presolve)},
    )
    if res.status != 0 or res.x is None:
        return None, None, str(res.message)
    mu = np.maximum(-np.asarray(res.ineqlin.marginals, np.float64), 0.0)
    return np.asarray(res.x, np.float64), mu, "optimal"


def solve_lp(
    rest: Restricted,
    num_vars: int,
    time_limit_s: float,
    *,
    split: bool = True,
    frames: np.ndarray | None = None,
    window: int = 0,
    overlap: int = 2,
    seam: int = 2,
    workers: int = 1,
    presolve: bool = False,
) -> LPResult:
    """Solve the LP relaxation of a restricted model and certify its bound.

    Values and reduced costs are returned for all ``num_vars`` variables of the full model
    (fixed variables at their value with reduced cost 0); the bound includes the fixed
    variables' constant.

    With ``split`` the LP is solved per connected component of the variable–row graph
    (:func:`components`; small components batched, :func:`component_groups`). The LP is
    block diagonal, so the concatenated optimal solutions and multipliers are optimal for
    the whole LP: the same bound, certified once over all rows.

    With ``frames`` (frame of every free variable) and ``window > 0``, a model spanning at
    least two windows is solved on overlapping time windows stitched by seam repair
    (:func:`.windows.windowed_multipliers`, ``overlap``/``seam`` frames, ``workers``
    threads; ``presolve``: HiGHS' own presolve, off by default): the bound is still
    certified exactly from the stitched multipliers; it is
    the LP optimum when the seams repair exactly (stat ``lp_windows``), and the values
    are then a start, not necessarily an LP optimum.
    """
    import time

    c = rest.c.astype(np.float64)
    A = rest.A.astype(np.float64).tocsr()
    b = rest.b.astype(np.float64)
    empty = np.zeros(num_vars)
    values = np.where(c < 0, 1.0, 0.0)
    mu = np.zeros(A.shape[0])
    info: dict = {}
    windowed = None
    if (
        A.shape[0] > 0
        and frames is not None
        and window > 0
        and frames.size
        and int(frames.max()) - int(frames.min()) + 1 >= 2 * window
    ):
        from celltrack.solve.ilp.windows import windowed_multipliers

        windowed = windowed_multipliers(
            c,
            A,
            b,
            np.asarray(frames, np.int64),
            window=window,
            overlap=overlap,
            seam=seam,
            time_limit_s=time_limit_s,
            workers=workers,
            presolve=presolve,
        )
    uncertain = None
    if windowed is not None:
        values, mu, uncertain, info = windowed
    elif A.shape[0] > 0:
        t_end = time.perf_counter() + float(time_limit_s)
        if split:
            count, var_label, row_label = components(rest.A, c.size)
            groups = component_groups(var_label, count)
        else:
            var_label = row_label = None
            groups = [None]
        for group in groups:
            if group is None:
                cols, rows = np.arange(c.size), np.arange(A.shape[0])
            else:
                member = np.zeros(max(count, 1), bool)
                member[group] = True
                cols = np.flatnonzero(member[var_label])
                rows = np.flatnonzero(member[np.maximum(row_label, 0)] & (row_label >= 0))
            if rows.size == 0:
                continue  # unconstrained variables: at the bound their cost favours
            sub = A[rows][:, cols]
            left = max(1e-3, t_end - time.perf_counter())
            x, m, message = _highs(c[cols], sub, b[rows], left, presolve)
            if x is None:
                return LPResult(False, empty, None, -math.inf, empty, False, message)
            values[cols] = x
            mu[rows] = m
    exact = exact_dual(rest.c, rest.A, rest.b, mu)
    denominator = exact.denominator
    bound_scaled = exact.bound + denominator * int(rest.constant)
    bound_float = bound_scaled / denominator
    reduced = exact.reduced.astype(np.float64) / denominator
    integral = bool(np.all(np.abs(values - np.rint(values)) < 1e-6))
    full_values = rest.fixed_values.astype(np.float64)
    full_values[rest.free] = values
    full_reduced = np.zeros(num_vars)
    full_reduced[rest.free] = reduced
    reduced_scaled = np.zeros(num_vars, np.int64)
    reduced_scaled[rest.free] = exact.reduced
    return LPResult(
        True,
        full_values,
        -((-bound_scaled) // denominator),
        bound_float,
        full_reduced,
        integral,
        "optimal",
        mu,
        denominator,
        reduced_scaled,
        bound_scaled,
        info,
        uncertain,
    )


def reduced_cost_fixing(
    lp: LPResult, incumbent: np.ndarray, upper: int, lb: np.ndarray, ub: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int]:
    """Fix variables that cannot move in any solution better than the incumbent.

    Parameters
    ----------
    lp : LPResult
        Relaxation with reduced costs and certified bound.
    incumbent : ndarray of int64, shape (V,)
        A feasible solution of objective ``upper``.
    upper : int
        Its objective.
    lb, ub : ndarray of int64
        Current bounds.

    Returns
    -------
    lb, ub : ndarray of int64
        Tightened bounds (the incumbent stays feasible).
    count : int
        Number of newly fixed variables.
    """
    free = lb < ub
    if lp.denominator and lp.reduced_scaled is not None and lp.bound_scaled is not None:
        # exact: D·bound + |D·r_j| > D·(upper − 1)
        threshold = lp.denominator * (int(upper) - 1) - int(lp.bound_scaled)
        r_int = lp.reduced_scaled
        if threshold < 0:
            decisive = np.ones(r_int.size, bool)
        elif threshold >= 2**62:
            decisive = np.zeros(r_int.size, bool)
        else:
            decisive = np.abs(r_int) > threshold
        positive, negative = r_int > 0, r_int < 0
    else:
        r = lp.reduced
        slack = lp.bound_float + np.abs(r) * (ub - lb) - 1e-6 * (1.0 + np.abs(r))
        decisive = slack > upper - 1
        positive, negative = r > 0, r < 0
    to_low = free & decisive & positive & (incumbent == lb)
    to_high = free & decisive & negative & (incumbent == ub)
    lb, ub = lb.copy(), ub.copy()
    ub[to_low] = lb[to_low]
    lb[to_high] = ub[to_high]
    return lb, ub, int(to_low.sum() + to_high.sum())
