"""Point matching: per-frame one-to-one optimal assignment within a distance (µm).

Ground-truth and predicted nodes of the same frame are paired by a linear assignment
that minimises ``Σ (d_ij − max_distance)`` over the chosen pairs, i.e. it prefers
matching a node over leaving it unmatched whenever the two lie within ``max_distance``
(inclusive), and among all such assignments picks the one with the smallest total
distance. This is the "soft-thresholded" Hungarian matching of traccuracy's
``PointMatcher``. The whole movie is solved as one sparse block-diagonal problem with
:func:`scipy.sparse.csgraph.min_weight_full_bipartite_matching`; only the KD-tree
queries loop over frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from celltrack.errors import InvalidInputError, ShapeError
from celltrack.graph.components import component_labels
from celltrack.graph.trackgraph import TrackGraph

__all__ = [
    "NodeMatching",
    "check_positive",
    "match_nodes",
    "node_pairs",
    "node_positions",
    "solve_sparse_lap",
]

POSITION_COLUMNS = ("z", "y", "x")
_DENSE_LIMIT = 4_000_000  # entries of a dense sub-problem before switching to sparse LAP


@dataclass(frozen=True)
class NodeMatching:
    """A matching between ground-truth and predicted nodes.

    Attributes
    ----------
    gt_rows, pred_rows : ndarray of int64, shape (M,)
        Row indices (into the node columns of each graph) of the matched pairs.
    distance : ndarray of float64, shape (M,)
        Distance of each pair (µm); NaN when the matching did not come from points
        (e.g. mask overlap).
    num_gt, num_pred : int
        Number of nodes in each graph.
    """

    gt_rows: np.ndarray
    pred_rows: np.ndarray
    distance: np.ndarray
    num_gt: int
    num_pred: int

    @property
    def num_matches(self) -> int:
        """Number of matched pairs."""
        return int(self.gt_rows.size)

    @property
    def is_one_to_one(self) -> bool:
        """True when no node of either side appears in two pairs."""
        return bool(
            np.unique(self.gt_rows).size == self.gt_rows.size
            and np.unique(self.pred_rows).size == self.pred_rows.size
        )

    def gt_to_pred(self) -> np.ndarray:
        """Matched predicted row of every ground-truth node (-1 where none), shape (num_gt,).

        Only meaningful for one-to-one matchings.
        """
        out = np.full(self.num_gt, -1, np.int64)
        out[self.gt_rows] = self.pred_rows
        return out

    def pred_to_gt(self) -> np.ndarray:
        """Matched ground-truth row of every predicted node (-1 where none), shape (num_pred,).

        Only meaningful for one-to-one matchings.
        """
        out = np.full(self.num_pred, -1, np.int64)
        out[self.pred_rows] = self.gt_rows
        return out


def check_positive(value: float, name: str, unit: str = "µm") -> float:
    """Return ``value`` as float, or raise :class:`InvalidInputError` unless finite and > 0."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be a number > 0 ({unit}), got {value!r}") from None
    if not np.isfinite(out) or out <= 0:
        raise InvalidInputError(
            f"{name} must be a finite number > 0 ({unit}), got {value!r}; pick the largest "
            "distance at which a prediction still counts as the same cell"
        )
    return out


def node_positions(
    graph: TrackGraph, columns: Sequence[str] = POSITION_COLUMNS, *, what: str = "graph"
) -> np.ndarray:
    """Stack the position ``columns`` of ``graph`` into an (N, D) float array (µm).

    Raises
    ------
    InvalidInputError
        If a column is missing, not numeric, not 1-D or holds NaN/inf.
    """
    if not isinstance(graph, TrackGraph):
        raise InvalidInputError(
            f"{what} must be a celltrack TrackGraph, got {type(graph).__name__}; convert "
            "networkx graphs with TrackGraph.from_networkx"
        )
    columns = tuple(columns)
    if not columns:
        raise InvalidInputError("position_columns must name at least one node column")
    missing = [c for c in columns if c not in graph.nodes]
    if missing:
        raise InvalidInputError(
            f"{what} lacks position columns {missing}; expected node columns {list(columns)} "
            f"(µm), found {graph.node_columns}"
        )
    cols = []
    for c in columns:
        v = np.asarray(graph.nodes[c])
        if v.ndim != 1 or v.dtype.kind not in "iuf":
            raise InvalidInputError(
                f"{what} position column '{c}' must be a 1-D numeric column (µm), got dtype "
                f"{v.dtype} and shape {v.shape}"
            )
        cols.append(v.astype(np.float64))
    pos = np.stack(cols, axis=1) if graph.num_nodes else np.zeros((0, len(columns)))
    if not np.all(np.isfinite(pos)):
        raise InvalidInputError(f"{what} has NaN or infinite positions in {list(columns)}")
    return pos


def solve_sparse_lap(
    rows: np.ndarray,
    cols: np.ndarray,
    cost: np.ndarray,
    n_rows: int,
    n_cols: int,
    unmatched_cost: float,
) -> np.ndarray:
    """Minimum-cost partial assignment on a sparse bipartite graph.

    Minimises ``Σ_{chosen} cost_k + unmatched_cost · (#rows left unmatched)`` over
    one-to-one selections of the candidate pairs (each row and column used at most once).

    Parameters
    ----------
    rows, cols : ndarray of int, shape (K,)
        Candidate pairs (row index < n_rows, column index < n_cols), no duplicates.
    cost : ndarray of float, shape (K,)
        Cost of each candidate pair.
    n_rows, n_cols : int
        Problem size.
    unmatched_cost : float
        Cost of leaving a row unmatched.

    Returns
    -------
    ndarray of bool, shape (K,)
        Mask of the chosen candidate pairs.
    """
    chosen = np.zeros(rows.size, bool)
    if rows.size == 0:
        return chosen
    rows = np.asarray(rows, np.int64)
    cols = np.asarray(cols, np.int64)
    cost = np.asarray(cost, np.float64)
    # independent sub-problems: connected components of the candidate bipartite graph
    used_r, r_inv = np.unique(rows, return_inverse=True)
    used_c, c_inv = np.unique(cols, return_inverse=True)
    nr, nc = used_r.size, used_c.size
    comp = component_labels(r_inv, nr + c_inv, nr + nc)
    comp_of_pair = comp[r_inv]
    n_comp = int(comp.max()) + 1
    rows_per_comp = np.bincount(comp[:nr], minlength=n_comp)
    cols_per_comp = np.bincount(comp[nr:], minlength=n_comp)
    # a component with one row or one column (a star): its single best pair is optimal
    # when it beats leaving its row unmatched
    star = (rows_per_comp[comp_of_pair] == 1) | (cols_per_comp[comp_of_pair] == 1)
    star_idx = np.flatnonzero(star)
    if star_idx.size:
        order = star_idx[np.lexsort((cost[star_idx], comp_of_pair[star_idx]))]
        first = np.ones(order.size, bool)
        first[1:] = comp_of_pair[order[1:]] != comp_of_pair[order[:-1]]
        best = order[first]
        chosen[best] = cost[best] < unmatched_cost
    multi = np.flatnonzero(~star)
    if multi.size == 0:
        return chosen
    # local row / column numbers inside each remaining component
    gain = np.minimum(cost[multi] - unmatched_cost, 0.0)  # matching gain (<= 0 is useful)
    comp_m = comp_of_pair[multi]
    lr = _local_index(r_inv[multi], comp[:nr][r_inv[multi]])
    lc = _local_index(c_inv[multi], comp[nr:][c_inv[multi]])
    order = np.argsort(comp_m, kind="stable")
    bounds = np.flatnonzero(np.diff(comp_m[order])) + 1
    for group in np.split(order, bounds):
        chosen[multi[group]] = _solve_component(lr[group], lc[group], gain[group])
    return chosen


def _local_index(node: np.ndarray, comp: np.ndarray) -> np.ndarray:
    """Rank of each ``node`` among the distinct nodes of its component ``comp``."""
    uniq, inv = np.unique(node, return_inverse=True)
    comp_u = np.empty(uniq.size, np.int64)
    comp_u[inv] = comp
    order = np.argsort(comp_u, kind="stable")
    starts = np.flatnonzero(np.r_[True, comp_u[order][1:] != comp_u[order][:-1]])
    first = np.repeat(starts, np.diff(np.r_[starts, uniq.size]))
    rank = np.empty(uniq.size, np.int64)
    rank[order] = np.arange(uniq.size) - first
    return rank[inv]


def _solve_component(rows: np.ndarray, cols: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """Exact assignment of one component; ``gain`` (<= 0) is the cost relative to unmatched.

    Entries that are not candidates are 0 (as good as leaving both unmatched), so a
    rectangular assignment over the non-positive matrix has the same optimum as the
    partial assignment; only pairs with a negative gain are kept.
    """
    nr, nc = int(rows.max()) + 1, int(cols.max()) + 1
    if nr * nc <= _DENSE_LIMIT:
        from scipy.optimize import linear_sum_assignment

        mat = np.zeros((nr, nc))
        mat[rows, cols] = gain
        r_idx, c_idx = linear_sum_assignment(mat)
        col_of_row = np.full(nr, -1, np.int64)
        col_of_row[r_idx] = c_idx
    else:
        # sparse: every row also gets a private "unmatched" column; weights made positive
        from scipy import sparse
        from scipy.sparse.csgraph import min_weight_full_bipartite_matching

        shift = 1.0 - min(float(gain.min()), 0.0)
        data = np.concatenate([gain + shift, np.full(nr, shift)])
        r_all = np.concatenate([rows, np.arange(nr)])
        c_all = np.concatenate([cols, nc + np.arange(nr)])
        mat = sparse.csr_matrix((data, (r_all, c_all)), shape=(nr, nc + nr))
        _, col_of_row = min_weight_full_bipartite_matching(mat)
    return (col_of_row[rows] == cols) & (gain < 0)


def match_nodes(
    gt: TrackGraph,
    pred: TrackGraph,
    max_distance: float,
    *,
    position_columns: Sequence[str] = POSITION_COLUMNS,
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> NodeMatching:
    """Match ground-truth and predicted nodes one-to-one, frame by frame.

    Within each frame, pairs closer than or at ``max_distance`` (µm) are candidates; the
    assignment minimises ``Σ (d_ij − max_distance)`` over the chosen pairs (the
    soft-thresholded Hungarian matching), so matched nodes are as close as possible
    and as many as is worth it. Nodes in frames the other graph lacks stay unmatched.

    Parameters
    ----------
    gt, pred : TrackGraph
        Ground truth and prediction; positions in µm.
    max_distance : float
        Largest distance (µm, inclusive) at which two nodes can match; > 0.
    position_columns : sequence of str
        Node columns holding the coordinates (default ``("z", "y", "x")``).
    pairs : tuple of 3 ndarray, optional
        Candidate pairs from :func:`node_pairs` with the same arguments (saves the
        KD-tree queries when several matchings share them).

    Returns
    -------
    NodeMatching
        Matched row pairs, sorted by ground-truth row.

    Raises
    ------
    InvalidInputError
        On a non-positive threshold or missing position columns.

    Examples
    --------
    >>> from celltrack.graph import TrackGraph
    >>> gt = TrackGraph.from_positions([0, 0], [[0, 0, 0], [0, 0, 10]])
    >>> pred = TrackGraph.from_positions([0, 0], [[0, 0, 9], [0, 1, 0]])
    >>> m = match_nodes(gt, pred, max_distance=2.0)
    >>> m.gt_rows.tolist(), m.pred_rows.tolist()
    ([0, 1], [1, 0])
    """
    thr = check_positive(max_distance, "max_distance")
    if pairs is None:
        pairs = node_pairs(gt, pred, thr, position_columns=position_columns)
    gi, pi, dist = pairs
    # a pair exactly at the threshold still matches: a tiny bonus per match breaks the tie
    chosen = solve_sparse_lap(gi, pi, dist - thr * (1 + 1e-9), gt.num_nodes, pred.num_nodes, 0.0)
    gi, pi, dist = gi[chosen], pi[chosen], dist[chosen]
    order = np.argsort(gi, kind="stable")
    return NodeMatching(gi[order], pi[order], dist[order], gt.num_nodes, pred.num_nodes)


def node_pairs(
    gt: TrackGraph,
    pred: TrackGraph,
    max_distance: float,
    *,
    position_columns: Sequence[str] = POSITION_COLUMNS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All same-frame (gt row, pred row, distance µm) pairs within ``max_distance``.

    Returns
    -------
    gt_rows, pred_rows : ndarray of int64, shape (K,)
    distance : ndarray of float64, shape (K,)
    """
    thr = check_positive(max_distance, "max_distance")
    pg = node_positions(gt, position_columns, what="gt")
    pp = node_positions(pred, position_columns, what="pred")
    return _frame_pairs(gt.t, pg, pred.t, pp, thr)


def _frame_pairs(
    t_a: np.ndarray, pos_a: np.ndarray, t_b: np.ndarray, pos_b: np.ndarray, thr: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All same-frame pairs (row in a, row in b, distance) with distance <= thr."""
    from scipy.spatial import cKDTree

    if pos_a.shape[1] != pos_b.shape[1]:
        raise ShapeError(
            f"gt and pred positions have {pos_a.shape[1]} and {pos_b.shape[1]} coordinates"
        )
    order_a = np.argsort(t_a, kind="stable")
    order_b = np.argsort(t_b, kind="stable")
    ta, tb = t_a[order_a], t_b[order_b]
    frames = np.intersect1d(ta, tb)
    lo_a, hi_a = np.searchsorted(ta, frames), np.searchsorted(ta, frames, side="right")
    lo_b, hi_b = np.searchsorted(tb, frames), np.searchsorted(tb, frames, side="right")
    out_a, out_b, out_d = [], [], []
    for k in range(frames.size):
        ra = order_a[lo_a[k] : hi_a[k]]
        rb = order_b[lo_b[k] : hi_b[k]]
        tree_a, tree_b = cKDTree(pos_a[ra]), cKDTree(pos_b[rb])
        coo = tree_a.sparse_distance_matrix(tree_b, thr, output_type="ndarray")
        out_a.append(ra[coo["i"]])
        out_b.append(rb[coo["j"]])
        out_d.append(coo["v"])
    if not out_a:
        z = np.zeros(0, np.int64)
        return z, z.copy(), np.zeros(0)
    return (
        np.concatenate(out_a).astype(np.int64),
        np.concatenate(out_b).astype(np.int64),
        np.concatenate(out_d).astype(np.float64),
    )
