"""Division-pair variables: one binary per (mother, two candidate child edges), exactly.

A division of mother u into the children of edges e₁ = (u → w₁) and e₂ = (u → w₂) is the
variable p_k, k = (u, e₁, e₂), of the block ``pair``. Only *candidate pairs* get a
variable (:func:`candidate_pairs`): per mother the ``max_children`` cheapest candidate
children, and of their pairs those whose daughter displacements w₁ − u and w₂ − u make an
angle with cosine ≤ ``max_cos``. A division along any other pair is forbidden.

Rows added (P(u) the pairs of mother u, P(e) the pairs containing edge e, s_u the split
indicator, y_e the edges)::

    Σ_{k∈P(u)} p_k = s_u                        (u divides ⇔ one of its pairs is taken)
    Σ_{k∈P(e)} p_k ≤ y_e                        (a taken pair selects both its edges)
    y_e + s_u − Σ_{k∈P(e)} p_k ≤ 1              (a child of a dividing u is in its pair)

for every mother u with a candidate pair and every edge e out of such a mother (P(e) may
be empty: then the last row reads y_e + s_u ≤ 1). Mothers with two or more candidate
children but no candidate pair get s_u = 0 as a bound.

Exactness: if s_u = 0 all p_k of u vanish. If s_u = 1, u has exactly two selected children
(:class:`~celltrack.solve.ilp.constraints.MaxChildren`), so every pair of u but theirs
contains an unselected edge and is 0 by the second row; the first row then takes their
pair (which must be a candidate: the third row forbids a selected child outside every
taken pair). So p_k = y_{e₁} ∧ y_{e₂} ∧ s_u for every k, and the *daughter* indicator of a
node, ``δ_w = Σ_{k : w ∈ k} p_k`` (w is a daughter of a division), is an exact linear
expression with no variable of its own. The third row is implied for integers; it keeps
the LP from splitting a division across pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from celltrack.solve.ilp.model import ModelArrays
from celltrack.solve.ilp.problem import LinkingProblem

__all__ = ["DivisionPairs", "PairSet", "candidate_pairs", "daughter_matrix"]


@dataclass
class PairSet:
    """Candidate divisions as arrays (P pairs).

    Attributes
    ----------
    mother : ndarray of int64, shape (P,)
        Row of the dividing node u.
    edge1, edge2 : ndarray of int64, shape (P,)
        The two child edges (edge1 < edge2).
    daughter1, daughter2 : ndarray of int64, shape (P,)
        Their child nodes w₁, w₂.
    separation : ndarray, shape (P,)
        ‖w₁ − w₂‖ (µm).
    offset : ndarray, shape (P,)
        ‖u − (w₁ + w₂)/2‖, the mother's offset from the daughters' midpoint (µm).
    angle : ndarray, shape (P,)
        (1 + cos θ)/2 ∈ [0, 1], θ the angle between w₁ − u and w₂ − u (0: opposite
        directions, 1: the same direction; 0.5 when a displacement is zero).
    ratio : ndarray, shape (P,)
        1 − min(‖w₁ − u‖, ‖w₂ − u‖)/max(…) ∈ [0, 1] (0: the daughters moved equally far).
    """

    mother: np.ndarray
    edge1: np.ndarray
    edge2: np.ndarray
    daughter1: np.ndarray
    daughter2: np.ndarray
    separation: np.ndarray
    offset: np.ndarray
    angle: np.ndarray
    ratio: np.ndarray

    @property
    def size(self) -> int:
        """Number of pairs P."""
        return int(self.mother.size)


def candidate_pairs(
    problem: LinkingProblem,
    edge_cost: np.ndarray,
    *,
    max_children: int,
    max_cos: float,
    include: np.ndarray | None = None,
) -> PairSet:
    """Candidate divisions of every node (vectorised, no loop over nodes).

    Parameters
    ----------
    problem : LinkingProblem
    edge_cost : ndarray, shape (E,)
        Ranking of a mother's candidate children (lowest first), e.g. ``pred_distance``.
    max_children : int
        Children per mother considered (≥ 2).
    max_cos : float
        Largest cosine of the angle between the two daughter displacements (−1 … 1).
    include : ndarray of int64, shape (K, 2), optional
        Edge pairs (same mother) always kept, e.g. the ground-truth divisions when
        learning costs.

    Returns
    -------
    PairSet
    """
    src, tgt = problem.src, problem.tgt
    m = problem.num_edges
    order = np.lexsort((np.arange(m), edge_cost, src))
    counts = np.bincount(src, minlength=problem.num_nodes)
    starts = np.concatenate([[0], np.cumsum(counts)])[:-1]
    rank = np.empty(m, np.int64)
    rank[order] = np.arange(m) - starts[src[order]]
    kept = order[rank[order] < max_children]  # still grouped by mother, ranked
    _mothers, first, sizes = np.unique(src[kept], return_index=True, return_counts=True)
    e1_all, e2_all = [], []
    for size in np.unique(sizes[sizes >= 2]).tolist():
        group = first[sizes == size]
        i, j = np.triu_indices(size, 1)
        e1_all.append(kept[group[:, None] + i[None, :]].ravel())
        e2_all.append(kept[group[:, None] + j[None, :]].ravel())
    if include is not None and len(include):
        inc = np.asarray(include, np.int64).reshape(-1, 2)
        e1_all.append(inc[:, 0])
        e2_all.append(inc[:, 1])
    if e1_all:
        a, b = np.concatenate(e1_all), np.concatenate(e2_all)
    else:
        a = b = np.zeros(0, np.int64)
    e1, e2 = np.minimum(a, b), np.maximum(a, b)
    pos = problem.positions
    u = src[e1]
    w1, w2 = tgt[e1], tgt[e2]
    d1, d2 = pos[w1] - pos[u], pos[w2] - pos[u]
    n1, n2 = np.linalg.norm(d1, axis=1), np.linalg.norm(d2, axis=1)
    denom = n1 * n2
    cos = np.divide(np.sum(d1 * d2, axis=1), denom, out=np.zeros(e1.size), where=denom > 0)
    keep = cos <= max_cos
    if include is not None and len(include):
        forced = np.zeros(e1.size, bool)
        forced[e1.size - len(inc):] = True
        keep |= forced
    # one variable per (e1, e2): drop duplicates (forced pairs may repeat candidates)
    key = e1 * max(m, 1) + e2
    _, unique = np.unique(np.where(keep, key, -1), return_index=True)
    unique = unique[keep[unique]]
    unique.sort()
    e1, e2, cos, u, w1, w2 = e1[unique], e2[unique], cos[unique], u[unique], w1[unique], w2[unique]
    n1, n2 = n1[unique], n2[unique]
    longer = np.maximum(n1, n2)
    ratio = 1.0 - np.divide(np.minimum(n1, n2), longer, out=np.ones(e1.size), where=longer > 0)
    return PairSet(
        mother=u,
        edge1=e1,
        edge2=e2,
        daughter1=w1,
        daughter2=w2,
        separation=np.linalg.norm(pos[w1] - pos[w2], axis=1),
        offset=np.linalg.norm(pos[u] - 0.5 * (pos[w1] + pos[w2]), axis=1),
        angle=0.5 * (1.0 + cos),
        ratio=ratio,
    )


def daughter_matrix(pairs: PairSet, num_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """COO (node row, pair index) of the daughter expression δ_w = Σ_{k: w ∈ k} p_k."""
    k = np.arange(pairs.size)
    return np.concatenate([pairs.daughter1, pairs.daughter2]), np.concatenate([k, k])


class DivisionPairs:
    """Creates the ``pair`` block and its defining rows (see the module docstring).

    Parameters
    ----------
    max_children : int
        Cheapest candidate children per mother that may form a pair (≥ 2).
    max_cos : float
        Largest cosine between the two daughter displacements of a candidate pair.
    ranking : str
        Edge column ranking a mother's children (lowest first).
    include : ndarray of int64, shape (K, 2), optional
        Edge pairs always kept (see :func:`candidate_pairs`).
    """

    name = "pair_definition"

    def __init__(
        self,
        max_children: int,
        max_cos: float,
        ranking: str = "pred_distance",
        include: np.ndarray | None = None,
    ) -> None:
        self.max_children, self.max_cos, self.ranking = int(max_children), float(max_cos), ranking
        self.include = include

    def apply(self, model: ModelArrays) -> None:
        """Create the block (once; later calls do nothing)."""
        if model.has("pair"):
            return
        p = model.problem
        cost = p.edge_feature(self.ranking) if p.num_edges else np.zeros(0)
        pairs = candidate_pairs(
            p, cost, max_children=self.max_children, max_cos=self.max_cos, include=self.include
        )
        model.aux["pair"] = pairs
        pv = model.var("pair", size=pairs.size)
        s, y = model.var("split"), model.var("edge")
        has = np.zeros(p.num_nodes, bool)
        has[pairs.mother] = True
        model.restrict(s[~has], 0)
        mothers = np.flatnonzero(has)
        local = np.full(p.num_nodes, -1, np.int64)
        local[mothers] = np.arange(mothers.size)
        k = np.arange(pairs.size)
        nm = mothers.size
        # Σ p − s ≤ 0 and s − Σ p ≤ 0, one pair of rows per mother
        lm = local[pairs.mother]
        model.add_rows(
            self.name,
            np.concatenate([lm, local[mothers], nm + lm, nm + local[mothers]]),
            np.concatenate([pv, s[mothers], pv, s[mothers]]),
            np.concatenate(
                [np.ones(k.size), -np.ones(nm), -np.ones(k.size), np.ones(nm)]
            ),
            np.zeros(2 * nm),
        )
        # per edge e out of a mother: Σ_{P(e)} p − y_e ≤ 0 and y_e + s_u − Σ_{P(e)} p ≤ 1
        edges = np.flatnonzero(has[p.src])
        le = np.full(p.num_edges, -1, np.int64)
        le[edges] = np.arange(edges.size)
        ne = edges.size
        pair_rows = np.concatenate([le[pairs.edge1], le[pairs.edge2]])
        pair_cols = np.concatenate([pv, pv])
        model.add_rows(
            self.name + "_edge",
            np.concatenate([pair_rows, le[edges], ne + le[edges], ne + le[edges], ne + pair_rows]),
            np.concatenate([pair_cols, y[edges], y[edges], s[p.src[edges]], pair_cols]),
            np.concatenate(
                [np.ones(pair_rows.size), -np.ones(ne), np.ones(2 * ne), -np.ones(pair_rows.size)]
            ),
            np.concatenate([np.zeros(ne), np.ones(ne)]),
        )


def _derive_pairs(
    pairs: PairSet, problem: LinkingProblem, nodes: np.ndarray, edges: np.ndarray
) -> np.ndarray:
    """p_k = y_{e₁} ∧ y_{e₂} (a selection with two children of u takes exactly that pair)."""
    return (edges[pairs.edge1] & edges[pairs.edge2]).astype(np.int64)


ModelArrays.derivations["pair"] = _derive_pairs
