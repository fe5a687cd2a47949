"""Start solutions for CP-SAT: complete a partial edge choice into a feasible assignment."""

from __future__ import annotations

import numpy as np

from celltrack.solve.ilp.model import StandardModel
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
    cheaper selected than not (alone); split and disappear follow from the degrees.
    """
    edges = np.asarray(edges, bool)
    z = np.zeros(model.num_vars, np.int64)
    xs, ys = model.blocks["node"], model.blocks["edge"]
    sel = np.zeros(problem.num_nodes, bool) if nodes is None else np.asarray(nodes, bool).copy()
    sel[problem.src[edges]] = True
    sel[problem.tgt[edges]] = True
    sel |= model.lb[xs] == 1
    alone = model.c[xs].copy()
    if "disappear" in model.blocks:
        alone = alone + model.c[model.blocks["disappear"]]
    sel |= (alone < 0) & (model.ub[xs] == 1)
    z[xs] = sel
    z[ys] = edges
    children = np.bincount(problem.src[edges], minlength=problem.num_nodes)
    if "split" in model.blocks:
        z[model.blocks["split"]] = children == 2
    if "disappear" in model.blocks:
        z[model.blocks["disappear"]] = sel & (children == 0)
    return z


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
