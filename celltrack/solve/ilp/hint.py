"""Start solutions for CP-SAT: complete a partial edge choice into a feasible assignment."""

from __future__ import annotations

import numpy as np

from celltrack.solve.ilp.model import StandardModel, complete_assignment
from celltrack.solve.ilp.problem import LinkingProblem

__all__ = ["assignment_from_edges", "greedy_assignment"]


def assignment_from_edges(
    model: StandardModel,
    problem: LinkingProblem,
    edges: np.ndarray,
    nodes: np.ndarray | None = None,
) -> np.ndarray:
    """Full 0/1 assignment of all blocks from selected edges (and optionally nodes).

    Nodes are selected if given in ``nodes``, touched by a selected edge, pinned, or
    cheaper selected than not (alone); the other blocks follow from the selection
    (:func:`~celltrack.solve.ilp.model.complete_assignment`). When the model has division
    pairs, a division along a pair that is not a candidate loses its costlier edge.
    """
    edges = np.asarray(edges, bool)
    if "pair" in model.aux:
        edges = _drop_unlisted_divisions(model, problem, edges)
    xs = model.blocks["node"]
    sel = np.zeros(problem.num_nodes, bool) if nodes is None else np.asarray(nodes, bool).copy()
    sel[problem.src[edges]] = True
    sel[problem.tgt[edges]] = True
    sel |= model.lb[xs] == 1
    alone = model.c[xs].copy()
    if "disappear" in model.blocks:
        alone = alone + model.c[model.blocks["disappear"]]
    sel |= (alone < 0) & (model.ub[xs] == 1)
    return complete_assignment(model, problem, sel, edges)


def _drop_unlisted_divisions(
    model: StandardModel, problem: LinkingProblem, edges: np.ndarray
) -> np.ndarray:
    """Keep only divisions along candidate pairs: drop the costlier edge of the others."""
    pairs = model.aux["pair"]
    chosen = np.flatnonzero(edges)
    children = np.bincount(problem.src[chosen], minlength=problem.num_nodes)
    two = chosen[children[problem.src[chosen]] == 2]
    if two.size == 0:
        return edges
    order = np.lexsort((two, problem.src[two]))
    e1, e2 = two[order][0::2], two[order][1::2]
    m = max(problem.num_edges, 1)
    listed = np.isin(np.minimum(e1, e2) * m + np.maximum(e1, e2), pairs.edge1 * m + pairs.edge2)
    ce = model.c[model.blocks["edge"]]
    pinned = model.lb[model.blocks["edge"]] == 1
    drop = np.where((ce[e1] > ce[e2]) & ~pinned[e1] | pinned[e2], e1, e2)
    edges = edges.copy()
    edges[drop[~listed]] = False
    return edges


def greedy_assignment(
    model: StandardModel, problem: LinkingProblem, priority: np.ndarray | None = None
) -> np.ndarray:
    """Greedy feasible solution: take edges in ``priority`` order (default: cheapest first).

    An edge is taken if its parent has < 2 children, its child no parent, it is not
    excluded, and (unless pinned) it lowers the objective: its coefficient, plus the split
    cost for a second child, is negative. One pass over the edges (a Python loop, used
    for hints only).
    """
    ys = model.blocks["edge"]
    ce = model.c[ys].astype(np.float64)
    split = np.zeros(problem.num_nodes)
    if "split" in model.blocks:
        split = model.c[model.blocks["split"]].astype(np.float64)
    key = ce if priority is None else -np.asarray(priority, np.float64)
    pinned = model.lb[ys] == 1
    order = np.lexsort((key, ~pinned))
    allowed = (model.ub[ys] == 1) & (model.ub[model.blocks["node"]][problem.src] == 1)
    allowed &= model.ub[model.blocks["node"]][problem.tgt] == 1
    children = np.zeros(problem.num_nodes, np.int64)
    has_parent = np.zeros(problem.num_nodes, bool)
    take = np.zeros(problem.num_edges, bool)
    src, tgt = problem.src.tolist(), problem.tgt.tolist()
    allowed_l, pinned_l, ce_l = allowed.tolist(), pinned.tolist(), ce.tolist()
    split_l = split.tolist()
    for e in order.tolist():
        u, w = src[e], tgt[e]
        if not allowed_l[e] or has_parent[w] or children[u] >= 2:
            continue
        gain = ce_l[e] + (split_l[u] if children[u] == 1 else 0.0)
        if gain < 0 or pinned_l[e]:
            take[e] = True
            has_parent[w] = True
            children[u] += 1
    return assignment_from_edges(model, problem, take)
