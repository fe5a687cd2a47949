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
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from scipy import sparse
from scipy.sparse import csgraph
from tqdm.auto import tqdm

from celltrack.errors import FormatError, GraphError, InvalidInputError, ShapeError
from celltrack.geometry import check_voxel_size, ellipsoid_mask, sphere_covariances
from celltrack.graph.trackgraph import TrackGraph
from celltrack.io.atomic import atomic_path

__all__ = ["ctc_segments", "read_ctc", "write_ctc"]

logger = logging.getLogger(__name__)

_KINDS = {"res": ("res_track.txt", "mask"), "gt": ("man_track.txt", "man_track")}
_MAX_LABEL = np.iinfo(np.uint16).max


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
    adj = sparse.csr_matrix(
        (np.ones(int(keep.sum()), np.int8), (src[keep], tgt[keep])), shape=(n, n)
    )
    _, comp = csgraph.connected_components(adj, directed=False)
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
    progress: bool = False,
) -> Path:
    """Write a lineage graph as a CTC folder (label masks + track file), atomically.

    Each node is painted as its ``covariance`` ellipsoid (or a sphere of ``radius`` µm
    when given or when the graph has no covariance) with its segment label. Larger
    ellipsoids are painted first so smaller ones stay visible where they overlap, and
    every node's centre voxel is set to its own label, so no node disappears.

    Parameters
    ----------
    graph : TrackGraph
        Lineage forest (at most one parent per node), positions in µm.
    path : str or Path
        Output folder (e.g. ``.../01_RES`` or ``.../01_GT/TRA``); replaced if present.
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
    progress : bool
        Show a progress bar over frames.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ShapeError
        If ``shape`` is not (T, Z, Y, X).
    InvalidInputError
        On a bad voxel size, radius or kind, or nodes outside the movie.
    GraphError
        If a node has several parents or there are more than 65535 segments.
    FormatError
        If a node could not be given any voxel (two nodes share a centre voxel).
    """
    if kind not in _KINDS:
        raise InvalidInputError(f"kind must be one of {sorted(_KINDS)}, got {kind!r}")
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
    if table.shape[0] > _MAX_LABEL:
        raise GraphError(
            f"the CTC format stores labels as uint16 (at most {_MAX_LABEL} segments), "
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

    track_name, prefix = _KINDS[kind]
    path = Path(path)
    order_t = np.argsort(t, kind="stable")
    t_sorted = t[order_t]
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
    """
    vs = check_voxel_size(voxel_size)
    folder = Path(path)
    track_file, prefix = _find_track_file(folder)
    table = _parse_track_file(track_file)
    frames = _find_frames(track_file.parent, prefix)
    if not frames:
        raise FormatError(
            f"{track_file.parent}: no '{prefix}TTT.tif' mask files next to {track_file.name}"
        )
    last = int(table[:, 2].max(initial=-1)) if table.size else -1
    n_frames = max(max(frames), last) + 1
    missing = [f for f in range(n_frames) if f not in frames]
    if missing:
        raise FormatError(
            f"{track_file.parent}: mask files for frames {missing[:10]} are missing "
            f"(expected '{prefix}TTT.tif' for every frame up to the last track end)"
        )
    by_label = {int(r[0]): r for r in table}
    node_t, node_label, node_pos, node_vol = [], [], [], []
    vol_shape: tuple[int, ...] | None = None
    for frame in tqdm(range(n_frames), disable=not progress, desc="read CTC"):
        file = frames[frame]
        mask = _read_mask(file)
        if vol_shape is None:
            vol_shape = mask.shape
        elif mask.shape != vol_shape:
            raise FormatError(
                f"{file}: shape {mask.shape} differs from the first frame's {vol_shape}"
            )
        present, centroid, count = _label_centroids(mask)
        expected = table[(table[:, 1] <= frame) & (table[:, 2] >= frame), 0]
        extra = np.setdiff1d(present, expected)
        if extra.size:
            where = [
                f"{lab} (B..E = {by_label[lab][1]}..{by_label[lab][2]})" if lab in by_label
                else f"{lab} (not in the track file)"
                for lab in extra[:5].tolist()
            ]
            raise FormatError(
                f"{file}: labels {where} appear in frame {frame} outside their track span "
                f"in {track_file.name}"
            )
        absent = np.setdiff1d(expected, present)
        if absent.size:
            raise FormatError(
                f"{file}: labels {absent[:10].tolist()} are missing from frame {frame} although "
                f"{track_file.name} says they are present (B <= {frame} <= E)"
            )
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
    edges = _ctc_edges(t, label, table)
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
    return TrackGraph(nodes, {"source": ids[edges[0]], "target": ids[edges[1]]}, attrs=attrs)


def _find_track_file(folder: Path) -> tuple[Path, str]:
    if not folder.is_dir():
        raise FormatError(f"{folder}: not a folder; give the CTC folder holding the track file")
    for where in (folder, folder / "TRA"):
        found = [(where / nm, pre) for nm, pre in _KINDS.values() if (where / nm).is_file()]
        if len(found) > 1:
            raise FormatError(
                f"{where}: holds both res_track.txt and man_track.txt; keep one per folder"
            )
        if found:
            return found[0]
    raise FormatError(
        f"{folder}: no res_track.txt or man_track.txt here or in {folder / 'TRA'}; "
        "is this a CTC result or TRA ground-truth folder?"
    )


def _parse_track_file(file: Path) -> np.ndarray:
    rows = []
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            values = [int(p) for p in parts]
        except ValueError:
            values = []
        if len(values) != 4:
            raise FormatError(
                f"{file}, line {number}: expected four integers 'L B E P', got {line.strip()!r}"
            )
        lab, begin, end, parent = values
        problem = None
        if not 0 < lab <= _MAX_LABEL:
            problem = f"label L={lab} must be in 1..{_MAX_LABEL}"
        elif begin < 0 or end < begin:
            problem = f"frames B={begin}, E={end} must satisfy 0 <= B <= E"
        elif parent < 0 or parent == lab:
            problem = f"parent P={parent} must be 0 or another track's label"
        if problem:
            raise FormatError(f"{file}, line {number}: {problem}")
        rows.append((lab, begin, end, parent, number))
    table = np.asarray(rows, np.int64).reshape(-1, 5)
    labels, counts = np.unique(table[:, 0], return_counts=True)
    if np.any(counts > 1):
        lab = int(labels[counts > 1][0])
        lines = table[table[:, 0] == lab, 4].tolist()
        raise FormatError(f"{file}, lines {lines}: label {lab} is defined more than once")
    span = {int(r[0]): (int(r[1]), int(r[2])) for r in table}
    for lab, begin, _, parent, number in table.tolist():
        if parent == 0:
            continue
        if parent not in span:
            raise FormatError(
                f"{file}, line {number}: parent P={parent} of label {lab} is not a track label"
            )
        if begin <= span[parent][1]:
            raise FormatError(
                f"{file}, line {number}: label {lab} begins at frame {begin}, not after its parent "
                f"{parent} ends (frame {span[parent][1]})"
            )
    return table[:, :4]


def _find_frames(folder: Path, prefix: str) -> dict[int, Path]:
    pattern = re.compile(rf"^{re.escape(prefix)}(\d+)\.tiff?$")
    frames: dict[int, Path] = {}
    for file in folder.iterdir():
        match = pattern.match(file.name)
        if match:
            frame = int(match.group(1))
            if frame in frames:
                raise FormatError(
                    f"{folder}: two mask files for frame {frame}: {frames[frame].name}, {file.name}"
                )
            frames[frame] = file
    return frames


def _read_mask(file: Path) -> np.ndarray:
    try:
        mask = tifffile.imread(file)
    except Exception as err:  # tifffile raises many types on corrupt files
        raise FormatError(f"{file}: unreadable TIFF ({type(err).__name__}: {err})") from err
    if mask.ndim == 2:
        mask = mask[None]
    if mask.ndim != 3:
        raise FormatError(
            f"{file}: expected a 2D (Y, X) or 3D (Z, Y, X) label image, got shape {mask.shape}"
        )
    if mask.dtype.kind not in "iu":
        raise FormatError(f"{file}: label images must hold integers, got dtype {mask.dtype}")
    return mask


def _label_centroids(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels present, their centroids (voxels, (n, 3)) and voxel counts (n,)."""
    flat = mask.reshape(-1)
    idx = np.flatnonzero(flat)
    if idx.size == 0:
        return np.zeros(0, np.int64), np.zeros((0, 3)), np.zeros(0, np.int64)
    values = flat[idx].astype(np.int64)
    if values.min() < 0:
        raise FormatError(f"label images must hold labels >= 0, found {int(values.min())}")
    present, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    coords = np.unravel_index(idx, mask.shape)
    centroid = np.stack(
        [np.bincount(inverse, weights=c, minlength=present.size) for c in coords], axis=1
    ) / counts[:, None]
    return present, centroid, counts.astype(np.int64)


def _ctc_edges(
    t: np.ndarray, label: np.ndarray, table: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Row-index edges: consecutive frames of one label, and parent end → child start."""
    order = np.lexsort((t, label))
    same = label[order][1:] == label[order][:-1]
    src, tgt = [order[:-1][same]], [order[1:][same]]
    children = table[table[:, 3] > 0]
    if children.size:
        stride = int(t.max()) + 1
        key = label * stride + t
        by_key = np.argsort(key)
        by_label = np.argsort(table[:, 0])
        parent_end = table[by_label[np.searchsorted(table[by_label, 0], children[:, 3])], 2]
        src.append(by_key[np.searchsorted(key[by_key], children[:, 3] * stride + parent_end)])
        tgt.append(by_key[np.searchsorted(key[by_key], children[:, 0] * stride + children[:, 1])])
    return np.concatenate(src), np.concatenate(tgt)
