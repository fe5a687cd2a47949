"""CTC measures straight from Cell Tracking Challenge folders (label masks + track files).

Nodes are the (frame, label) objects present in the masks. A result object matches a
reference marker when it covers more than half of the marker's voxels (the official
rule), so a result object may match several markers (counted as NS). Edges follow the
track files: the same label in consecutive frames is a track continuation; a track
with parent ``P`` adds a parent link from ``P``'s last node to its own first node.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import tifffile
from tqdm.auto import tqdm

from celltrack.errors import FormatError, InvalidInputError, ShapeError
from celltrack.eval.ctc import aogm_counts
from celltrack.eval.scores import TrackingScores

__all__ = ["evaluate_ctc", "match_masks", "read_track_file"]

logger = logging.getLogger(__name__)

_GT = ("man_track.txt", "man_track")
_RES = ("res_track.txt", "mask")


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


def read_track_file(path: str | Path) -> np.ndarray:
    """Read a CTC track file into an (n, 4) int64 array of rows ``L B E P``.

    Raises
    ------
    FormatError
        If a line does not hold four integers.
    """
    path = Path(path)
    rows = []
    for k, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        try:
            values = [int(p) for p in parts]
        except ValueError:
            raise FormatError(f"{path}:{k}: expected 4 integers 'L B E P', got {line!r}") from None
        if len(values) != 4:
            raise FormatError(f"{path}:{k}: expected 4 integers 'L B E P', got {line!r}")
        rows.append(values)
    return np.asarray(rows, np.int64).reshape(-1, 4)


def _find_frames(folder: Path, prefix: str) -> dict[int, Path]:
    pattern = re.compile(rf"^{re.escape(prefix)}(\d+)\.tiff?$")
    out: dict[int, Path] = {}
    for p in folder.iterdir():
        m = pattern.match(p.name)
        if m:
            out[int(m.group(1))] = p
    return out


def _resolve(folder: str | Path, kind: tuple[str, str], what: str) -> Path:
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidInputError(f"{what} folder {str(folder)!r} does not exist")
    for cand in (folder, folder / "TRA"):
        if (cand / kind[0]).is_file():
            return cand
    raise FormatError(
        f"{what} folder {str(folder)!r} has no {kind[0]} (looked in it and in its TRA "
        f"subfolder); a CTC {what} folder holds {kind[0]} and {kind[1]}TTT.tif masks"
    )


def _check_tracks(tracks: np.ndarray, where: Path) -> None:
    labels = tracks[:, 0]
    if np.any(labels <= 0):
        raise FormatError(f"{where}: track labels must be > 0")
    if np.unique(labels).size != labels.size:
        raise FormatError(f"{where}: track labels must be unique")
    if np.any(tracks[:, 2] < tracks[:, 1]) or np.any(tracks[:, 1] < 0):
        raise FormatError(f"{where}: every track needs 0 <= B <= E")
    if np.any(tracks[:, 3] < 0):
        raise FormatError(f"{where}: parent labels must be >= 0")
    has_parent = tracks[:, 3] > 0
    known = np.isin(tracks[has_parent, 3], labels)
    if not np.all(known):
        bad = tracks[has_parent][~known][:3].tolist()
        raise FormatError(f"{where}: tracks {bad} name a parent label that has no track line")
    order = np.argsort(labels)
    prow = order[np.searchsorted(labels[order], tracks[has_parent, 3])]
    late = tracks[prow, 2] >= tracks[has_parent, 1]
    if np.any(late):
        bad = tracks[has_parent][late][:3].tolist()
        raise FormatError(f"{where}: tracks {bad} begin before their parent track ends")


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
    InvalidInputError
        If a folder does not exist.
    FormatError
        On missing track files or masks, frames present on one side only, or an
        invalid result (labels in masks that contradict the track file, parents that
        end after their children begin, ...).
    ShapeError
        If a result mask's shape differs from the ground truth's.
    """
    gdir = _resolve(gt_dir, _GT, "ground-truth")
    rdir = _resolve(res_dir, _RES, "result")
    gt_tracks = read_track_file(gdir / _GT[0])
    res_tracks = read_track_file(rdir / _RES[0])
    _check_tracks(gt_tracks, gdir / _GT[0])
    _check_tracks(res_tracks, rdir / _RES[0])
    gt_files = _find_frames(gdir, _GT[1])
    res_files = _find_frames(rdir, _RES[1])
    if not gt_files:
        raise FormatError(f"{gdir} holds no {_GT[1]}TTT.tif masks")
    if set(gt_files) != set(res_files):
        only_gt = sorted(set(gt_files) - set(res_files))[:5]
        only_res = sorted(set(res_files) - set(gt_files))[:5]
        raise FormatError(
            f"ground truth and result hold different frames ({len(gt_files)} vs "
            f"{len(res_files)} masks; only in ground truth: {only_gt}, only in result: "
            f"{only_res}); write one {_RES[1]}TTT.tif per ground-truth frame"
        )
    frames = np.array(sorted(gt_files), np.int64)
    if np.any(np.diff(frames) != 1):
        raise FormatError(f"{gdir}: mask frames must be consecutive, got {frames.tolist()[:10]}...")
    g_t, g_l, r_t, r_l, m_gt, m_res = [], [], [], [], [], []
    for f in tqdm(frames.tolist(), disable=not progress, desc="match CTC masks"):
        ref = tifffile.imread(gt_files[f])
        comp = tifffile.imread(res_files[f])
        rl, cl, mr, mc = match_masks(ref, comp)
        g_t.append(np.full(rl.size, f, np.int64))
        g_l.append(rl)
        r_t.append(np.full(cl.size, f, np.int64))
        r_l.append(cl)
        m_gt.append(np.stack([np.full(mr.size, f, np.int64), mr], 1))
        m_res.append(np.stack([np.full(mc.size, f, np.int64), mc], 1))
    gt_nodes = np.stack([np.concatenate(g_t), np.concatenate(g_l)], 1)
    res_nodes = np.stack([np.concatenate(r_t), np.concatenate(r_l)], 1)
    _check_masks_against_tracks(res_nodes, res_tracks, frames, rdir)
    g_src, g_tgt, g_par = _ctc_edges(gt_nodes, gt_tracks, gdir)
    r_src, r_tgt, r_par = _ctc_edges(res_nodes, res_tracks, rdir)
    mg = _rows_of(gt_nodes, np.concatenate(m_gt))
    mr = _rows_of(res_nodes, np.concatenate(m_res))
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


def _keys(nodes: np.ndarray) -> np.ndarray:
    return nodes[:, 0] * (1 << 32) + nodes[:, 1]


def _rows_of(nodes: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Row of each (frame, label) in ``query`` within ``nodes`` (-1 where absent)."""
    keys = _keys(nodes)
    order = np.argsort(keys, kind="stable")
    sk = keys[order]
    q = _keys(query.reshape(-1, 2))
    if sk.size == 0:
        return np.full(q.size, -1, np.int64)
    pos = np.clip(np.searchsorted(sk, q), 0, sk.size - 1)
    return np.where(sk[pos] == q, order[pos], -1)


def _ctc_edges(
    nodes: np.ndarray, tracks: np.ndarray, where: Path
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Continuation edges (same label, consecutive frames) plus parent links."""
    nxt = _rows_of(nodes, nodes + np.array([1, 0]))
    cont_src = np.flatnonzero(nxt >= 0)
    cont_tgt = nxt[cont_src]
    child = tracks[tracks[:, 3] > 0]
    if child.size:
        labels = tracks[:, 0]
        order = np.argsort(labels)
        prow = order[np.searchsorted(labels[order], child[:, 3])]
        parent_end = np.stack([tracks[prow, 2], child[:, 3]], 1)
        child_begin = np.stack([child[:, 1], child[:, 0]], 1)
        ps, pt = _rows_of(nodes, parent_end), _rows_of(nodes, child_begin)
        missing = (ps < 0) | (pt < 0)
        if np.any(missing):
            bad = child[missing][:3].tolist()
            raise FormatError(
                f"{where}: the masks lack the end of the parent track or the start of tracks "
                f"{bad} (L B E P); every label must be painted in every frame B..E"
            )
    else:
        ps = pt = np.zeros(0, np.int64)
    src = np.concatenate([cont_src, ps]).astype(np.int64)
    tgt = np.concatenate([cont_tgt, pt]).astype(np.int64)
    parent = np.concatenate([np.zeros(cont_src.size, bool), np.ones(ps.size, bool)])
    return src, tgt, parent


def _check_masks_against_tracks(
    nodes: np.ndarray, tracks: np.ndarray, frames: np.ndarray, where: Path
) -> None:
    """Result validity: the labels in every mask are exactly those the track file lists."""
    lengths = tracks[:, 2] - tracks[:, 1] + 1
    expect_t = np.repeat(tracks[:, 1], lengths) + (
        np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    )
    expect = np.stack([expect_t, np.repeat(tracks[:, 0], lengths)], 1)
    expect = expect[np.isin(expect[:, 0], frames)]
    ke, kn = _keys(expect), _keys(nodes)
    extra = np.setdiff1d(kn, ke)
    absent = np.setdiff1d(ke, kn)
    if extra.size or absent.size:
        def fmt(k: np.ndarray) -> list[tuple[int, int]]:
            return [(int(v >> 32), int(v & 0xFFFFFFFF)) for v in k[:5]]

        raise FormatError(
            f"{where}: masks and res_track.txt disagree; (frame, label) painted but not in "
            f"the track file: {fmt(extra)}; listed but not painted: {fmt(absent)}"
        )
