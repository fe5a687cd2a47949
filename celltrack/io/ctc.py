"""Cell Tracking Challenge (CTC) format: label masks plus a track file.

A CTC folder holds one label image per frame (``maskTTT.tif`` for results,
``man_trackTTT.tif`` for ground truth; uint16; 3D volumes as multipage TIFF in Z, Y, X
order, 2D data as plain 2D images) and a track file (``res_track.txt`` /
``man_track.txt``) with one line ``L B E P`` per track segment: label ``L`` is present
in every frame ``B..E`` (0-based, inclusive) and ``P`` is the label of the parent
segment (0 when none). A segment ends at a division (each daughter starts a new label
with the mother as parent) and at a gap (a link spanning more than one frame starts a
new label whose parent is the old one); a child always begins after its parent ends.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from celltrack.errors import FormatError, GraphError, InvalidInputError, ShapeError
from celltrack.geometry import check_voxel_size, ellipsoid_mask, sphere_covariances
from celltrack.graph.components import component_labels
from celltrack.graph.trackgraph import TrackGraph
from celltrack.io.atomic import atomic_path, refuse_existing
from celltrack.io.ctc_files import (
    CTC_KINDS,
    MAX_LABEL,
    check_frame_labels,
    ctc_edges,
    find_mask_files,
    find_track_file,
    label_centroids,
    read_mask,
    read_track_file,
)

__all__ = ["ctc_segments", "read_ctc", "write_ctc"]

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- labels
def ctc_segments(graph: TrackGraph) -> tuple[np.ndarray, np.ndarray]:
    """CTC track segments of a lineage graph.

    Segments are the graph's tracklets (:meth:`TrackGraph.tracklets`) further cut at
    every link that spans more than one frame, so each label is present in every frame
    of its span ``B..E``.

    Parameters
    ----------
    graph : TrackGraph
        A graph in which every node has at most one parent.

    Returns
    -------
    labels : ndarray of int64, shape (N,)
        CTC label (1..L) of every node, numbered by segment start frame.
    table : ndarray of int64, shape (L, 4)
        Rows ``L B E P`` (label, first frame, last frame, parent label or 0).

    Raises
    ------
    GraphError
        If a node has more than one parent (CTC lineages are forests).
    """
    n = graph.num_nodes
    if n == 0:
        return np.zeros(0, np.int64), np.zeros((0, 4), np.int64)
    indeg, outdeg = graph.in_degree(), graph.out_degree()
    if np.any(indeg > 1):
        bad = graph.ids[indeg > 1][:5].tolist()
        raise GraphError(
            f"the CTC format needs at most one parent per node; nodes {bad} have more. "
            "Solve the candidate graph into a forest first"
        )
    src, tgt = graph.edge_index()
    t = graph.t
    keep = (outdeg[src] == 1) & (indeg[tgt] == 1) & (t[tgt] - t[src] == 1)
    comp = component_labels(src[keep], tgt[keep], n)
    n_seg = int(comp.max()) + 1
    begin = np.full(n_seg, np.iinfo(np.int64).max)
    np.minimum.at(begin, comp, t)
    end = np.full(n_seg, -1, np.int64)
    np.maximum.at(end, comp, t)
    # number segments by (begin, smallest node row) so labels are deterministic
    first_row = np.full(n_seg, n, np.int64)
    np.minimum.at(first_row, comp, np.arange(n))
    order = np.lexsort((first_row, begin))
    rank = np.empty(n_seg, np.int64)
    rank[order] = np.arange(1, n_seg + 1)
    labels = rank[comp]
    parent_label = np.zeros(n_seg, np.int64)
    cut = ~keep
    # the target of a cut edge starts its segment; its source ends the parent segment
    parent_label[comp[tgt[cut]]] = labels[src[cut]]
    table = np.stack([rank, begin, end, parent_label], axis=1)[order]
    return labels, table


# ---------------------------------------------------------------------------- writing
def write_ctc(
    graph: TrackGraph,
    path: str | Path,
    *,
    shape: Sequence[int],
    voxel_size: Sequence[float] | np.ndarray,
    radius: float | None = None,
    kind: str = "res",
    digits: int = 3,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Write a lineage graph as a CTC folder (label masks + track file), atomically.

    The folder is built under a temporary name and renamed into place when complete. An
    existing ``path`` that holds anything is left untouched (:class:`OutputExistsError`)
    unless ``overwrite=True``, which replaces the whole folder in one rename; an empty
    folder is filled.

    Each node is painted as its ``covariance`` ellipsoid (or a sphere of ``radius`` µm
    when given or when the graph has no covariance) with its segment label. Larger
    ellipsoids are painted first so smaller ones stay visible where they overlap, and
    every node's centre voxel is set to its own label, so no node disappears.

    Parameters
    ----------
    graph : TrackGraph
        Lineage forest (at most one parent per node), positions in µm.
    path : str or Path
        Output folder (e.g. ``.../01_RES`` or ``.../01_GT/TRA``).
    shape : sequence of 4 int
        Movie shape (T, Z, Y, X) in voxels; Z = 1 writes 2D images.
    voxel_size : sequence of 3 float
        Voxel size (z, y, x) in µm.
    radius : float, optional
        Paint spheres of this radius (µm) instead of the node covariances.
    kind : {"res", "gt"}
        ``"res"`` writes ``res_track.txt`` + ``maskTTT.tif``; ``"gt"`` writes
        ``man_track.txt`` + ``man_trackTTT.tif``.
    digits : int
        Minimum number of digits of the frame number in file names (grown to fit T).
    overwrite : bool
        Replace an existing, non-empty ``path`` (all of it, including files celltrack
        did not write).
    progress : bool
        Show a progress bar over frames.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    OutputExistsError
        If ``path`` holds files and ``overwrite`` is False (nothing is written).
    ShapeError
        If ``shape`` is not (T, Z, Y, X).
    InvalidInputError
        On a bad voxel size, radius or kind, or nodes outside the movie.
    GraphError
        If a node has several parents or there are more than 65535 segments.
    FormatError
        If a node could not be given any voxel (two nodes share a centre voxel).
    """
    if kind not in CTC_KINDS:
        raise InvalidInputError(f"kind must be one of {sorted(CTC_KINDS)}, got {kind!r}")
    refuse_existing(path, overwrite)
    shape_t = tuple(int(s) for s in np.asarray(shape).reshape(-1))
    if len(shape_t) != 4 or min(shape_t) < 1:
        raise ShapeError(f"shape must be (T, Z, Y, X) with entries >= 1, got {tuple(shape)}")
    vs = check_voxel_size(voxel_size)
    if radius is not None and not (np.isfinite(radius) and radius > 0):
        raise InvalidInputError(f"radius must be a finite number > 0 µm, got {radius!r}")
    if int(digits) < 1:
        raise InvalidInputError(f"digits must be >= 1, got {digits}")
    n_frames, vol_shape = shape_t[0], shape_t[1:]
    digits = max(int(digits), len(str(n_frames - 1)))

    labels, table = ctc_segments(graph)
    if table.shape[0] > MAX_LABEL:
        raise GraphError(
            f"the CTC format stores labels as uint16 (at most {MAX_LABEL} segments), "
            f"this graph has {table.shape[0]}"
        )
    t = graph.t
    pos = graph.positions
    centre = np.round(pos / vs).astype(np.int64)
    outside = (t >= n_frames) | np.any((centre < 0) | (centre >= np.asarray(vol_shape)), axis=1)
    if np.any(outside):
        bad = graph.ids[outside][:5].tolist()
        raise InvalidInputError(
            f"nodes {bad} lie outside the movie of shape (T, Z, Y, X) = {shape_t} with voxel "
            f"size {vs.tolist()} µm; crop the graph or give the full movie shape"
        )
    if radius is not None or "covariance" not in graph.nodes:
        if radius is None:
            raise InvalidInputError(
                "the graph has no 'covariance' node column: give radius= (µm) to paint spheres"
            )
        cov = sphere_covariances(graph.num_nodes, radius)
    else:
        cov = np.asarray(graph.nodes["covariance"], dtype=np.float64)
    if cov.size:
        finite = np.all(np.isfinite(cov), axis=(1, 2))
        ok = finite.copy()
        ok[finite] = np.linalg.eigvalsh(cov[finite])[:, 0] > 0
        if not np.all(ok):
            bad = graph.ids[~ok][:5].tolist()
            raise InvalidInputError(
                f"nodes {bad} have a covariance that is not finite and positive definite; "
                "fix these covariances or pass radius= (µm) to paint spheres"
            )
    size = np.abs(np.linalg.det(cov)) if cov.size else np.zeros(0)

    track_name, prefix = CTC_KINDS[kind]
    path = Path(path)
    order_t = np.argsort(t, kind="stable")
    t_sorted = t[order_t]
    import tifffile

    with atomic_path(path) as tmp:
        tmp.mkdir(parents=True)
        lines = "".join(f"{a} {b} {c} {d}\n" for a, b, c, d in table.tolist())
        (tmp / track_name).write_text(lines, encoding="utf-8")
        for frame in tqdm(range(n_frames), disable=not progress, desc="write CTC"):
            lo, hi = np.searchsorted(t_sorted, [frame, frame + 1])
            rows = order_t[lo:hi]
            volume = _paint_frame(rows, pos, cov, size, centre, labels, vs, vol_shape, graph)
            image = volume[0] if vol_shape[0] == 1 else volume
            tifffile.imwrite(
                tmp / f"{prefix}{frame:0{digits}d}.tif", image, photometric="minisblack"
            )
    return path


def _paint_frame(
    rows: np.ndarray,
    pos: np.ndarray,
    cov: np.ndarray,
    size: np.ndarray,
    centre: np.ndarray,
    labels: np.ndarray,
    vs: np.ndarray,
    vol_shape: tuple[int, int, int],
    graph: TrackGraph,
) -> np.ndarray:
    volume = np.zeros(vol_shape, np.uint16)
    if rows.size == 0:
        return volume
    rows = rows[np.argsort(-size[rows], kind="stable")]  # large first, small on top
    for row in rows.tolist():
        try:
            slices, mask = ellipsoid_mask(pos[row], cov[row], vs, vol_shape)
        except InvalidInputError as err:
            raise InvalidInputError(
                f"node {int(graph.ids[row])}: {err}; fix its covariance or pass radius="
            ) from None
        if mask.size:
            volume[slices][mask] = labels[row]
    cz, cy, cx = centre[rows].T
    volume[cz, cy, cx] = labels[rows]
    present = volume[cz, cy, cx] == labels[rows]
    if not np.all(present):
        lost = graph.ids[rows[~present]][:5].tolist()
        raise FormatError(
            f"nodes {lost} (frame {int(graph.t[rows[0]])}) share their centre voxel with another "
            "node and would vanish from the CTC masks; merge or move these nodes"
        )
    return volume


# ---------------------------------------------------------------------------- reading
def read_ctc(
    path: str | Path,
    *,
    voxel_size: Sequence[float] | np.ndarray = (1.0, 1.0, 1.0),
    progress: bool = False,
    lineage: bool = True,
) -> TrackGraph:
    """Read a CTC folder into a lineage graph, checking masks against the track file.

    Parameters
    ----------
    path : str or Path
        Folder holding ``res_track.txt`` + ``maskTTT.tif`` or ``man_track.txt`` +
        ``man_trackTTT.tif`` (or a folder whose ``TRA`` subfolder does).
    voxel_size : sequence of 3 float
        Voxel size (z, y, x) in µm used to turn centroids into positions.
    progress : bool
        Show a progress bar over frames.
    lineage : bool
        Check that no track has more than two daughter tracks; pass False to read one
        that has.

    Returns
    -------
    TrackGraph
        One node per label per frame at the label's centroid (µm), with node columns
        ``label`` (int64 CTC label) and ``volume`` (int64, voxels); edges link a label's
        consecutive frames and a parent segment's last node to each child's first node.
        ``attrs`` records ``voxel_size`` and ``ctc_shape`` (T, Z, Y, X).

    Raises
    ------
    FormatError
        If files are missing or malformed, or the masks disagree with the track file.
    GraphError
        With ``lineage``, if a track has more than two daughters.
    """
    vs = check_voxel_size(voxel_size)
    track_file, kind = find_track_file(path)
    table = read_track_file(track_file)
    prefix = CTC_KINDS[kind][1]
    frames = find_mask_files(track_file.parent, kind)
    if not frames:
        raise FormatError(
            f"{track_file.parent}: no '{prefix}TTT.tif' mask files next to {track_file.name}"
        )
    last = int(table[:, 2].max(initial=-1)) if table.size else -1
    n_frames = max(max(frames), last) + 1
    # bounded by the number of files: a track file may claim 10**9 frames in 17 bytes
    missing = [f for f in range(min(n_frames, len(frames) + 10)) if f not in frames]
    if missing:
        n_missing = n_frames - sum(1 for f in frames if f < n_frames)
        raise FormatError(
            f"{track_file.parent}: mask files for frames {missing[:10]} are missing "
            f"({n_missing} in all); expected '{prefix}TTT.tif' for every frame 0..{n_frames - 1} "
            f"(up to the last track end in {track_file.name}): add them or fix the track file"
        )
    node_t, node_label, node_pos, node_vol = [], [], [], []
    vol_shape: tuple[int, ...] | None = None
    for frame in tqdm(range(n_frames), disable=not progress, desc="read CTC"):
        file = frames[frame]
        mask = read_mask(file)
        if vol_shape is None:
            vol_shape = mask.shape
        elif mask.shape != vol_shape:
            raise FormatError(
                f"{file}: shape {mask.shape} differs from the first frame's {vol_shape}"
            )
        present, centroid, count = label_centroids(mask)
        check_frame_labels(present, table, frame, file, track_file.name)
        node_t.append(np.full(present.size, frame, np.int64))
        node_label.append(present)
        node_pos.append(centroid * vs)
        node_vol.append(count)
    vol_shape = vol_shape or (1, 1, 1)  # n_frames >= 1, so a frame was read
    t = np.concatenate(node_t)
    label = np.concatenate(node_label)
    positions = np.concatenate(node_pos).reshape(-1, 3)
    volume = np.concatenate(node_vol)
    ids = np.arange(t.size, dtype=np.int64)
    src, tgt, _ = ctc_edges(t, label, table, track_file.parent)
    nodes: dict[str, Any] = {
        "id": ids,
        "t": t,
        "z": positions[:, 0],
        "y": positions[:, 1],
        "x": positions[:, 2],
        "label": label,
        "volume": volume,
    }
    attrs = {"voxel_size": vs.tolist(), "ctc_shape": [n_frames, *vol_shape]}
    graph = TrackGraph(nodes, {"source": ids[src], "target": ids[tgt]}, attrs=attrs)
    if lineage and table.size:
        parents, counts = np.unique(table[table[:, 3] > 0, 3], return_counts=True)
        if np.any(counts > 2):
            bad = parents[counts > 2][:5].tolist()
            raise GraphError(
                f"{track_file}: tracks {bad} have more than two daughter tracks "
                f"({int(counts.max())}); a cell divides into two. Fix the parent column P, or "
                "pass lineage=False to read it anyway"
            )
    return graph
