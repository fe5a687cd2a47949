"""CTC measures straight from Cell Tracking Challenge folders (label masks + track files).

Nodes are the (frame, label) objects present in the masks. A result object matches a
reference marker when it covers more than half of the marker's voxels (the official
rule), so a result object may match several markers (counted as NS). Edges follow the
track files: the same label in consecutive frames is a track continuation; a track
with parent ``P`` adds a parent link from ``P``'s last node to its own first node.

Folders, track files and masks are read through :mod:`celltrack.io.ctc_files`, the one
CTC parser (also behind :func:`celltrack.io.read_ctc`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from celltrack.errors import FormatError, ShapeError
from celltrack.eval.ctc import aogm_counts
from celltrack.eval.scores import TrackingScores
from celltrack.io.ctc_files import (
    check_frame_labels,
    ctc_edges,
    find_mask_files,
    find_track_file,
    object_rows,
    read_mask,
    read_track_file,
)

__all__ = ["evaluate_ctc", "match_masks", "read_track_file"]

logger = logging.getLogger(__name__)


def match_masks(
    ref: np.ndarray, comp: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Official CTC object matching of one frame.

    Parameters
    ----------
    ref : ndarray of int, shape (Z, Y, X) or (Y, X)
        Reference (ground-truth) marker labels, 0 = background.
    comp : ndarray of int, same shape
        Result labels, 0 = background.

    Returns
    -------
    ref_labels, comp_labels : ndarray of int64
        Sorted labels present in each image.
    matched_ref, matched_comp : ndarray of int64, shape (M,)
        Label pairs where the result object covers more than half of the marker.
    """
    if ref.shape != comp.shape:
        raise ShapeError(
            f"reference and result masks differ in shape: {ref.shape} vs {comp.shape}; "
            "results must be written on the same grid as the ground truth"
        )
    r = np.asarray(ref).ravel()
    c = np.asarray(comp).ravel()
    for name, a in (("reference", r), ("result", c)):
        if a.dtype.kind not in "iu" or (a.size and a.min() < 0):
            raise FormatError(f"{name} masks must hold non-negative integer labels, got {a.dtype}")
    ref_size = np.bincount(r, minlength=1)
    comp_size = np.bincount(c, minlength=1)
    ref_labels = np.flatnonzero(ref_size[1:]) + 1
    comp_labels = np.flatnonzero(comp_size[1:]) + 1
    both = (r != 0) & (c != 0)
    base = comp_size.size
    keys, counts = np.unique(r[both].astype(np.int64) * base + c[both], return_counts=True)
    pr, pc = keys // base, keys % base
    keep = 2 * counts > ref_size[pr]
    return ref_labels, comp_labels, pr[keep], pc[keep]


def evaluate_ctc(
    gt_dir: str | Path, res_dir: str | Path, *, progress: bool = False
) -> TrackingScores:
    """CTC DET, TRA, LNK and AOGM components from CTC folders.

    Parameters
    ----------
    gt_dir : str or Path
        Ground-truth folder: ``.../01_GT`` (with ``TRA/``) or ``.../01_GT/TRA``, holding
        ``man_track.txt`` and ``man_trackTTT.tif``.
    res_dir : str or Path
        Result folder holding ``res_track.txt`` and ``maskTTT.tif``.
    progress : bool
        Show a progress bar over frames.

    Returns
    -------
    TrackingScores
        With ``divisions`` and ``linajea`` set to None.

    Raises
    ------
    FormatError
        On missing folders, track files or masks, frames present on one side only, or
        an invalid result (labels in masks that contradict the track file, parents that
        end after their children begin, ...).
    ShapeError
        If a result mask's shape differs from the ground truth's.
    """
    gt_file, _ = find_track_file(gt_dir, "gt")
    res_file, _ = find_track_file(res_dir, "res")
    gdir, rdir = gt_file.parent, res_file.parent
    gt_tracks = read_track_file(gt_file)
    res_tracks = read_track_file(res_file)
    gt_files = find_mask_files(gdir, "gt")
    res_files = find_mask_files(rdir, "res")
    if not gt_files:
        raise FormatError(f"{gdir} holds no man_trackTTT.tif masks")
    if set(gt_files) != set(res_files):
        only_gt = sorted(set(gt_files) - set(res_files))[:5]
        only_res = sorted(set(res_files) - set(gt_files))[:5]
        raise FormatError(
            f"ground truth and result hold different frames ({len(gt_files)} vs "
            f"{len(res_files)} masks; only in ground truth: {only_gt}, only in result: "
            f"{only_res}); write one maskTTT.tif per ground-truth frame"
        )
    frames = np.array(sorted(gt_files), np.int64)
    if np.any(np.diff(frames) != 1):
        raise FormatError(f"{gdir}: mask frames must be consecutive, got {frames.tolist()[:10]}...")
    g_t, g_l, r_t, r_l, m_gt, m_res = [], [], [], [], [], []
    for f in tqdm(frames.tolist(), disable=not progress, desc="match CTC masks"):
        ref = read_mask(gt_files[f])
        comp = read_mask(res_files[f])
        rl, cl, mr, mc = match_masks(ref, comp)
        check_frame_labels(cl, res_tracks, f, res_files[f], res_file.name)
        g_t.append(np.full(rl.size, f, np.int64))
        g_l.append(rl)
        r_t.append(np.full(cl.size, f, np.int64))
        r_l.append(cl)
        m_gt.append(np.stack([np.full(mr.size, f, np.int64), mr], 1))
        m_res.append(np.stack([np.full(mc.size, f, np.int64), mc], 1))
    gt_nodes = np.stack([np.concatenate(g_t), np.concatenate(g_l)], 1)
    res_nodes = np.stack([np.concatenate(r_t), np.concatenate(r_l)], 1)
    g_src, g_tgt, g_par = ctc_edges(gt_nodes[:, 0], gt_nodes[:, 1], gt_tracks, gdir)
    r_src, r_tgt, r_par = ctc_edges(res_nodes[:, 0], res_nodes[:, 1], res_tracks, rdir)
    m_gt, m_res = np.concatenate(m_gt), np.concatenate(m_res)
    mg = object_rows(gt_nodes[:, 0], gt_nodes[:, 1], m_gt[:, 0], m_gt[:, 1])
    mr = object_rows(res_nodes[:, 0], res_nodes[:, 1], m_res[:, 0], m_res[:, 1])
    counts = aogm_counts(
        len(gt_nodes), g_src, g_tgt, g_par, len(res_nodes), r_src, r_tgt, r_par, mg, mr
    )
    return TrackingScores(
        aogm=counts,
        divisions=None,
        linajea=None,
        num_gt_nodes=len(gt_nodes),
        num_pred_nodes=len(res_nodes),
        num_gt_edges=int(g_src.size),
        num_pred_edges=int(r_src.size),
        num_matched=int(mg.size),
        parameters={"source": "ctc", "gt_dir": str(gdir), "res_dir": str(rdir)},
    )
