"""Track persistence: a track that ends within k frames of its start pays.

A *segment* is a run of selected nodes v₀ → v₁ → … → v_j joined by continuation edges
(each v_{i−1} has exactly one child). For every candidate path π = (v₀, e₁, …, e_j) with
j < k edges that ends at a node v_j whose track end is not free (not in the last frame,
not at the border, not ``disappear_free``) and starts at a node whose track start is not
free, a variable q_π ≥ 0 gets the cost c_S ≥ 0 and the row::

    q_π ≥ [j = 0] x_{v₀} + Σ_{i=1..j} y_{e_i} − max(j − 1, 0)
          − Σ_{e∈in(v₀)} y_e − Σ_{i=1..j} Σ_{e∈out(v_{i−1}), e≠e_i} y_e − Σ_{e∈out(v_j)} y_e

The right side is 1 exactly when the track starts at v₀ (no parent), follows π without
a second child anywhere and ends at v_j (no child), i.e. when the track has j + 1 ≤ k
nodes; any other selection makes it ≤ 0. With c_S ≥ 0 the optimum puts
q_π = max(0, right side), so the term adds exactly c_S per short track (k = 1: tracks of
one node, k = 2: of one or two nodes, …). Negative c_S is refused: it would make q free.
The rows use the edges themselves rather than the appear/disappear indicators, which keeps
the LP relaxation tight (for k ≤ 2 there is no product of two fractional quantities: a
lone node's row is ``q ≥ x − Σ_{in} y − Σ_{out} y``).

:mod:`.short_daughter` prices the same segments when they start at a division.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from celltrack.solve.ilp.model import ModelArrays
from celltrack.solve.ilp.problem import LinkingProblem

__all__ = ["Paths", "ShortTrackCost", "candidate_paths", "derive_paths", "incident", "path_rows"]


@dataclass
class Paths:
    """Candidate paths of fewer than k edges (P paths).

    Attributes
    ----------
    start, end : ndarray of int64, shape (P,)
        First and last node row.
    edges : ndarray of int64, shape (P, k − 1)
        Edge indices along the path, −1 past its length.
    length : ndarray of int64, shape (P,)
        Number of edges j.
    kind : str
        ``"appear"`` (the segment starts a track) or ``"daughter"`` (it starts at a division).
    """

    start: np.ndarray
    end: np.ndarray
    edges: np.ndarray
    length: np.ndarray
    kind: str

    @property
    def size(self) -> int:
        """Number of paths P."""
        return int(self.start.size)


def candidate_paths(
    problem: LinkingProblem,
    frames: int,
    starts: np.ndarray,
    end_ok: np.ndarray,
    kind: str,
) -> Paths:
    """All candidate paths with fewer than ``frames`` edges from ``starts`` to ``end_ok``.

    Parameters
    ----------
    problem : LinkingProblem
    frames : int
        k ≥ 1: paths of 0 … k − 1 edges.
    starts, end_ok : ndarray of bool, shape (N,)
        Nodes a path may start at / end at.
    kind : str
        Stored in the result.
    """
    src = problem.src
    order = np.argsort(src, kind="stable")
    outdeg = np.bincount(src, minlength=problem.num_nodes)
    first = np.concatenate([[0], np.cumsum(outdeg)])[:-1]
    width = max(frames - 1, 0)
    level_start = np.flatnonzero(starts)
    level_edges = np.full((level_start.size, width), -1, np.int64)
    level_end = level_start.copy()
    out_s, out_e, out_edges, out_len = [], [], [], []
    for j in range(frames):
        keep = end_ok[level_end]
        out_s.append(level_start[keep])
        out_e.append(level_end[keep])
        out_edges.append(level_edges[keep])
        out_len.append(np.full(int(keep.sum()), j, np.int64))
        if j == frames - 1:
            break
        counts = outdeg[level_end]
        rep = np.repeat(np.arange(level_end.size), counts)
        within = np.arange(rep.size) - np.repeat(np.cumsum(counts) - counts, counts)
        edge = order[first[level_end[rep]] + within]
        level_start = level_start[rep]
        level_edges = level_edges[rep].copy()
        level_edges[:, j] = edge
        level_end = problem.tgt[edge]
    start = np.concatenate(out_s)
    return Paths(
        start=start,
        end=np.concatenate(out_e),
        edges=np.concatenate(out_edges, axis=0).reshape(start.size, width),
        length=np.concatenate(out_len),
        kind=kind,
    )


def incident(
    nodes: np.ndarray, index: np.ndarray, order: np.ndarray, degree: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(position in ``nodes``, edge) for every edge incident to each of ``nodes``.

    ``order`` sorts the edges by the endpoint in ``index`` (src or tgt), ``degree`` counts
    them per node.
    """
    first = np.concatenate([[0], np.cumsum(degree)])[:-1]
    cnt = degree[nodes]
    rep = np.repeat(np.arange(nodes.size), cnt)
    within = np.arange(rep.size) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    return rep, order[first[nodes[rep]] + within]


def path_rows(
    model: ModelArrays, paths: Paths, q: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """COO rows (row r = path r) of the parts shared by both persistence terms::

        Σ_i y_{e_i} − Σ_i Σ_{out(v_{i−1}) ∖ e_i} y − Σ_{out(v_j)} y − q

    The start part (track start or daughter) and the right side are the caller's.
    """
    p = model.problem
    y = model.var("edge")
    out_order = np.argsort(p.src, kind="stable")
    outdeg = np.bincount(p.src, minlength=p.num_nodes)
    r_path, c_path = np.nonzero(paths.edges >= 0)
    e = paths.edges[r_path, c_path]
    # every child edge of every node on the path but the last, and of the last node
    inner_rep, inner_e = incident(p.src[e], p.src, out_order, outdeg)
    last_rep, last_e = incident(paths.end, p.src, out_order, outdeg)
    r = np.arange(paths.size)
    rows = np.concatenate([r_path, r_path[inner_rep], r_path, r[last_rep], r])
    cols = np.concatenate([y[e], y[inner_e], y[e], y[last_e], q])
    coefs = np.concatenate(
        [np.ones(e.size), -np.ones(inner_e.size), np.ones(e.size), -np.ones(last_e.size),
         -np.ones(paths.size)]
    )
    return rows, cols, coefs


def derive_paths(
    paths: Paths, problem: LinkingProblem, nodes: np.ndarray, edges: np.ndarray
) -> np.ndarray:
    """q_π for a selection: 1 where the segment starts at v₀, follows π and ends at v_j."""
    children = np.bincount(problem.src[edges], minlength=problem.num_nodes)
    has_parent = np.zeros(problem.num_nodes, bool)
    has_parent[problem.tgt[edges]] = True
    if paths.kind == "appear":
        start_ok = nodes & ~has_parent
    else:
        par = np.full(problem.num_nodes, -1, np.int64)
        par[problem.tgt[edges]] = problem.src[edges]
        start_ok = has_parent & (children[np.maximum(par, 0)] == 2)
    ok = start_ok[paths.start] & nodes[paths.end] & (children[paths.end] == 0)
    valid = paths.edges >= 0
    e = np.where(valid, paths.edges, 0)
    step = edges[e] & (children[problem.src[e]] == 1)
    ok &= np.all(step | ~valid, axis=1)
    return ok.astype(np.int64)


class ShortTrackCost:
    """Cost ``c_S`` per track of at most ``frames`` nodes (see the module docstring).

    Parameters
    ----------
    cost : float
        c_S ≥ 0 (cost units per short track).
    frames : int
        k ≥ 1.
    start_free, end_free : ndarray of bool, shape (N,)
        Nodes whose track start / end is free (such tracks are not priced).
    """

    name = "short_track"

    def __init__(
        self, cost: float, frames: int, start_free: np.ndarray, end_free: np.ndarray
    ) -> None:
        if cost < 0:
            raise ValueError(f"short_track_cost must be ≥ 0, got {cost}")
        self.cost, self.frames = float(cost), int(frames)
        self.start_free, self.end_free = np.asarray(start_free, bool), np.asarray(end_free, bool)

    def features(self, model: ModelArrays) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``{"short_track_cost": (q indices, ones)}``; creates the block and its rows."""
        if not model.has(self.name):
            p = model.problem
            paths = candidate_paths(p, self.frames, ~self.start_free, ~self.end_free, "appear")
            model.aux[self.name] = paths
            q = model.var(self.name, size=paths.size)
            rows, cols, coefs = path_rows(model, paths, q)
            # + [j = 0] x_{v0} − Σ_{in(v0)} y_e ≤ max(j − 1, 0)
            x, y = model.var("node"), model.var("edge")
            lone = np.flatnonzero(paths.length == 0)
            in_order = np.argsort(p.tgt, kind="stable")
            indeg = np.bincount(p.tgt, minlength=p.num_nodes)
            rep, e_in = incident(paths.start, p.tgt, in_order, indeg)
            model.add_rows(
                self.name,
                np.concatenate([rows, lone, rep]),
                np.concatenate([cols, x[paths.start[lone]], y[e_in]]),
                np.concatenate([coefs, np.ones(lone.size), -np.ones(rep.size)]),
                np.maximum(paths.length - 1, 0),
            )
        q = model.var(self.name)
        return {"short_track_cost": (q, np.ones(q.size))}

    def apply(self, model: ModelArrays) -> None:
        """Add c_S to every path variable."""
        (index, values), = self.features(model).values()
        model.add_costs(self.name, index, self.cost * values)


ModelArrays.derivations["short_track"] = derive_paths
