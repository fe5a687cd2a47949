"""Local integrality: close the LP gap around the few places where the LP is fractional.

When the LP optimum is fractional, the fractional variables form small clusters (e.g. a
half-selected division whose two half-selected daughters merge into one node). Around
each cluster a neighbourhood of rows is taken (``hops`` rounds of "rows touching these
variables, then all variables of those rows"). Two things are computed from it:

- a start solution (:func:`local_repair`): every variable outside the neighbourhoods keeps
  its (integral) LP value, CP-SAT solves the neighbourhoods exactly;
- a stronger *certified* lower bound (:func:`local_lagrangian_bound`): the rows outside
  the neighbourhoods are relaxed with the LP multipliers μ (Lagrangian relaxation), the
  neighbourhood rows stay hard. With ``r = c + A_outᵀ μ_out``::

      c·z ≥ −μ_out·b_out + Σ_{j ∉ V_S} min(0, r_j)
            + min{ Σ_{j ∈ V_S} r_j z_j : A_S z ≤ b_S, z ∈ {0,1} }

  for every feasible z; the last term is solved by CP-SAT (its proven bound is used, with
  the costs rounded down to integers, so the result stays a valid bound). With the LP's
  μ this is never weaker than the LP bound and removes the fractional clusters' gap.
"""

from __future__ import annotations

import math

import numpy as np

from celltrack.solve.ilp.cpsat import solve_cpsat
from celltrack.solve.ilp.lp import float_margin
from celltrack.solve.ilp.presolve import Restricted

#: extra integer resolution of the neighbourhood problem's costs: at least 2¹⁰, at most
#: 2²⁰, the largest power of two that keeps Σ|costs| within float64's exact integers (2⁵²)
_REFINE_MIN, _REFINE_MAX = 2**10, 2**20


def refine_factor(costs: np.ndarray) -> int:
    """Integer resolution for the neighbourhood costs ``costs`` (see ``_REFINE_MIN``).

    Rounding every cost down loses less than ``1 / factor`` per variable, so a fine
    resolution keeps the local bound from falling short of an integral optimum by a
    few units just through rounding.
    """
    total = float(np.sum(np.abs(costs))) + 1.0
    factor = 2 ** max(0, math.floor(52 - math.log2(total)))
    return int(min(_REFINE_MAX, max(_REFINE_MIN, factor)))

__all__ = [
    "LocalBound",
    "fractional_neighbourhood",
    "local_lagrangian_bound",
    "local_repair",
    "refine_factor",
]


def fractional_neighbourhood(
    rest: Restricted, values: np.ndarray, hops: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rows and variables (restricted-model indices) around the fractional LP values.

    Parameters
    ----------
    rest : Restricted
        Model the LP was solved on.
    values : ndarray, shape (F,)
        LP values of its variables.
    hops : int
        Expansion rounds (≥ 1).

    Returns
    -------
    rows : ndarray of int64
        Rows kept hard; every variable of these rows is in ``variables``.
    variables : ndarray of int64
        Variables of those rows (a superset of the fractional ones).
    """
    pattern = (rest.A != 0).astype(np.int8).tocsr()
    pattern_t = pattern.T.tocsr()
    nvars = rest.c.size
    inside = np.abs(values - np.rint(values)) > 1e-6
    rows = np.zeros(pattern.shape[0], bool)
    for _ in range(max(1, hops)):
        rows = np.asarray(pattern @ inside.astype(np.int8)).ravel() > 0
        inside = np.asarray(pattern_t @ rows.astype(np.int8)).ravel() > 0
    return np.flatnonzero(rows), np.flatnonzero(inside[:nvars])


def local_repair(
    rest: Restricted,
    values: np.ndarray,
    variables: np.ndarray,
    *,
    time_limit_s: float,
    num_workers: int,
    random_seed: int = 0,
) -> np.ndarray | None:
    """Best solution that keeps the LP values outside ``variables`` (restricted indices).

    Returns the full assignment of the restricted model's free variables, or None.
    """
    free = np.zeros(rest.c.size, bool)
    free[variables] = True
    outside = np.rint(values).astype(np.int64)
    # rows: b' = b − A_out · z_out; keep rows that touch the neighbourhood
    A_in = rest.A[:, free]
    b_in = rest.b - rest.A[:, ~free] @ outside[~free]
    touched = np.diff(A_in.tocsr().indptr) > 0
    if np.any(b_in[~touched] < 0):
        return None  # the rounded outside alone breaks a row
    out = solve_cpsat(
        rest.c[free],
        A_in.tocsr()[touched],
        b_in[touched],
        time_limit_s=time_limit_s,
        num_workers=num_workers,
        random_seed=random_seed,
    )
    if out.values is None:
        return None
    z = outside.copy()
    z[free] = out.values
    return z


class LocalBound:
    """Result of :func:`local_lagrangian_bound` (restricted-model units)."""

    def __init__(
        self, bound_float: float, reduced: np.ndarray, variables: np.ndarray, proven: bool
    ) -> None:
        self.bound_float = bound_float  #: certified bound incl. the restricted constant
        self.reduced = reduced  #: r_j outside the neighbourhood, 0 inside (F,)
        self.variables = variables  #: the neighbourhood variables
        self.proven = proven  #: CP-SAT proved the neighbourhood optimum

    @property
    def bound(self) -> int:
        """The bound rounded up (costs are integers)."""
        return math.ceil(self.bound_float)


def local_lagrangian_bound(
    rest: Restricted,
    mu: np.ndarray,
    rows: np.ndarray,
    variables: np.ndarray,
    *,
    time_limit_s: float,
    num_workers: int,
    random_seed: int = 0,
) -> LocalBound | None:
    """Lagrangian bound with the neighbourhood rows kept hard (see module docstring)."""
    A = rest.A.astype(np.float64)
    c = rest.c.astype(np.float64)
    b = rest.b.astype(np.float64)
    mu_out = np.asarray(mu, np.float64).copy()
    mu_out[rows] = 0.0
    r = c + A.T @ mu_out
    inside = np.zeros(c.size, bool)
    inside[variables] = True
    separable = float(np.sum(np.minimum(0.0, r[~inside])))
    magnitude = float(np.sum(np.abs(c)) + np.sum(abs(A).T @ mu_out) + np.dot(mu_out, np.abs(b)))
    # integer costs for CP-SAT at a finer resolution, rounded down so its optimum bounds
    # the float one from below (loss < 1 / refine per variable; refine is a power of two,
    # so refine · r is exact, and float_margin covers the rounding of r itself)
    r_in = r[variables]
    refine = refine_factor(r_in)
    c_in = np.floor(refine * r_in - 1e-12 * np.abs(refine * r_in) - 1e-6).astype(np.int64)
    A_in = rest.A[rows][:, variables].tocsr()
    out = solve_cpsat(
        c_in,
        A_in,
        rest.b[rows],
        time_limit_s=time_limit_s,
        num_workers=num_workers,
        random_seed=random_seed,
    )
    if out.status == "INFEASIBLE":
        return None
    if out.bound is None:  # no bound: fall back to relaxing the neighbourhood too
        local = float(np.sum(np.minimum(0, c_in))) / refine
    else:
        local = float(out.bound) / refine
    bound = -float(np.dot(mu_out, b)) + separable + local - float_margin(magnitude)
    reduced = np.where(inside, 0.0, r)
    return LocalBound(
        bound + rest.constant, reduced, variables, proven=out.status == "OPTIMAL"
    )


