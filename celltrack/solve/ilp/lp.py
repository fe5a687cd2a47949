"""LP relaxation (HiGHS via SciPy), a certified Lagrangian lower bound and reduced-cost fixing.

For the model ``min c·z, A z ≤ b, lb ≤ z ≤ ub`` any multipliers ``μ ≥ 0`` give the bound
``c·z ≥ −μ·b + Σ_j min(r_j lb_j, r_j ub_j)`` with reduced costs ``r = c + Aᵀμ``. The bound is
recomputed here from the LP duals in float64 with a safety margin, so it does not rely on
the LP solver's tolerances; costs are integers, so the bound is rounded up.

Reduced-cost fixing: if moving z_j off the bound its reduced cost favours would cost at
least ``|r_j|`` above the bound, and ``bound + |r_j| > incumbent − 1``, no solution strictly
better than the incumbent moves z_j, so z_j may be fixed (exact).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linprog

from celltrack.solve.ilp.presolve import Restricted

__all__ = ["LPResult", "reduced_cost_fixing", "solve_lp"]

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
        Lagrangian bound before rounding (minus the safety margin).
    reduced : ndarray, shape (V,)
        Reduced costs ``c + Aᵀμ``.
    integral : bool
        Whether the LP solution is integral.
    message : str
    mu : ndarray
        Row multipliers (≥ 0) on the rows of the restricted model the LP was solved on.
    """

    ok: bool
    values: np.ndarray
    bound: int | None
    bound_float: float
    reduced: np.ndarray
    integral: bool
    message: str
    mu: np.ndarray | None = None


def float_margin(magnitude: float) -> float:
    """Safety margin for a Lagrangian bound computed in float64 from terms of this size.

    Rounding errors of the reduced costs and of the (pairwise) sums stay far below
    ``1e-12 · magnitude``; the margin makes the rounded-up bound a proof.
    """
    return 1e-12 * magnitude + 1e-6


def solve_lp(rest: Restricted, num_vars: int, time_limit_s: float) -> LPResult:
    """Solve the LP relaxation of a restricted model and certify its bound.

    Values and reduced costs are returned for all ``num_vars`` variables of the full model
    (fixed variables at their value with reduced cost 0); the bound includes the fixed
    variables' constant.
    """
    c = rest.c.astype(np.float64)
    A = rest.A.astype(np.float64)
    b = rest.b.astype(np.float64)
    lb, ub = np.zeros(c.size), np.ones(c.size)
    empty = np.zeros(num_vars)
    if A.shape[0] == 0:
        values = np.where(c < 0, ub, lb).astype(np.float64)
        mu = np.zeros(0)
    else:
        res = linprog(
            c,
            A_ub=A,
            b_ub=b,
            bounds=np.column_stack([lb, ub]).astype(np.float64),
            method="highs",
            options={"time_limit": float(time_limit_s), "presolve": True},
        )
        if res.status != 0 or res.x is None:
            return LPResult(False, empty, None, -math.inf, empty, False, str(res.message))
        values = res.x
        mu = np.maximum(-np.asarray(res.ineqlin.marginals, np.float64), 0.0)
    reduced = c + (A.T @ mu if mu.size else 0.0)
    terms = np.minimum(reduced * lb, reduced * ub)
    raw = float(-np.dot(mu, b) + np.sum(terms))
    # float64 rounding in r and in the sums is far below 1e-12 of these magnitudes
    magnitude = float(np.sum(np.abs(c)))
    if mu.size:
        magnitude += float(np.sum(abs(A).T @ mu) + np.dot(mu, np.abs(b)))
    bound_float = raw - float_margin(magnitude)
    integral = bool(np.all(np.abs(values - np.rint(values)) < 1e-6))
    full_values = rest.fixed_values.astype(np.float64)
    full_values[rest.free] = values
    full_reduced = np.zeros(num_vars)
    full_reduced[rest.free] = reduced
    bound_float += rest.constant
    return LPResult(
        True,
        full_values,
        math.ceil(bound_float),
        bound_float,
        full_reduced,
        integral,
        "optimal",
        mu,
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
    r = lp.reduced
    free = lb < ub
    slack = lp.bound_float + np.abs(r) * (ub - lb) - 1e-6 * (1.0 + np.abs(r))
    decisive = slack > upper - 1
    to_low = free & decisive & (r > 0) & (incumbent == lb)
    to_high = free & decisive & (r < 0) & (incumbent == ub)
    lb, ub = lb.copy(), ub.copy()
    ub[to_low] = lb[to_low]
    lb[to_high] = ub[to_high]
    return lb, ub, int(to_low.sum() + to_high.sum())
