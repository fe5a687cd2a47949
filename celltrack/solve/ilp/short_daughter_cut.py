"""Shared-child cuts: the short-daughter rows, disaggregated where both daughters compete.

The short-daughter row of a one-node segment (:mod:`.short_daughter`, path length j = 0)
is ``q_w ≥ δ_w − Σ_{e∈out(w)} y_e``. It counts w's child edges whether or not w is a
daughter, so the LP can let a real cell u → w "half-divide" into w and a false node f
next to it: p_k = ½ for the pair k = (u; w, f), and w and f each send ½ into the same
child c. Both rows read ``q ≥ ½ − ½ = 0`` and the division costs nothing, although in any
integer solution with p_k = 1 one of w, f must end (c has one parent). On the ASTEC
benchmark graphs every fractional division of the learned costs had this shape.

For every candidate pair k = (u; a, b) whose daughters share candidate children
S_k = C(a) ∩ C(b) ≠ ∅, this term adds z_{k,d,c} ∈ [0, 1] for d ∈ {a, b}, c ∈ S_k — "edge
d → c is taken while k divides" — with the rows::

    z_{k,a,c} + z_{k,b,c} ≤ p_k                 (c has one parent)
    Σ_{k : d ∈ k, c ∈ S_k} z_{k,d,c} ≤ y_{d→c}  (per edge d → c)
    q_d ≥ p_k − Σ_{e=(d→c'), c'∉S_k} y_e − Σ_{c∈S_k} z_{k,d,c}

(the last for each daughter d whose one-node segment has a variable q_d, i.e. whose
track end is not free). All are valid for every integer solution (set z_{k,d,c} =
p_k · y_{d→c}: a daughter belongs to at most one taken pair) and change no integer
optimum; the z carry no cost. In the half-division above they give
``q_w + q_f ≥ 2 p_k − (z_w + z_f) ≥ p_k = ½``: the LP pays for the short daughter. On
held-out ASTEC embryo Pm02 (near perturbation) they make the LP relaxation of the learned
costs integral (38 fractional divisions before; see the benchmark).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from celltrack.solve.ilp.model import ModelArrays, StandardModel
from celltrack.solve.ilp.pair_definition import PairSet
from celltrack.solve.ilp.problem import LinkingProblem
from celltrack.solve.ilp.short_track import Paths, incident

__all__ = ["SharedChildren", "add_shared_child_cuts", "fix_with_pairs", "shared_children"]

#: name of the z block
BLOCK = "short_daughter_cut"


@dataclass
class SharedChildren:
    """The (pair, shared child) entries of the cuts (M entries).

    Attributes
    ----------
    pair : ndarray of int64, shape (M,)
        Pair index k (into the :class:`PairSet`).
    edge_a, edge_b : ndarray of int64, shape (M,)
        Edges a → c and b → c (a = daughter1, b = daughter2 of pair k).
    pair_edge1, pair_edge2 : ndarray of int64, shape (M,)
        The pair's own edges u → a and u → b.
    """

    pair: np.ndarray
    edge_a: np.ndarray
    edge_b: np.ndarray
    pair_edge1: np.ndarray
    pair_edge2: np.ndarray

    @property
    def size(self) -> int:
        """Number of entries M."""
        return int(self.pair.size)


def shared_children(problem: LinkingProblem, pairs: PairSet) -> SharedChildren:
    """Every (pair, candidate child common to both daughters), sorted by pair."""
    src, tgt, n = problem.src, problem.tgt, problem.num_nodes
    order = np.argsort(src, kind="stable")
    outdeg = np.bincount(src, minlength=n)
    keys, edges = [], []
    for daughter in (pairs.daughter1, pairs.daughter2):
        rep, e = incident(daughter, src, order, outdeg)
        keys.append(rep * n + tgt[e])
        edges.append(e)
    both, ia, ib = np.intersect1d(keys[0], keys[1], assume_unique=True, return_indices=True)
    k = both // max(n, 1)
    return SharedChildren(
        pair=k,
        edge_a=edges[0][ia],
        edge_b=edges[1][ib],
        pair_edge1=pairs.edge1[k],
        pair_edge2=pairs.edge2[k],
    )


def add_shared_child_cuts(model: ModelArrays, paths: Paths, q: np.ndarray) -> None:
    """Create the z block and the three row families (see the module docstring).

    Parameters
    ----------
    model : ModelArrays
        With the ``pair`` block (``aux["pair"]``) and the short-daughter block.
    paths : Paths
        The short-daughter paths; their one-node paths carry the q_d of the last rows.
    q : ndarray of int64, shape (P,)
        Global indices of the paths' variables.
    """
    p = model.problem
    pairs: PairSet = model.aux["pair"]
    shared = shared_children(p, pairs)
    model.aux[BLOCK] = shared
    m = shared.size
    z = model.var(BLOCK, size=2 * m)
    if m == 0:
        return
    za, zb = z[:m], z[m:]
    pv, y = model.var("pair"), model.var("edge")
    entry = np.arange(m)
    # z_a + z_b − p_k ≤ 0
    model.add_rows(
        BLOCK + "_parent",
        np.concatenate([entry, entry, entry]),
        np.concatenate([za, zb, pv[shared.pair]]),
        np.concatenate([np.ones(2 * m), -np.ones(m)]),
        np.zeros(m),
    )
    # Σ z − y_e ≤ 0 per edge d → c
    edge_of_z = np.concatenate([shared.edge_a, shared.edge_b])
    edges, row_of_z = np.unique(edge_of_z, return_inverse=True)
    model.add_rows(
        BLOCK + "_edge",
        np.concatenate([row_of_z, np.arange(edges.size)]),
        np.concatenate([z, y[edges]]),
        np.concatenate([np.ones(2 * m), -np.ones(edges.size)]),
        np.zeros(edges.size),
    )
    # p_k − Σ_{non-shared out(d)} y − Σ z_{k,d,·} − q_d ≤ 0, one row per (pair, side)
    lone = paths.length == 0
    q_of = np.full(p.num_nodes, -1, np.int64)
    q_of[paths.start[lone]] = q[lone]
    ks = np.unique(shared.pair)
    order = np.argsort(p.src, kind="stable")
    outdeg = np.bincount(p.src, minlength=p.num_nodes)
    rows, cols, coefs, count = [], [], [], 0
    for daughter, z_side, e_side in (
        (pairs.daughter1, za, shared.edge_a),
        (pairs.daughter2, zb, shared.edge_b),
    ):
        d = daughter[ks]
        has_q = q_of[d] >= 0
        k_rows, d = ks[has_q], d[has_q]
        local = np.full(pairs.size, -1, np.int64)
        local[k_rows] = count + np.arange(k_rows.size)
        rep, e = incident(d, p.src, order, outdeg)
        keep = ~_in_entries(k_rows[rep], e, shared.pair, e_side)
        mine = local[shared.pair] >= 0
        rows += [local[k_rows], local[k_rows[rep[keep]]], local[shared.pair[mine]],
                 local[k_rows]]
        cols += [pv[k_rows], y[e[keep]], z_side[mine], q_of[d]]
        coefs += [np.ones(k_rows.size), -np.ones(int(keep.sum())),
                  -np.ones(int(mine.sum())), -np.ones(k_rows.size)]
        count += k_rows.size
    model.add_rows(
        BLOCK, np.concatenate(rows), np.concatenate(cols), np.concatenate(coefs),
        np.zeros(count),
    )


def _in_entries(
    pair: np.ndarray, edge: np.ndarray, entry_pair: np.ndarray, entry_edge: np.ndarray
) -> np.ndarray:
    """Whether each (pair, edge) is one of the entries (the edge leads into S_pair), bool."""
    big = int(max(edge.max(initial=0), entry_edge.max(initial=0))) + 1
    return np.isin(pair * big + edge, entry_pair * big + entry_edge)


def fix_with_pairs(model: StandardModel, ub: np.ndarray) -> int:
    """Set ``ub = 0`` for the z of every pair whose variable is fixed to 0 (in place).

    Parameters
    ----------
    model : StandardModel
    ub : ndarray of int64, shape (V,)
        Upper bounds of the search.

    Returns
    -------
    int
        Number of z newly fixed.
    """
    if BLOCK not in model.blocks or "pair" not in model.blocks:
        return 0
    shared: SharedChildren = model.aux[BLOCK]
    dead = ub[model.blocks["pair"].start + shared.pair] == 0
    z = np.arange(model.blocks[BLOCK].start, model.blocks[BLOCK].stop)
    mask = np.concatenate([dead, dead]) & (ub[z] > 0)
    ub[z[mask]] = 0
    return int(mask.sum())


def _derive_shared(
    shared: SharedChildren, problem: LinkingProblem, nodes: np.ndarray, edges: np.ndarray
) -> np.ndarray:
    """z_{k,d,c} = p_k ∧ y_{d→c}, with p_k = y_{u→a} ∧ y_{u→b}."""
    pk = edges[shared.pair_edge1] & edges[shared.pair_edge2]
    return np.concatenate([pk & edges[shared.edge_a], pk & edges[shared.edge_b]]).astype(
        np.int64
    )


ModelArrays.derivations[BLOCK] = _derive_shared
