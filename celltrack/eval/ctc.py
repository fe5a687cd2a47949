"""AOGM, DET, TRA and LNK as the Cell Tracking Challenge defines them.

The acyclic oriented graph measure (AOGM; Matula et al., PLoS ONE 2015) counts the
operations that turn the predicted graph into the ground truth, given a node matching
in which every ground-truth node matches at most one predicted node:

- NS: a predicted node matching ``k > 1`` ground-truth nodes needs ``k − 1`` splits;
- FN: ground-truth nodes matched by no predicted node;
- FP: predicted nodes matching no ground-truth node;
- ED: predicted edges between two uniquely matched nodes whose images are not a
  ground-truth edge (edges touching unmatched or merged nodes cost nothing extra);
- EA: ground-truth edges with no predicted counterpart;
- EC: edges present in both whose semantics differ (track continuation vs parent link).

Weights (NS, FN, FP, ED, EA, EC) = (5, 10, 1, 1, 1.5, 1).
``AOGM₀ = 10·|V| + 1.5·|E|`` (building the ground truth from scratch),
``TRA = 1 − min(AOGM, AOGM₀)/AOGM₀``; DET uses only NS, FN, FP with
``AOGM-D₀ = 10·|V|``; LNK uses only ED, EA, EC with ``AOGM-A₀ = 1.5·|E|``.

Edge semantics follow the CTC track file: an edge continues a track when it joins
consecutive frames, its source has exactly one child and its target exactly one
parent; every other edge (division, gap / skip edge) is a parent link. (traccuracy
marks only edges at divisions and merges as parent links; the two conventions differ
only for a skip edge present in both graphs whose source divides in one graph but
not in the other.)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from celltrack.errors import InvalidInputError

__all__ = ["CTC_WEIGHTS", "AOGMCounts", "aogm_counts", "parent_link_mask"]

#: CTC AOGM weights.
CTC_WEIGHTS = {"ns": 5.0, "fn": 10.0, "fp": 1.0, "ed": 1.0, "ea": 1.5, "ec": 1.0}


@dataclass(frozen=True)
class AOGMCounts:
    """AOGM error counts and the CTC scores derived from them.

    Attributes
    ----------
    ns, fn_nodes, fp_nodes : int
        Node errors: non-split (merge) operations, missed and extra nodes.
    ed, ea, ec : int
        Edge errors: edges to delete (extra), edges to add (missing), edges whose
        semantics must change.
    num_gt_nodes, num_gt_edges : int
        ``|V|`` and ``|E|`` of the ground truth.
    """

    ns: int
    fn_nodes: int
    fp_nodes: int
    ed: int
    ea: int
    ec: int
    num_gt_nodes: int
    num_gt_edges: int

    @property
    def aogm(self) -> float:
        """Weighted sum of all errors."""
        w = CTC_WEIGHTS
        return (
            w["ns"] * self.ns + w["fn"] * self.fn_nodes + w["fp"] * self.fp_nodes
            + w["ed"] * self.ed + w["ea"] * self.ea + w["ec"] * self.ec
        )

    @property
    def aogm0(self) -> float:
        """Cost of building the ground truth from scratch: 10·|V| + 1.5·|E|."""
        return CTC_WEIGHTS["fn"] * self.num_gt_nodes + CTC_WEIGHTS["ea"] * self.num_gt_edges

    @property
    def aogm_d(self) -> float:
        """Detection part of the AOGM (NS, FN, FP)."""
        w = CTC_WEIGHTS
        return w["ns"] * self.ns + w["fn"] * self.fn_nodes + w["fp"] * self.fp_nodes

    @property
    def aogm_a(self) -> float:
        """Association (linking) part of the AOGM (ED, EA, EC)."""
        w = CTC_WEIGHTS
        return w["ed"] * self.ed + w["ea"] * self.ea + w["ec"] * self.ec

    @property
    def tra(self) -> float:
        """TRA = 1 − min(AOGM, AOGM₀)/AOGM₀ (NaN without ground truth)."""
        return _score(self.aogm, self.aogm0)

    @property
    def det(self) -> float:
        """DET = 1 − min(AOGM-D, 10·|V|)/(10·|V|) (NaN without ground-truth nodes)."""
        return _score(self.aogm_d, CTC_WEIGHTS["fn"] * self.num_gt_nodes)

    @property
    def lnk(self) -> float:
        """LNK = 1 − min(AOGM-A, 1.5·|E|)/(1.5·|E|) (NaN without ground-truth edges)."""
        return _score(self.aogm_a, CTC_WEIGHTS["ea"] * self.num_gt_edges)

    def to_dict(self) -> dict[str, float]:
        """Counts plus AOGM, AOGM₀, DET, TRA, LNK as plain Python numbers."""
        out: dict[str, float] = {k: int(v) for k, v in asdict(self).items()}
        out.update(aogm=self.aogm, aogm0=self.aogm0, det=self.det, tra=self.tra, lnk=self.lnk)
        return out


def _score(cost: float, cost0: float) -> float:
    if cost0 <= 0:
        return float("nan")
    return float(1.0 - min(cost, cost0) / cost0)


def parent_link_mask(t: np.ndarray, src: np.ndarray, tgt: np.ndarray, num_nodes: int) -> np.ndarray:
    """Which edges are parent links (True) rather than track continuations (False).

    Parameters
    ----------
    t : ndarray of int, shape (N,)
        Frame of every node.
    src, tgt : ndarray of int, shape (E,)
        Row indices of edge sources and targets.
    num_nodes : int
        N.

    Returns
    -------
    ndarray of bool, shape (E,)
        True for edges at divisions, merges and gaps (frame difference > 1).
    """
    if src.size == 0:
        return np.zeros(0, bool)
    outdeg = np.bincount(src, minlength=num_nodes)
    indeg = np.bincount(tgt, minlength=num_nodes)
    continuation = (t[tgt] - t[src] == 1) & (outdeg[src] == 1) & (indeg[tgt] == 1)
    return ~continuation


def aogm_counts(
    num_gt: int,
    gt_src: np.ndarray,
    gt_tgt: np.ndarray,
    gt_parent_link: np.ndarray,
    num_pred: int,
    pred_src: np.ndarray,
    pred_tgt: np.ndarray,
    pred_parent_link: np.ndarray,
    match_gt: np.ndarray,
    match_pred: np.ndarray,
) -> AOGMCounts:
    """Count AOGM errors from edge lists and a node matching (all in row indices).

    Parameters
    ----------
    num_gt, num_pred : int
        Number of ground-truth / predicted nodes.
    gt_src, gt_tgt, gt_parent_link : ndarray, shape (E_gt,)
        Ground-truth edges (source row, target row) and their semantics
        (True = parent link, see :func:`parent_link_mask`).
    pred_src, pred_tgt, pred_parent_link : ndarray, shape (E_pred,)
        Predicted edges, likewise.
    match_gt, match_pred : ndarray of int, shape (M,)
        Matched pairs (ground-truth row, predicted row). A predicted node may match
        several ground-truth nodes (merges, counted as NS); a ground-truth node at
        most one predicted node.

    Returns
    -------
    AOGMCounts

    Raises
    ------
    InvalidInputError
        If a ground-truth node is matched twice or a row index is out of range.
    """
    match_gt = np.asarray(match_gt, np.int64)
    match_pred = np.asarray(match_pred, np.int64)
    if match_gt.size and (
        match_gt.min() < 0 or match_gt.max() >= num_gt
        or match_pred.min() < 0 or match_pred.max() >= num_pred
    ):
        raise InvalidInputError("matched node rows are out of range of the graphs")
    ref_count = np.bincount(match_gt, minlength=num_gt)
    if np.any(ref_count > 1):
        raise InvalidInputError(
            f"{int(np.sum(ref_count > 1))} ground-truth nodes are matched to several predicted "
            "nodes; the CTC measure needs each ground-truth node matched at most once"
        )
    comp_count = np.bincount(match_pred, minlength=num_pred)
    fn_nodes = int(np.sum(ref_count == 0))
    fp_nodes = int(np.sum(comp_count == 0))
    ns = int(np.sum(np.maximum(comp_count - 1, 0)))

    # predicted nodes matched exactly once, mapped to their ground-truth node
    unique = comp_count == 1
    comp_to_ref = np.full(num_pred, -1, np.int64)
    sel = unique[match_pred]
    comp_to_ref[match_pred[sel]] = match_gt[sel]

    gt_src = np.asarray(gt_src, np.int64)
    gt_tgt = np.asarray(gt_tgt, np.int64)
    pred_src = np.asarray(pred_src, np.int64)
    pred_tgt = np.asarray(pred_tgt, np.int64)
    induced = unique[pred_src] & unique[pred_tgt] if pred_src.size else np.zeros(0, bool)
    base = max(num_gt, 1)
    gt_keys = gt_src * base + gt_tgt
    pred_keys = comp_to_ref[pred_src[induced]] * base + comp_to_ref[pred_tgt[induced]]
    pred_sem = np.asarray(pred_parent_link, bool)[induced]

    order = np.argsort(gt_keys, kind="stable")
    sorted_keys = gt_keys[order]
    if sorted_keys.size:
        pos = np.clip(np.searchsorted(sorted_keys, pred_keys), 0, sorted_keys.size - 1)
        found = sorted_keys[pos] == pred_keys
    else:
        pos = np.zeros(pred_keys.size, np.int64)
        found = np.zeros(pred_keys.size, bool)
    ed = int(np.sum(~found))
    gt_hit = np.zeros(gt_keys.size, bool)
    gt_rows = order[pos[found]]
    gt_hit[gt_rows] = True
    ea = int(np.sum(~gt_hit))
    ec = int(np.sum(np.asarray(gt_parent_link, bool)[gt_rows] != pred_sem[found]))
    return AOGMCounts(
        ns=ns, fn_nodes=fn_nodes, fp_nodes=fp_nodes, ed=ed, ea=ea, ec=ec,
        num_gt_nodes=int(num_gt), num_gt_edges=int(gt_keys.size),
    )
