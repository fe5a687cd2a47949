"""Exact reductions of the tree ILP before solving.

- :func:`dominated_edges`: an edge whose total coefficient can never pay off is fixed to 0.
- :func:`dominated_pairs`: a candidate division that can never pay off is fixed to 0.
- :func:`dominated_lone_edges`: with candidate divisions, an edge in none of them whose
  cost can never pay off as a mother's only child is fixed to 0.
- :func:`restrict`: substitute fixed variables, drop empty and redundant rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from celltrack.solve.ilp.model import StandardModel
from celltrack.solve.ilp.problem import LinkingProblem

__all__ = [
    "Restricted",
    "dominated_edges",
    "dominated_lone_edges",
    "dominated_pairs",
    "restrict",
]


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


def _largest_positive_cost(model: StandardModel, block: str) -> int:
    """``max(0, max c)`` over the variables of ``block`` (0 without the block; cost units)."""
    if block not in model.blocks:
        return 0
    costs = model.c[model.blocks[block]]
    return max(0, int(costs.max())) if costs.size else 0


#: blocks whose costs :func:`dominated_pairs` accounts for
PAIR_DOMINANCE_BLOCKS = frozenset(
    {"node", "edge", "split", "disappear", "pair", "short_track", "short_daughter",
     "short_daughter_cut"}
)


def dominated_pairs(model: StandardModel, problem: LinkingProblem) -> np.ndarray:
    """Candidate divisions (``pair`` variables) that some optimal solution leaves out, bool (P,).

    Take any feasible solution in which mother u divides along pair k = (u; e₁, e₂),
    e_i = (u → w_i), and drop edge e_i: w_i becomes a track start, u keeps one child. It
    stays feasible (p_k, s_u → 0, no other pair of u is taken, d_u stays 0) and the
    objective changes by ``−c_{e_i} − c_{p_k} − c_{s_u} + ΔS`` where ``c_{e_i}`` is the
    edge's total coefficient (its cost minus w_i's track-start cost, which the appear
    expression moves onto edges). Only two segments change shape — w_i's new track and
    u's track, now continuing into the other daughter — so the short-track variables add
    at most ``ΔS ≤ 2 · max(0, max c_q)``; the short-daughter variables only lose
    daughters (their costs are ≥ 0: they can only fall). If
    ``c_{p_k} + c_{s_u} + c_{e_i} ≥ 2 · max(0, max c_q)`` for i = 1 or 2 the change is
    ≤ 0, and applying the move to every taken dominated pair in turn (each move removes a
    division and creates none) turns an optimal solution into one without them, so
    ``p_k = 0`` may be fixed for all of them at once. Only valid for the blocks in
    :data:`PAIR_DOMINANCE_BLOCKS`; pairs with a pinned edge or split are never touched.

    Parameters
    ----------
    model : StandardModel
        Integer model with a ``pair`` block (its ``aux["pair"]`` a
        :class:`~celltrack.solve.ilp.pair_definition.PairSet`).
    problem : LinkingProblem

    Returns
    -------
    ndarray of bool, shape (P,)
        True where ``p_k = 0`` may be fixed (all False without a ``pair`` block or with
        blocks the argument does not cover).
    """
    if "pair" not in model.blocks:
        return np.zeros(0, bool)
    pairs = model.aux["pair"]
    if not PAIR_DOMINANCE_BLOCKS.issuperset(model.blocks) or pairs.size == 0:
        return np.zeros(pairs.size, bool)
    c, lb = model.c, model.lb
    if "short_daughter" in model.blocks and np.any(c[model.blocks["short_daughter"]] < 0):
        return np.zeros(pairs.size, bool)
    slack = 2 * _largest_positive_cost(model, "short_track")
    e, s, pv = model.blocks["edge"].start, model.blocks["split"].start, model.blocks["pair"]
    base = c[pv] + c[s + pairs.mother]
    movable = (lb[pv] == 0) & (lb[s + pairs.mother] == 0)
    drop = np.zeros(pairs.size, bool)
    for edge in (pairs.edge1, pairs.edge2):
        drop |= (lb[e + edge] == 0) & (base + c[e + edge] >= slack)
    return drop & movable




def dominated_lone_edges(
    model: StandardModel, problem: LinkingProblem, ub: np.ndarray
) -> np.ndarray:
    """Edges in no free candidate division that some optimal solution leaves out, bool (E,).

    With a ``pair`` block a mother divides only along a taken pair and every selected
    child of a dividing mother is in it (:mod:`.pair_definition`), so an edge
    e = (u → w) that is in no pair with ``ub > 0`` can only be selected as u's only child.
    Dropping it from any feasible solution keeps it feasible (w becomes a track start, u
    ends; no division appears or vanishes) and changes the objective by
    ``−c_e + c_X,u + ΔS``, ``c_e`` the edge's total coefficient (its cost minus w's
    track-start cost, which the appear expression moves onto edges), ``c_X,u`` u's
    disappear cost. Only u's track (now ending at u) and w's (now starting at w) change
    shape, so the short-track variables add at most ``2 · max(0, max c_q)`` and the
    short-daughter variables at most ``max(0, max c_sd)`` (u's track may now end within
    k frames of its division; the shared-child cut variables carry no cost). If
    ``c_e ≥ max(0, c_X,u) + ΔS`` the change is ≤ 0; each move removes one edge and
    creates no division, so applied to every such edge in turn it turns an optimal
    solution (with the pairs fixed by :func:`dominated_pairs` off) into one without them,
    and ``y_e = 0`` may be fixed for all at once. Only valid for the blocks in
    :data:`PAIR_DOMINANCE_BLOCKS`; pinned edges are never touched.

    Parameters
    ----------
    model : StandardModel
        Integer model with a ``pair`` block.
    problem : LinkingProblem
    ub : ndarray of int64, shape (V,)
        Current upper bounds (pairs fixed to 0 have ``ub = 0``).

    Returns
    -------
    ndarray of bool, shape (E,)
        True where ``y_e = 0`` may be fixed (all False without a ``pair`` block or with
        blocks the argument does not cover).
    """
    none = np.zeros(problem.num_edges, bool)
    if "pair" not in model.blocks or not PAIR_DOMINANCE_BLOCKS.issuperset(model.blocks):
        return none
    pairs = model.aux["pair"]
    free_pair = ub[model.blocks["pair"]] > 0
    in_pair = none.copy()
    in_pair[pairs.edge1[free_pair]] = True
    in_pair[pairs.edge2[free_pair]] = True
    c, e = model.c, model.blocks["edge"]
    worst = np.zeros(problem.num_nodes, np.int64)
    may_end = np.ones(problem.num_nodes, bool)
    if "disappear" in model.blocks:
        worst = np.maximum(worst, c[model.blocks["disappear"]])
        may_end = ub[model.blocks["disappear"]] > 0
    free = (model.lb[e] == 0) & (ub[e] > 0) & may_end[problem.src]
    # u's track may end within k frames of its start or of its division, w's may be short
    slack = 2 * _largest_positive_cost(model, "short_track") + _largest_positive_cost(
        model, "short_daughter"
    )
    return free & ~in_pair & (c[e] >= worst[problem.src] + slack)


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
    A = sparse.csr_matrix(model.A)
    b = model.b - A @ values  # the fixed variables' share (free ones are 0 in values)
    # each row's largest and smallest activity over the free 0/1 variables
    is_free = (~fixed).astype(np.int64)
    max_act = sparse.csr_matrix((np.maximum(A.data, 0), A.indices, A.indptr), A.shape) @ is_free
    min_act = sparse.csr_matrix((np.minimum(A.data, 0), A.indices, A.indptr), A.shape) @ is_free
    infeasible = np.flatnonzero(min_act > b)
    keep = np.flatnonzero(max_act > b)  # rows that can still bind
    return Restricted(
        free=free,
        c=model.c[free],
        A=A[keep][:, free],
        b=b[keep],
        constant=int(np.dot(model.c[fixed], values[fixed])),
        fixed_values=values,
        infeasible_rows=infeasible,
    )
