"""Exact reductions of the tree ILP before solving.

- :func:`dominated_edges`: an edge whose total coefficient can never pay off is fixed to 0.
- :func:`restrict`: substitute fixed variables, drop empty and redundant rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from celltrack.solve.ilp.model import StandardModel
from celltrack.solve.ilp.problem import LinkingProblem

__all__ = ["Restricted", "dominated_edges", "restrict"]


def dominated_edges(model: StandardModel, problem: LinkingProblem) -> np.ndarray:
    """Edges that some optimal solution leaves out, bool (E,).

    Dropping a selected edge e = (u → w) from any feasible solution keeps it feasible
    (w becomes a track start, u loses a child) and changes the objective by
    ``−c_e + [u divided] · (−c_D,u) + [e was u's only child] · c_X,u``, where ``c_e`` is the
    edge's total coefficient (edge cost minus w's track-start cost, which the appear
    expression moves onto edges). If ``c_e ≥ max(0, −c_D,u, c_X,u)`` the change is ≤ 0, so
    an optimal solution without e exists and ``y_e = 0`` may be fixed. Only valid for the
    built-in blocks (node, edge, split, disappear); pinned edges are never touched.
    """
    if problem.num_edges == 0:
        return np.zeros(0, bool)
    c = model.c
    ce = c[model.blocks["edge"]]
    worst = np.zeros(problem.num_nodes, np.int64)
    if "split" in model.blocks:
        worst = np.maximum(worst, -c[model.blocks["split"]])
    if "disappear" in model.blocks:
        worst = np.maximum(worst, c[model.blocks["disappear"]])
    e = model.blocks["edge"]
    free = model.lb[e] == 0
    return free & (ce >= worst[problem.src])


@dataclass
class Restricted:
    """The model on its free variables only (fixed ones substituted).

    Attributes
    ----------
    free : ndarray of int64
        Indices (in the full model) of the free variables, shape (F,).
    c : ndarray of int64, shape (F,)
    A : csr_matrix, shape (R', F)
    b : ndarray of int64, shape (R',)
    constant : int
        Objective contribution of the fixed variables.
    fixed_values : ndarray of int64, shape (V,)
        Full assignment with fixed variables at their value (free ones 0).
    infeasible_rows : ndarray
        Rows violated by the fixed variables alone (non-empty ⇒ infeasible).
    """

    free: np.ndarray
    c: np.ndarray
    A: sparse.csr_matrix
    b: np.ndarray
    constant: int
    fixed_values: np.ndarray
    infeasible_rows: np.ndarray

    def expand(self, z_free: np.ndarray) -> np.ndarray:
        """Full assignment from values of the free variables."""
        z = self.fixed_values.copy()
        z[self.free] = z_free
        return z


def restrict(model: StandardModel, lb: np.ndarray, ub: np.ndarray) -> Restricted:
    """Substitute variables with ``lb == ub`` and drop rows that can no longer bind."""
    fixed = lb == ub
    free = np.flatnonzero(~fixed)
    values = np.where(fixed, lb, 0).astype(np.int64)
    A = model.A.tocsc()
    b = model.b - A[:, fixed] @ values[fixed] if np.any(fixed) else model.b.copy()
    Af = A[:, free].tocsr()
    pos = Af.copy()
    pos.data = np.maximum(pos.data, 0)
    max_act = np.asarray(pos.sum(axis=1)).ravel()
    neg = Af.copy()
    neg.data = np.minimum(neg.data, 0)
    min_act = np.asarray(neg.sum(axis=1)).ravel()
    infeasible = np.flatnonzero(min_act > b)
    keep = max_act > b  # rows that can still bind
    return Restricted(
        free=free,
        c=model.c[free],
        A=Af[keep],
        b=b[keep],
        constant=int(np.dot(model.c[fixed], values[fixed])),
        fixed_values=values,
        infeasible_rows=infeasible,
    )
