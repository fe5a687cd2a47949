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
from celltrack.solve.ilp.lp import exact_dual, exact_sum
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


#: neighbourhood problems are solved per connected component, tiny ones batched up to this
#: many variables (CP-SAT solves one component at a time much faster than many at once)
_LOCAL_BATCH = 100


def solve_by_components(
    c: np.ndarray,
    A,
    b: np.ndarray,
    *,
    time_limit_s: float,
    num_workers: int,
    random_seed: int = 0,
) -> tuple[str, np.ndarray | None, int | None]:
    """CP-SAT on each connected component of ``min c·z, A z ≤ b, z ∈ {0,1}`` (batched).

    The neighbourhoods of many fractional clusters are independent: solved apart, each is
    tiny, and their optima and proven bounds add up.

    Returns
    -------
    status : str
        "OPTIMAL" if every batch was solved to optimality, "INFEASIBLE" if one is
        infeasible, "FEASIBLE" if all have a solution, else "UNKNOWN".
    values : ndarray of int64, shape (F,), or None
        A solution (None unless every batch found one).
    bound : int or None
        Sum of the batches' proven lower bounds (a batch without one counts
        ``Σ min(0, c)``).
    """
    import time

    from celltrack.solve.ilp.lp import component_groups, components

    c = np.asarray(c, np.int64)
    A = A.tocsr()
    count, var_label, row_label = components(A, c.size)
    groups = component_groups(var_label, count, batch=_LOCAL_BATCH)
    deadline = time.perf_counter() + float(time_limit_s)
    values: np.ndarray | None = np.zeros(c.size, np.int64)
    bound = 0
    statuses = set()
    for group in groups:
        member = np.zeros(count, bool)
        member[group] = True
        cols = np.flatnonzero(member[var_label])
        rows = np.flatnonzero((row_label >= 0) & member[np.maximum(row_label, 0)])
        out = solve_cpsat(
            c[cols],
            A[rows][:, cols],
            b[rows],
            time_limit_s=max(0.5, deadline - time.perf_counter()),
            num_workers=num_workers,
            random_seed=random_seed,
        )
        statuses.add(out.status)
        if out.status == "INFEASIBLE":
            return "INFEASIBLE", None, None
        if out.values is None:
            values = None
        elif values is not None:
            values[cols] = out.values
        bound += int(out.bound) if out.bound is not None else int(np.minimum(c[cols], 0).sum())
    if statuses <= {"OPTIMAL"}:
        status = "OPTIMAL"
    elif values is not None:
        status = "FEASIBLE"
    else:
        status = "UNKNOWN"
    return status, values, bound


def fractional_neighbourhood(
    rest: Restricted, values: np.ndarray, hops: int, seeds: np.ndarray | None = None
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
    seeds : ndarray of int64, optional
        Further variables to start from (e.g. those at the seams of a windowed LP, whose
        values are integral but may not fit together).

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
    if seeds is not None:
        inside[seeds] = True
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
    _, z_in, _ = solve_by_components(
        rest.c[free],
        A_in.tocsr()[touched],
        b_in[touched],
        time_limit_s=time_limit_s,
        num_workers=num_workers,
        random_seed=random_seed,
    )
    if z_in is None:
        return None
    z = outside.copy()
    z[free] = z_in
    return z


class LocalBound:
    """Result of :func:`local_lagrangian_bound` (restricted-model units)."""

    def __init__(
        self,
        bound_float: float,
        reduced: np.ndarray,
        variables: np.ndarray,
        proven: bool,
        *,
        denominator: int = 0,
        reduced_scaled: np.ndarray | None = None,
        bound_scaled: int | None = None,
    ) -> None:
        self.bound_float = bound_float  #: certified bound incl. the restricted constant
        self.reduced = reduced  #: r_j outside the neighbourhood, 0 inside (F,)
        self.variables = variables  #: the neighbourhood variables
        self.proven = proven  #: CP-SAT proved the neighbourhood optimum
        self.denominator = denominator  #: D of the exact certificate (0: none)
        self.reduced_scaled = reduced_scaled  #: D · reduced exactly, int64 (F,)
        self.bound_scaled = bound_scaled  #: D · bound exactly (incl. the constant)

    @property
    def bound(self) -> int:
        """The bound rounded up (costs are integers)."""
        if self.denominator and self.bound_scaled is not None:
            return -((-self.bound_scaled) // self.denominator)
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
    mu_out = np.asarray(mu, np.float64).copy()
    mu_out[rows] = 0.0
    exact = exact_dual(rest.c, rest.A, rest.b, mu_out)
    denominator = exact.denominator
    r_int = exact.reduced  # D · r, exact
    inside = np.zeros(rest.c.size, bool)
    inside[variables] = True
    separable = exact_sum(np.minimum(0, r_int[~inside]))
    # integer costs for CP-SAT at a finer resolution ``refine`` (a power of two ≤ D),
    # rounded down so its optimum bounds the exact one from below (loss < 1 / refine
    # per variable): c_in = floor(refine · r / 1) = floor(r_int · refine / D), a shift
    r_in = r_int[variables]
    refine = min(refine_factor(r_in.astype(np.float64) / denominator), denominator)
    shift = int(math.log2(denominator // refine))
    c_in = np.right_shift(r_in, shift)
    A_in = rest.A[rows][:, variables].tocsr()
    status, _, local = solve_by_components(
        c_in,
        A_in,
        rest.b[rows],
        time_limit_s=time_limit_s,
        num_workers=num_workers,
        random_seed=random_seed,
    )
    if status == "INFEASIBLE" or local is None:
        return None
    mub = exact_sum(exact.mu * rest.b) if exact.mu.size else 0
    bound_scaled = (
        -mub + separable + local * (denominator // refine) + denominator * int(rest.constant)
    )
    reduced_scaled = np.where(inside, 0, r_int).astype(np.int64)
    return LocalBound(
        bound_scaled / denominator,
        reduced_scaled.astype(np.float64) / denominator,
        variables,
        proven=status == "OPTIMAL",
        denominator=denominator,
        reduced_scaled=reduced_scaled,
        bound_scaled=bound_scaled,
    )
