"""Division precision, recall and F1 with a frame tolerance (one-to-one node matching).

A ground-truth division (node with ≥ 2 children) is

- a true positive when its matched predicted node divides too and exactly two of its
  child edges are reproduced (both endpoints matched and linked in the prediction);
- a "wrong children" division when the matched node divides but the children differ;
- a false negative when it is unmatched or its match does not divide.

Predicted divisions not matched to a ground-truth division are false positives.

With a tolerance of ``n`` frames, a false-positive / false-negative pair whose frames
differ by ``1..n`` becomes one true positive when the lineages agree: the earlier
division's node matches the ancestor of the later one in the earlier frame, and each
daughter branch of the earlier division reaches (walking down its unbranched chain) a
matched node lying below that ancestor in the other graph. Pairs are tried for
``δ = 1, …, n`` in turn, each division taking part in at most one pair. These are the
rules of traccuracy's ``DivisionMetrics`` (written here independently, vectorised
where it matters).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from celltrack.errors import InvalidInputError

__all__ = ["DivisionScores", "division_scores"]


@dataclass(frozen=True)
class DivisionScores:
    """Division counts and scores at a frame tolerance.

    Attributes
    ----------
    tolerance : int
        Frame tolerance used (frames).
    num_gt, num_pred : int
        Divisions in ground truth / prediction.
    tp, fp, fn, wrong_children : int
        True positive, false positive, false negative and wrong-children divisions.
    precision, recall, f1 : float
        ``tp/num_pred``, ``tp/num_gt`` and their harmonic mean (NaN when undefined).
    """

    tolerance: int
    num_gt: int
    num_pred: int
    tp: int
    fp: int
    fn: int
    wrong_children: int
    precision: float
    recall: float
    f1: float

    def to_dict(self) -> dict[str, float]:
        """Plain-Python dictionary of every field."""
        return dict(asdict(self))


class _Tree:
    """Children lists and a parent array of a graph given by row-index edges."""

    def __init__(self, t: np.ndarray, src: np.ndarray, tgt: np.ndarray) -> None:
        n = t.size
        self.t = t
        self.parent = np.full(n, -1, np.int64)
        self.parent[tgt] = src
        order = np.argsort(src, kind="stable")
        self.child_sorted = tgt[order]
        self.start = np.searchsorted(src[order], np.arange(n + 1))
        self.outdeg = np.diff(self.start)

    def children(self, row: int) -> np.ndarray:
        return self.child_sorted[self.start[row] : self.start[row + 1]]

    def ancestor(self, row: int, steps: int) -> int:
        for _ in range(steps):
            row = int(self.parent[row])
            if row < 0:
                return -1
        return row

    def reaches(self, source: int, target: int) -> bool:
        """True if ``target`` is ``source`` or one of its descendants."""
        t_source = self.t[source]
        row = target
        while row >= 0 and self.t[row] >= t_source:
            if row == source:
                return True
            row = int(self.parent[row])
        return False


def _ratio(num: int, den: int) -> float:
    return float("nan") if den == 0 else num / den


def _f1(p: float, r: float) -> float:
    if np.isnan(p) or np.isnan(r) or p + r == 0:
        return float("nan")
    return 2 * p * r / (p + r)


def division_scores(
    gt_t: np.ndarray,
    gt_src: np.ndarray,
    gt_tgt: np.ndarray,
    pred_t: np.ndarray,
    pred_src: np.ndarray,
    pred_tgt: np.ndarray,
    gt_to_pred: np.ndarray,
    pred_to_gt: np.ndarray,
    tolerance: int = 1,
) -> DivisionScores:
    """Score divisions from row-index edge lists and a one-to-one matching.

    Parameters
    ----------
    gt_t, pred_t : ndarray of int, shape (N_gt,), (N_pred,)
        Node frames.
    gt_src, gt_tgt, pred_src, pred_tgt : ndarray of int
        Edges as (source row, target row), parent → child.
    gt_to_pred, pred_to_gt : ndarray of int
        Matched row on the other side for every node (-1 where unmatched).
    tolerance : int
        Frame tolerance ``≥ 0`` for shifted divisions (frames).

    Returns
    -------
    DivisionScores
    """
    if isinstance(tolerance, bool) or int(tolerance) != tolerance or tolerance < 0:
        raise InvalidInputError(
            f"division_tolerance must be an integer >= 0 frames, got {tolerance!r}"
        )
    tolerance = int(tolerance)
    gtree = _Tree(np.asarray(gt_t), np.asarray(gt_src), np.asarray(gt_tgt))
    ptree = _Tree(np.asarray(pred_t), np.asarray(pred_src), np.asarray(pred_tgt))
    gt_div = np.flatnonzero(gtree.outdeg >= 2)
    pred_div = np.flatnonzero(ptree.outdeg >= 2)

    # true-positive ground-truth edges: both ends matched and the image edge exists
    n_pred = pred_t.size
    ms, mt = gt_to_pred[gt_src], gt_to_pred[gt_tgt]
    ok = (ms >= 0) & (mt >= 0)
    pkeys = np.sort(pred_src.astype(np.int64) * max(n_pred, 1) + pred_tgt)
    qkeys = ms[ok].astype(np.int64) * max(n_pred, 1) + mt[ok]
    hit = np.zeros(gt_src.size, bool)
    if pkeys.size and qkeys.size:
        pos = np.clip(np.searchsorted(pkeys, qkeys), 0, pkeys.size - 1)
        hit[np.flatnonzero(ok)] = pkeys[pos] == qkeys
    tp_children = np.bincount(gt_src[hit], minlength=gt_t.size)

    is_pred_div = ptree.outdeg >= 2
    match = gt_to_pred[gt_div]
    matched_div = match >= 0
    matched_div[matched_div] = is_pred_div[match[matched_div]]
    fn_mask = ~matched_div
    tp_mask = matched_div & (tp_children[gt_div] == 2)
    wc_mask = matched_div & ~tp_mask
    fn_rows = gt_div[fn_mask]
    paired_pred = np.zeros(n_pred, bool)
    paired_pred[match[matched_div]] = True
    fp_rows = pred_div[~paired_pred[pred_div]]
    tp0 = int(tp_mask.sum())
    shifted = _shifted_pairs(gtree, ptree, fp_rows, fn_rows, gt_to_pred, pred_to_gt, tolerance)
    tp = tp0 + shifted
    precision = _ratio(tp, pred_div.size)
    recall = _ratio(tp, gt_div.size)
    return DivisionScores(
        tolerance=tolerance,
        num_gt=int(gt_div.size),
        num_pred=int(pred_div.size),
        tp=tp,
        fp=int(fp_rows.size) - shifted,
        fn=int(fn_rows.size) - shifted,
        wrong_children=int(wc_mask.sum()),
        precision=precision,
        recall=recall,
        f1=_f1(precision, recall),
    )


def _shifted_pairs(
    gtree: _Tree,
    ptree: _Tree,
    fp_rows: np.ndarray,
    fn_rows: np.ndarray,
    gt_to_pred: np.ndarray,
    pred_to_gt: np.ndarray,
    tolerance: int,
) -> int:
    """Number of (FP, FN) division pairs within ``tolerance`` frames that agree."""
    if tolerance == 0 or fp_rows.size == 0 or fn_rows.size == 0:
        return 0
    t_fp = ptree.t[fp_rows]
    t_fn = gtree.t[fn_rows]
    # candidate pairs 1 <= |Δt| <= tolerance, in (fp, fn) order, without an F×G matrix
    fn_order = np.argsort(t_fn, kind="stable")
    t_sorted = t_fn[fn_order]
    lo = np.searchsorted(t_sorted, t_fp - tolerance, side="left")
    hi = np.searchsorted(t_sorted, t_fp + tolerance, side="right")
    counts = hi - lo
    cand_i = np.repeat(np.arange(fp_rows.size), counts)
    offsets = np.arange(cand_i.size) - np.repeat(np.cumsum(counts) - counts, counts)
    cand_j = fn_order[np.repeat(lo, counts) + offsets]
    dt = np.abs(t_fp[cand_i] - t_fn[cand_j])
    keep = dt >= 1
    order = np.lexsort((cand_j[keep], cand_i[keep]))
    cand_i, cand_j, dt = cand_i[keep][order], cand_j[keep][order], dt[keep][order]
    if cand_i.size == 0:
        return 0
    fp_done = np.zeros(fp_rows.size, bool)
    fn_done = np.zeros(fn_rows.size, bool)
    count = 0
    for delta in range(1, tolerance + 1):
        for i, j, d in zip(cand_i.tolist(), cand_j.tolist(), dt.tolist()):
            if fp_done[i] or fn_done[j] or d > delta:
                continue
            fp, fn = int(fp_rows[i]), int(fn_rows[j])
            if ptree.t[fp] < gtree.t[fn]:
                ok = _agree(ptree, gtree, fp, fn, pred_to_gt, gt_to_pred)
            else:
                ok = _agree(gtree, ptree, fn, fp, gt_to_pred, pred_to_gt)
            if ok:
                fp_done[i] = fn_done[j] = True
                count += 1
    return count


def _agree(
    early: _Tree,
    late: _Tree,
    early_node: int,
    late_node: int,
    early_to_late: np.ndarray,
    late_to_early: np.ndarray,
) -> bool:
    """Does the early division (in ``early``) explain the later one (in ``late``)?"""
    steps = int(late.t[late_node] - early.t[early_node])
    anc = late.ancestor(late_node, steps)
    if anc < 0 or late_to_early[anc] != early_node:
        return False
    daughters = early.children(early_node)
    correct = 0
    for d in daughters.tolist():
        row = d
        while True:
            m = int(early_to_late[row])
            if m >= 0 and late.reaches(anc, m):
                correct += 1
                break
            kids = early.children(row)
            if kids.size != 1:
                break
            row = int(kids[0])
    return correct == 2
