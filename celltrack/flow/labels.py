"""Flow labels: the backward displacement of every annotated link, painted on its child.

For a link parent (frame t−1) → child (frame t) the label is the backward displacement
``parent − child`` (µm) divided per axis by ``max_displacement_um``, written into every
voxel of the child's ellipsoid at frame t, plus a mask channel that is 1 there and 0
(ignored) everywhere else. Where two children's ellipsoids overlap, each voxel goes to
the child whose centre is nearest (so sister nuclei right after a division keep their
own, opposite vectors).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from celltrack.config.flow import FlowLabelConfig
from celltrack.errors import GraphError, InvalidInputError, ShapeError
from celltrack.geometry import check_voxel_size, ellipsoid_mask, sphere_covariances
from celltrack.graph import TrackGraph

__all__ = ["FlowLinks", "flow_links", "render_flow_labels"]

logger = logging.getLogger(__name__)

#: Number of channels of a label volume: z, y, x displacement (normalised) + mask.
LABEL_CHANNELS = 4


class FlowLinks:
    """The annotated links used for flow, as flat arrays (one row per link).

    Attributes
    ----------
    t : ndarray, shape (L,), int64
        Frame of the child (the parent is at ``t - 1``).
    child : ndarray, shape (L, 3)
        Child centre (z, y, x) in µm.
    parent : ndarray, shape (L, 3)
        Parent centre (z, y, x) in µm.
    covariance : ndarray, shape (L, 3, 3)
        Child covariance in µm².
    """

    def __init__(
        self, t: np.ndarray, child: np.ndarray, parent: np.ndarray, covariance: np.ndarray
    ) -> None:
        self.t = t
        self.child = child
        self.parent = parent
        self.covariance = covariance

    def __len__(self) -> int:
        return int(self.t.shape[0])

    @property
    def displacement(self) -> np.ndarray:
        """Backward displacement ``parent − child``, shape (L, 3), µm."""
        return self.parent - self.child


def flow_links(links: TrackGraph, cfg: FlowLabelConfig | None = None) -> FlowLinks:
    """Extract the links that train the flow model from a graph.

    Parameters
    ----------
    links : TrackGraph
        Nodes with positions (µm) and optional ``covariance``; edges parent → child. When
        the edge column ``approved`` exists and ``cfg.approved_only`` is set, only
        approved edges are used.
    cfg : FlowLabelConfig, optional
        Label settings (defaults if omitted).

    Returns
    -------
    FlowLinks

    Raises
    ------
    GraphError
        If a used link does not join consecutive frames (child frame = parent frame + 1).
    """
    cfg = cfg or FlowLabelConfig()
    if not isinstance(links, TrackGraph):
        raise InvalidInputError(
            f"links must be a TrackGraph with edges parent → child, got {type(links).__name__}"
        )
    keep = np.ones(links.num_edges, bool)
    if cfg.approved_only and "approved" in links.edges:
        keep = np.asarray(links.edges["approved"]).astype(bool)
    src, tgt = links.edge_index()
    src, tgt = src[keep], tgt[keep]
    t = links.t
    gap = t[tgt] - t[src]
    if np.any(gap != 1):
        i = int(np.flatnonzero(gap != 1)[0])
        raise GraphError(
            "flow links must join consecutive frames (parent at t−1 → child at t); link "
            f"{links.ids[src[i]]} (t={t[src[i]]}) → {links.ids[tgt[i]]} (t={t[tgt[i]]}) "
            f"spans {gap[i]} frames. Interpolate the gap or leave such links out."
        )
    pos = links.positions
    if "covariance" in links.nodes:
        cov = np.asarray(links.nodes["covariance"], dtype=np.float64)[tgt]
    else:
        cov = sphere_covariances(tgt.size, cfg.default_radius_um)
    return FlowLinks(t[tgt].astype(np.int64), pos[tgt], pos[src], cov)


def _normalised(displacement: np.ndarray, cfg: FlowLabelConfig) -> np.ndarray:
    scale = np.asarray(cfg.max_displacement_um, dtype=np.float64)
    norm = displacement / scale
    over = np.any(np.abs(norm) > 1, axis=1)
    if np.any(over):
        logger.warning(
            "%d of %d links move more than max_displacement_um=%s; their labels are clipped "
            "to ±1 (raise max_displacement_um to represent them)",
            int(over.sum()),
            len(norm),
            tuple(cfg.max_displacement_um),
        )
    return np.clip(norm, -1.0, 1.0)


def render_flow_labels(
    links: TrackGraph | FlowLinks,
    shape: Sequence[int],
    voxel_size: Sequence[float],
    cfg: FlowLabelConfig | None = None,
) -> dict[int, np.ndarray]:
    """Render flow labels for every frame that holds an annotated child.

    Parameters
    ----------
    links : TrackGraph or FlowLinks
        Annotated links (parent at t−1 → child at t), see :func:`flow_links`.
    shape : sequence of int
        ``(T, Z, Y, X)`` or one frame's ``(Z, Y, X)`` in voxels (2D+t: Z = 1). With T,
        every child frame must lie in ``[1, T)``.
    voxel_size : sequence of 3 float
        Voxel size (z, y, x) in µm.
    cfg : FlowLabelConfig, optional
        ``max_displacement_um`` (µm per axis), ``min_voxels``, ``default_radius_um``.

    Returns
    -------
    dict of int to ndarray, shape (4, Z, Y, X), float32
        For each child frame t: channels 0-2 hold the backward displacement
        ``(parent − child) / max_displacement_um`` for z, y, x (clipped to [−1, 1]);
        channel 3 is the mask (1 = labelled voxel, 0 = ignored). Frames without links
        are absent.

    Raises
    ------
    GraphError
        If a link does not join consecutive frames.
    ShapeError
        If ``shape`` is not 3 or 4 positive sizes.
    InvalidInputError
        If a child frame is outside ``[1, T)``.

    Examples
    --------
    >>> g = TrackGraph({"id": [1, 2], "t": [0, 1], "z": [0, 0], "y": [5, 7], "x": [5, 5]},
    ...                {"source": [1], "target": [2]})
    >>> lab = render_flow_labels(g, (1, 12, 12), (1, 1, 1))
    >>> lab[1].shape, float(lab[1][1, 7, 5]) * 20
    ((4, 1, 12, 12), -2.0)
    """
    cfg = cfg or FlowLabelConfig()
    vs = check_voxel_size(voxel_size)
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (3, 4) or any(s < 1 for s in shape):
        raise ShapeError(
            f"shape must be (T, Z, Y, X) or (Z, Y, X) with sizes ≥ 1 (voxels), got {shape}"
        )
    frame_shape = shape[-3:]
    fl = links if isinstance(links, FlowLinks) else flow_links(links, cfg)
    if len(shape) == 4 and len(fl) and (fl.t.min() < 1 or fl.t.max() >= shape[0]):
        raise InvalidInputError(
            f"link child frames span {int(fl.t.min())}..{int(fl.t.max())} but the movie has "
            f"frames 0..{shape[0] - 1} (children need a previous frame); pass the full "
            "(T, Z, Y, X) shape"
        )
    norm = _normalised(fl.displacement, cfg)
    out: dict[int, np.ndarray] = {}
    nearest: dict[int, np.ndarray] = {}
    for i in range(len(fl)):  # one rasterisation per annotated link (tens to thousands)
        t = int(fl.t[i])
        sl, mask = ellipsoid_mask(
            fl.child[i], fl.covariance[i], vs, frame_shape, min_voxels=cfg.min_voxels
        )
        if not mask.any():
            continue
        if t not in out:
            out[t] = np.zeros((LABEL_CHANNELS, *frame_shape), np.float32)
            nearest[t] = np.full(frame_shape, np.inf, np.float32)
        grids = [(np.arange(s.start, s.stop) * vs[d] - fl.child[i, d]) for d, s in enumerate(sl)]
        dz, dy, dx = np.meshgrid(*grids, indexing="ij", sparse=True)
        dist = (dz * dz + dy * dy + dx * dx).astype(np.float32)
        box_near = nearest[t][sl]
        win = mask & (dist < box_near)
        box_near[win] = dist[win]
        for c in range(3):
            out[t][c][sl][win] = norm[i, c]
        out[t][3][sl][win] = 1.0
    return out
