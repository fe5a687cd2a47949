"""Sparse annotations drawn from a ground-truth lineage, the way a person would make them."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from celltrack.errors import InvalidInputError
from celltrack.graph import TAGS, TrackGraph

__all__ = ["sample_annotations"]

log = logging.getLogger(__name__)


def _check_count(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise InvalidInputError(f"{name} must be an integer >= 0, got {value!r}")
    return int(value)


def _links_into(gt: TrackGraph) -> tuple[np.ndarray, np.ndarray]:
    """Edge rows whose parent is exactly one frame before the child, and the child frames."""
    src, tgt = gt.edge_index()
    t = gt.t
    one_step = np.flatnonzero(t[tgt] == t[src] + 1)
    return one_step, t[tgt[one_step]]


def _choose_frame(
    gt: TrackGraph, n_nuclei: int, n_links: int, rng: np.random.Generator
) -> np.ndarray:
    frames, counts = np.unique(gt.t, return_counts=True)
    if n_links > 0:
        _, link_t = _links_into(gt)
        link_counts = np.array([np.count_nonzero(link_t == f) for f in frames])
        if link_counts.max(initial=0) > 0:
            ok = link_counts >= min(n_links, int(link_counts.max()))
            ok &= counts >= min(n_nuclei, int(counts[ok].max()))
            return np.array([rng.choice(frames[ok])])
    ok = counts >= min(n_nuclei, int(counts.max()))
    return np.array([rng.choice(frames[ok])])


def sample_annotations(
    gt: TrackGraph,
    *,
    n_nuclei: int = 10,
    frames: int | Sequence[int] | np.ndarray | None = None,
    n_links: int = 0,
    rng: np.random.Generator | int | None = None,
    position_noise_um: float = 0.0,
    tag: str = "tp",
) -> TrackGraph:
    """Draw sparse annotations from a ground-truth lineage: a few nuclei and a few links.

    Mimics a person annotating: in each of a few frames, ``n_nuclei`` nuclei are marked
    (position and ellipsoid, tagged ``tag``); ``n_links`` links (parent at ``t − 1`` →
    child at ``t``, child frame among ``frames``; links to already marked nuclei are
    preferred) are approved. Both ends of every link are included as annotated nodes.

    Parameters
    ----------
    gt : TrackGraph
        Ground truth (e.g. ``make_embryo(cfg).gt``); its ``covariance`` and ``radius``
        columns are carried over when present.
    n_nuclei : int
        Nuclei to annotate per frame (all of a frame's nuclei if it has fewer).
    frames : int or sequence of int, optional
        Frames to annotate. Default: one frame chosen by ``rng`` among those with enough
        nuclei (and, when ``n_links > 0``, enough links arriving from the previous frame).
    n_links : int
        Number of approved links to draw (fewer, with a warning, if fewer exist).
    rng : numpy.random.Generator or int, optional
        Random generator or seed (``None``: fresh entropy, not reproducible).
    position_noise_um : float
        Standard deviation (µm) of Gaussian noise added to annotated positions, per axis
        (axes along which the ground truth does not vary, e.g. z of 2D data, are left
        untouched).
    tag : str
        Value of the ``tag`` column, one of :data:`celltrack.graph.TAGS`.

    Returns
    -------
    TrackGraph
        Annotated nodes (ids are the ground-truth ids) with columns ``covariance`` and
        ``radius`` (when the ground truth has them) and ``tag``; edges parent → child with
        the bool column ``approved`` (all True). ``attrs["frames"]`` lists the frames.

    Raises
    ------
    InvalidInputError
        On negative counts, an unknown tag, negative noise, frames without nuclei or an
        empty ground truth.
    """
    if not isinstance(gt, TrackGraph):
        raise InvalidInputError(f"gt must be a TrackGraph, got {type(gt).__name__}")
    n_nuclei = _check_count(n_nuclei, "n_nuclei")
    n_links = _check_count(n_links, "n_links")
    if tag not in TAGS:
        raise InvalidInputError(f"tag must be one of {list(TAGS)}, got {tag!r}")
    noise = float(position_noise_um)
    if not np.isfinite(noise) or noise < 0:
        raise InvalidInputError(f"position_noise_um must be finite and >= 0 µm, got {noise}")
    if gt.num_nodes == 0:
        raise InvalidInputError("gt has no nodes: nothing to annotate")
    rng = np.random.default_rng(rng)

    if frames is None:
        frame_list = _choose_frame(gt, n_nuclei, n_links, rng)
    else:
        frame_list = np.unique(np.atleast_1d(np.asarray(frames)))
        if frame_list.dtype.kind not in "iu":
            raise InvalidInputError(f"frames must be integers, got {frame_list.tolist()}")
        missing = frame_list[~np.isin(frame_list, gt.frames)]
        if missing.size:
            raise InvalidInputError(
                f"frames {missing.tolist()} hold no ground-truth nuclei; choose among "
                f"frames {int(gt.frames.min())}..{int(gt.frames.max())}"
            )

    chosen = [
        rng.choice(ids, size=min(n_nuclei, ids.size), replace=False)
        for ids in (gt.nodes_at(int(f)) for f in frame_list)
    ]
    node_ids = np.concatenate(chosen) if chosen else np.zeros(0, np.int64)

    edge_rows = np.zeros(0, np.int64)
    if n_links > 0:
        rows, child_t = _links_into(gt)
        rows = rows[np.isin(child_t, frame_list)]
        rows = rows[rng.permutation(rows.size)]
        marked = np.isin(gt.edges["target"][rows], node_ids)
        rows = np.concatenate([rows[marked], rows[~marked]])  # marked children first
        if rows.size < n_links:
            log.warning(
                "only %d links from t-1 into frames %s exist; %d were asked for",
                rows.size,
                frame_list.tolist(),
                n_links,
            )
        edge_rows = np.sort(rows[:n_links])
        ends = np.concatenate([gt.edges["source"][edge_rows], gt.edges["target"][edge_rows]])
        node_ids = np.concatenate([node_ids, ends])

    node_ids = np.unique(node_ids)
    rows_n = gt.index_of(node_ids)
    order = np.lexsort((node_ids, gt.t[rows_n]))
    rows_n = rows_n[order]
    pos = gt.positions[rows_n]
    if noise > 0 and rows_n.size:
        varying = np.ptp(gt.positions, axis=0) > 0
        pos = pos + rng.normal(0.0, noise, pos.shape) * varying
    nodes: dict[str, np.ndarray] = {
        "id": gt.ids[rows_n],
        "t": gt.t[rows_n],
        "z": pos[:, 0],
        "y": pos[:, 1],
        "x": pos[:, 2],
    }
    for column in ("covariance", "radius"):
        if column in gt.nodes:
            nodes[column] = np.array(gt.nodes[column][rows_n])
    nodes["tag"] = np.full(rows_n.size, tag)
    edges = {
        "source": gt.edges["source"][edge_rows],
        "target": gt.edges["target"][edge_rows],
        "approved": np.ones(edge_rows.size, dtype=bool),
    }
    attrs = {k: v for k, v in gt.attrs.items() if k in ("voxel_size", "shape")}
    attrs["frames"] = [int(f) for f in frame_list]
    attrs["source"] = "celltrack.synth.sample_annotations"
    return TrackGraph(nodes, edges, attrs=attrs)
