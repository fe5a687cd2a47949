"""Build and solve a CP-SAT model from ``min c·z, A z ≤ b, z ∈ {0,1}`` arrays.

The model is written straight into the CP-SAT proto: one loop over rows filling whole
index/coefficient lists (the ortools API has no array-level constraint call).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from ortools.sat.python import cp_model
from scipy import sparse

from celltrack.errors import CelltrackError, ConfigError

__all__ = ["CpSatOutcome", "solve_cpsat"]

logger = logging.getLogger(__name__)

_NEG_INF = -(2**62)


@dataclass
class CpSatOutcome:
    """CP-SAT result on the given arrays (objective and bound in integer units)."""

    status: str  #: OPTIMAL, FEASIBLE, INFEASIBLE, UNKNOWN
    values: np.ndarray | None
    objective: int | None
    bound: int | None
    wall_time_s: float
    build_time_s: float
    stats: dict


def solve_cpsat(
    c: np.ndarray,
    A: sparse.csr_matrix,
    b: np.ndarray,
    *,
    hint: np.ndarray | None = None,
    time_limit_s: float = 60.0,
    num_workers: int = 2,
    random_seed: int = 0,
    linearization_level: int = 2,
    extra: dict | None = None,
    log: bool = False,
) -> CpSatOutcome:
    """Solve the binary program with CP-SAT.

    Parameters
    ----------
    c : ndarray of int64, shape (F,)
    A : csr_matrix of int64, shape (R, F)
    b : ndarray of int64, shape (R,)
    hint : ndarray, shape (F,), optional
        Start solution (``solution_hint``).
    time_limit_s, num_workers, random_seed, linearization_level : CP-SAT parameters.
    extra : dict, optional
        Further SatParameters fields by name.
    log : bool
        Print CP-SAT's search log.
    """
    import time

    t0 = time.perf_counter()
    model = cp_model.CpModel()
    proto = model.proto
    nv = int(c.size)
    for _ in range(nv):
        proto.variables.add().domain.extend((0, 1))
    indptr, indices, data = A.indptr.tolist(), A.indices.tolist(), A.data.tolist()
    rhs = b.tolist()
    for r in range(A.shape[0]):
        lo, hi = indptr[r], indptr[r + 1]
        lin = proto.constraints.add().linear
        lin.vars.extend(indices[lo:hi])
        lin.coeffs.extend(data[lo:hi])
        lin.domain.extend((_NEG_INF, rhs[r]))
    nz = np.flatnonzero(c)
    proto.objective.vars.extend(nz.tolist())
    proto.objective.coeffs.extend(c[nz].tolist())
    if hint is not None:
        proto.solution_hint.vars.extend(range(nv))
        proto.solution_hint.values.extend(np.asarray(hint, np.int64).tolist())
    build = time.perf_counter() - t0

    solver = cp_model.CpSolver()
    params = solver.parameters
    params.max_time_in_seconds = float(time_limit_s)
    params.num_workers = int(num_workers)
    params.random_seed = int(random_seed)
    params.linearization_level = int(linearization_level)
    params.log_search_progress = bool(log)
    for key, value in (extra or {}).items():
        if not hasattr(params, key):
            raise ConfigError(f"'{key}' is not a CP-SAT SatParameters field (cpsat_parameters)")
        setattr(params, key, value)
    status = solver.solve(model)
    name = solver.status_name(status)
    if name == "MODEL_INVALID":  # pragma: no cover - a bug in the builder
        raise CelltrackError(f"internal error: CP-SAT rejected the model: {model.validate()}")
    values = None
    objective = bound = None
    if name in ("OPTIMAL", "FEASIBLE"):
        values = np.asarray(solver.response_proto.solution, dtype=np.int64)[:nv]
        objective = round(solver.objective_value)
        bound = round(solver.best_objective_bound)
    elif name == "INFEASIBLE":
        pass
    stats = {
        "cpsat_variables": nv,
        "cpsat_constraints": int(A.shape[0]),
        "cpsat_branches": int(solver.num_branches),
        "cpsat_conflicts": int(solver.num_conflicts),
    }
    return CpSatOutcome(name, values, objective, bound, float(solver.wall_time), build, stats)
