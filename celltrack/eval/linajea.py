"""Linajea's error counts for sparse (or dense) ground truth, and error-free segments.

Edges, not nodes, are matched: a ground-truth edge ``u → v`` and a predicted edge
``a → b`` between the same two frames are matchable when ``|u − a| ≤ θ`` and
``|v − b| ≤ θ`` (µm); the one-to-one assignment minimises
``Σ (|u − a| + |v − b|) + c · (#unmatched ground-truth edges + #unmatched predicted
edges)`` with ``c = 2θ + 1``, i.e. it matches as many edges as possible, then as close
as possible (the dummy-row formulation of Malin-Mayor et al. 2023). Then:

- **FN edge**: a ground-truth edge without a match.
- **FP edge**: dense ground truth: every unmatched predicted edge; sparse ground truth:
  only predicted edges that were matchable to some ground-truth edge but were not
  matched ("unselected potential matches"), since other predicted edges may track
  cells nobody annotated.
- **Identity switch** (IS): at a ground-truth node with one parent edge and exactly one
  child edge, both matched, the two matched predicted edges do not meet in the same
  predicted node.
- **FP division**: a predicted node with ≥ 2 children whose child edges are not all
  matched to child edges of one ground-truth node. With sparse ground truth it is
  ignored when no child edge matches and either the node's parent edge does not match
  or the matched ground-truth track ends there.
- **FN division**: a ground-truth node with ≥ 2 children that the prediction does not
  reproduce, split into *no connection* (no child connected to the parent's match),
  *one unconnected child* (the parent continues into one child only) and *unconnected
  parent* (the children are connected to each other but not to the parent).

The **error-free segment** curve counts, for every length ``L`` (edges), the
ground-truth paths of ``L`` consecutive edges, and those without an FN edge and
without an IS, FP-division or FN-division mark on an interior node.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from celltrack.errors import InvalidInputError
from celltrack.eval.matching import POSITION_COLUMNS, check_positive, node_pairs, solve_sparse_lap
from celltrack.graph.components import component_labels
from celltrack.graph.trackgraph import TrackGraph

__all__ = ["EdgeMatching", "LinajeaScores", "linajea_scores", "match_edges"]


@dataclass(frozen=True)
class EdgeMatching:
    """One-to-one matching of ground-truth and predicted edges.

    Attributes
    ----------
    gt_edges, pred_edges : ndarray of int64, shape (M,)
        Matched edge rows (into each graph's edge columns).
    candidate_pred_edges : ndarray of int64, shape (K,)
        Predicted edge rows that were matchable to at least one ground-truth edge.
    """

    gt_edges: np.ndarray
    pred_edges: np.ndarray
    candidate_pred_edges: np.ndarray


@dataclass(frozen=True)
class LinajeaScores:
    """Linajea error counts, edge scores and the error-free segment curve.

    Attributes
    ----------
    sparse : bool
        Whether the ground truth was treated as sparse.
    num_gt_edges, num_pred_edges, matched_edges : int
        Edge counts.
    fn_edges, fp_edges, identity_switches, fp_divisions, fn_divisions : int
        Error counts (``fn_divisions`` = the sum of the three subtypes).
    fn_div_no_connection, fn_div_one_unconnected_child, fn_div_unconnected_parent : int
        FN-division subtypes.
    tp_divisions : int
        Ground-truth divisions reproduced exactly.
    edge_precision, edge_recall, edge_f1 : float
        ``matched / (matched + fp_edges)``, ``matched / num_gt_edges`` and their harmonic
        mean (NaN when undefined).
    sum_errors : int
        FN edges + IS + FP divisions + FN divisions (+ FP edges with dense ground
        truth): Linajea's model-selection score.
    aeftl : float
        Average error-free track length: mean number of edges of the connected pieces of
        the matched predicted edges, cut at FP divisions.
    erl : float
        Expected run length: ``Σ piece_edges² / num_gt_edges``.
    segment_lengths, correct_segments, total_segments : ndarray of int64, shape (L,)
        For ``L = 1, 2, …``: number of error-free and of all ground-truth paths of
        ``L`` edges.
    """

    sparse: bool
    num_gt_edges: int
    num_pred_edges: int
    matched_edges: int
    fn_edges: int
    fp_edges: int
    identity_switches: int
    fp_divisions: int
    fn_divisions: int
    fn_div_no_connection: int
    fn_div_one_unconnected_child: int
    fn_div_unconnected_parent: int
    tp_divisions: int
    edge_precision: float
    edge_recall: float
    edge_f1: float
    sum_errors: int
    aeftl: float
    erl: float
    segment_lengths: np.ndarray = field(repr=False)
    correct_segments: np.ndarray = field(repr=False)
    total_segments: np.ndarray = field(repr=False)

    @property
    def error_free_fraction(self) -> np.ndarray:
        """Fraction of error-free ground-truth segments per length, shape (L,)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(
                self.total_segments > 0,
                self.correct_segments / np.maximum(self.total_segments, 1),
                np.nan,
            )

    def to_dict(self) -> dict:
        """Plain-Python dictionary (curves as lists)."""
        out: dict = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            out[name] = value.tolist() if isinstance(value, np.ndarray) else value
        out["error_free_fraction"] = self.error_free_fraction.tolist()
        return out


def match_edges(
    gt: TrackGraph,
    pred: TrackGraph,
    max_distance: float,
    *,
    position_columns: Sequence[str] = POSITION_COLUMNS,
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> EdgeMatching:
    """Match ground-truth to predicted edges one-to-one (Linajea's edge matching).

    Parameters
    ----------
    gt, pred : TrackGraph
        Graphs with positions in µm.
    max_distance : float
        Largest distance (µm) between corresponding endpoints; > 0.
    position_columns : sequence of str
        Node coordinate columns.
    pairs : tuple of 3 ndarray, optional
        Node pairs from :func:`celltrack.eval.matching.node_pairs` with the same
        arguments (reused instead of recomputed).

    Returns
    -------
    EdgeMatching
    """
    thr = check_positive(max_distance, "max_distance")
    if pairs is None:
        pairs = node_pairs(gt, pred, thr, position_columns=position_columns)
    empty = np.zeros(0, np.int64)
    if gt.num_edges == 0 or pred.num_edges == 0:
        return EdgeMatching(empty, empty.copy(), empty.copy())
    ga, pa, dist = pairs
    g_src, g_tgt = gt.edge_index()
    p_src, p_tgt = pred.edge_index()
    ng, np_ = gt.num_nodes, pred.num_nodes
    # node pairs expanded by (gt out-edge of g) × (pred out-edge of p)
    g_order = np.argsort(g_src, kind="stable")
    g_start = np.searchsorted(g_src[g_order], np.arange(ng + 1))
    p_order = np.argsort(p_src, kind="stable")
    p_start = np.searchsorted(p_src[p_order], np.arange(np_ + 1))
    g_deg = np.diff(g_start)[ga]
    p_deg = np.diff(p_start)[pa]
    combos = g_deg * p_deg
    k = np.repeat(np.arange(ga.size), combos)
    within = np.arange(k.size) - np.repeat(np.cumsum(combos) - combos, combos)
    gi, pi = within // np.maximum(p_deg[k], 1), within % np.maximum(p_deg[k], 1)
    ge = g_order[g_start[ga[k]] + gi]
    pe = p_order[p_start[pa[k]] + pi]
    # targets must be a node pair too
    pair_keys = ga * max(np_, 1) + pa
    key_order = np.argsort(pair_keys, kind="stable")
    sorted_keys = pair_keys[key_order]
    want = g_tgt[ge] * max(np_, 1) + p_tgt[pe]
    if sorted_keys.size == 0:
        return EdgeMatching(empty, empty.copy(), empty.copy())
    pos = np.clip(np.searchsorted(sorted_keys, want), 0, sorted_keys.size - 1)
    ok = sorted_keys[pos] == want
    ge, pe = ge[ok], pe[ok]
    cost = dist[k[ok]] + dist[key_order[pos[ok]]]
    c = 2.0 * thr + 1.0
    chosen = solve_sparse_lap(ge, pe, cost - 2.0 * c, gt.num_edges, pred.num_edges, 0.0)
    order = np.argsort(ge[chosen], kind="stable")
    return EdgeMatching(ge[chosen][order], pe[chosen][order], np.unique(pe))


def linajea_scores(
    gt: TrackGraph,
    pred: TrackGraph,
    max_distance: float,
    *,
    sparse_gt: bool = True,
    max_segment_length: int | None = None,
    position_columns: Sequence[str] = POSITION_COLUMNS,
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> LinajeaScores:
    """Linajea error counts and the error-free segment curve.

    Parameters
    ----------
    gt, pred : TrackGraph
        Ground truth (sparse or dense point tracks) and prediction; positions in µm.
    max_distance : float
        Edge matching threshold (µm); > 0.
    sparse_gt : bool
        Treat the ground truth as sparse (changes FP edges and FP divisions).
    max_segment_length : int, optional
        Longest segment length ``L`` (edges) to report; default: the longest
        ground-truth path.
    position_columns : sequence of str
        Node coordinate columns.
    pairs : tuple of 3 ndarray, optional
        Node pairs from :func:`celltrack.eval.matching.node_pairs` (reused).

    Returns
    -------
    LinajeaScores
    """
    if max_segment_length is not None and (
        isinstance(max_segment_length, bool) or int(max_segment_length) < 1
    ):
        raise InvalidInputError(
            f"max_segment_length must be an integer >= 1 (edges), got {max_segment_length!r}"
        )
    em = match_edges(gt, pred, max_distance, position_columns=position_columns, pairs=pairs)
    g_src, g_tgt = gt.edge_index()
    p_src, p_tgt = pred.edge_index()
    ng, np_ = gt.num_nodes, pred.num_nodes
    eg, ep = gt.num_edges, pred.num_edges
    g_match = np.full(eg, -1, np.int64)  # matched pred edge of each gt edge
    g_match[em.gt_edges] = em.pred_edges
    p_match = np.full(ep, -1, np.int64)  # matched gt edge of each pred edge
    p_match[em.pred_edges] = em.gt_edges
    matched = int(em.gt_edges.size)

    fn_edges = eg - matched
    if sparse_gt:
        fp_edges = int(np.setdiff1d(em.candidate_pred_edges, em.pred_edges).size)
    else:
        fp_edges = ep - matched

    g_out = np.bincount(g_src, minlength=ng)
    p_out = np.bincount(p_src, minlength=np_)
    # incoming gt edge of every gt node (one of them if several)
    g_in_edge = np.full(ng, -1, np.int64)
    g_in_edge[g_tgt] = np.arange(eg)
    p_in_edge = np.full(np_, -1, np.int64)
    p_in_edge[p_tgt] = np.arange(ep)

    # ---- identity switches
    single_out = np.full(ng, -1, np.int64)
    one = g_out[g_src] == 1
    single_out[g_src[one]] = np.flatnonzero(one)
    cand = np.flatnonzero((single_out >= 0) & (g_in_edge >= 0))
    m_in = g_match[g_in_edge[cand]]
    m_out = g_match[single_out[cand]]
    both = (m_in >= 0) & (m_out >= 0)
    is_mask = np.zeros(ng, bool)
    is_nodes = cand[both][p_tgt[m_in[both]] != p_src[m_out[both]]]
    is_mask[is_nodes] = True

    # ---- FP divisions (predicted nodes with >= 2 children)
    src_gt_of_pred_edge = _take(g_src, p_match)
    lo = np.full(np_, np.iinfo(np.int64).max)
    hi = np.full(np_, -2, np.int64)
    np.minimum.at(lo, p_src, src_gt_of_pred_edge)
    np.maximum.at(hi, p_src, src_gt_of_pred_edge)
    n_child_matched = np.bincount(p_src, weights=(p_match >= 0).astype(float), minlength=np_)
    p_div = np.flatnonzero(p_out >= 2)
    good = (lo[p_div] >= 0) & (lo[p_div] == hi[p_div])
    fp_div = p_div[~good]
    if sparse_gt and fp_div.size:
        none_matched = n_child_matched[fp_div] == 0
        parent_edge = p_in_edge[fp_div]
        parent_match = _take(p_match, parent_edge)
        gt_node = _take(g_tgt, parent_match)
        track_ends = _take(g_out, gt_node) == 0
        ignore = none_matched & ((parent_match < 0) | track_ends)
        fp_div = fp_div[~ignore]
    fpd_mask = np.zeros(ng, bool)
    fp_child_edges = np.flatnonzero(np.isin(p_src, fp_div) & (p_match >= 0))
    fpd_mask[g_src[p_match[fp_child_edges]]] = True

    # ---- FN divisions (ground-truth nodes with >= 2 children)
    g_div = np.flatnonzero(g_out >= 2)
    child_src = _take(p_src, g_match)  # c_i per gt edge
    clo = np.full(ng, np.iinfo(np.int64).max)
    chi = np.full(ng, -2, np.int64)
    np.minimum.at(clo, g_src, child_src)
    np.maximum.at(chi, g_src, child_src)
    prev_s = _take(p_tgt, _take(g_match, g_in_edge))
    children_joined = (clo[g_div] >= 0) & (clo[g_div] == chi[g_div])
    has_prev = g_in_edge[g_div] >= 0
    connected_edge = (child_src >= 0) & (child_src == prev_s[g_src])
    n_connected = np.bincount(g_src, weights=connected_edge.astype(float), minlength=ng)[g_div]
    parent_joined = children_joined & (clo[g_div] == prev_s[g_div])
    tp_div = (~has_prev & children_joined) | (has_prev & parent_joined)
    unconnected_parent = has_prev & children_joined & ~parent_joined
    one_child = has_prev & ~children_joined & (n_connected > 0)
    no_connection = ~tp_div & ~unconnected_parent & ~one_child
    fnd_mask = np.zeros(ng, bool)
    fnd_mask[g_div[~tp_div]] = True
    n_fn_div = int((~tp_div).sum())

    # ---- scores
    precision = _ratio(matched, matched + fp_edges)
    recall = _ratio(matched, eg)
    f1 = (
        float("nan") if np.isnan(precision) or np.isnan(recall) or precision + recall == 0
        else 2 * precision * recall / (precision + recall)
    )
    sum_errors = fn_edges + int(is_mask.sum()) + int(fp_div.size) + n_fn_div
    if not sparse_gt:
        sum_errors += fp_edges
    aeftl, erl = _aeftl_erl(pred, em.pred_edges, fp_div, eg)
    node_ok = ~(is_mask | fpd_mask | fnd_mask)
    edge_ok = g_match >= 0
    lengths, correct, total = _segment_curve(g_src, g_tgt, ng, edge_ok, node_ok, max_segment_length)
    return LinajeaScores(
        sparse=bool(sparse_gt),
        num_gt_edges=int(eg),
        num_pred_edges=int(ep),
        matched_edges=matched,
        fn_edges=int(fn_edges),
        fp_edges=int(fp_edges),
        identity_switches=int(is_mask.sum()),
        fp_divisions=int(fp_div.size),
        fn_divisions=n_fn_div,
        fn_div_no_connection=int(no_connection.sum()),
        fn_div_one_unconnected_child=int(one_child.sum()),
        fn_div_unconnected_parent=int(unconnected_parent.sum()),
        tp_divisions=int(tp_div.sum()),
        edge_precision=precision,
        edge_recall=recall,
        edge_f1=f1,
        sum_errors=int(sum_errors),
        aeftl=aeftl,
        erl=erl,
        segment_lengths=lengths,
        correct_segments=correct,
        total_segments=total,
    )


def _take(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``values[index]`` where ``index >= 0``, else -1."""
    out = np.full(index.shape, -1, np.int64)
    ok = index >= 0
    out[ok] = values[index[ok]]
    return out


def _ratio(num: float, den: float) -> float:
    return float("nan") if den == 0 else float(num) / float(den)


def _aeftl_erl(
    pred: TrackGraph, matched_pred_edges: np.ndarray, fp_div: np.ndarray, num_gt_edges: int
) -> tuple[float, float]:
    """Mean and squared-mean length (edges) of matched predicted pieces cut at FP divisions."""
    if matched_pred_edges.size == 0:
        return 0.0, 0.0
    p_src, p_tgt = pred.edge_index()
    n = pred.num_nodes
    src = p_src[matched_pred_edges]
    tgt = p_tgt[matched_pred_edges].copy()
    # an FP division with matched edges on both sides: its incoming edges get a fresh end
    has_out = np.zeros(n, bool)
    has_out[src] = True
    has_in = np.zeros(n, bool)
    has_in[tgt] = True
    cut_node = np.zeros(n, bool)
    cut_node[fp_div] = True
    cut_node &= has_out & has_in
    cut = cut_node[tgt]
    tgt[cut] = n + np.arange(int(cut.sum()))
    size = n + int(cut.sum())
    comp = component_labels(src, tgt, size)
    lengths = np.bincount(comp[src])
    lengths = lengths[lengths > 0].astype(float)
    aeftl = float(lengths.mean())
    erl = float(np.sum(lengths**2) / num_gt_edges) if num_gt_edges else 0.0
    return aeftl, erl


def _segment_curve(
    src: np.ndarray,
    tgt: np.ndarray,
    n: int,
    edge_ok: np.ndarray,
    node_ok: np.ndarray,
    max_length: int | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts of all and of error-free paths of L edges, for L = 1..max_length."""
    from scipy import sparse

    if src.size == 0:
        z = np.zeros(0, np.int64)
        return z, z.copy(), z.copy()
    adj = sparse.csr_matrix((np.ones(src.size), (src, tgt)), shape=(n, n))
    adj_ok = sparse.csr_matrix((edge_ok.astype(float), (src, tgt)), shape=(n, n))
    all_paths = np.asarray(adj.sum(axis=1)).ravel()  # paths of 1 edge from each node
    ok_paths = np.asarray(adj_ok.sum(axis=1)).ravel()
    totals, corrects = [], []
    limit = np.inf if max_length is None else int(max_length)
    length = 0
    while length < limit:
        length += 1
        if length > 1:
            all_paths = adj @ all_paths
            ok_paths = adj_ok @ (ok_paths * node_ok)
        total = float(all_paths.sum())
        if total == 0 and max_length is None:
            break
        totals.append(total)
        corrects.append(float(ok_paths.sum()))
    lengths = np.arange(1, len(totals) + 1, dtype=np.int64)
    return lengths, np.round(corrects).astype(np.int64), np.round(totals).astype(np.int64)
