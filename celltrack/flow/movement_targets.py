"""Movement-vector targets: at every voxel near an annotated child, the way to its parent.

For a link parent (frame t−1) → child (frame t), every voxel ``p`` of frame t within
``radius_um`` of the child's centre gets the vector ``parent − p`` (µm, z, y, x): where
the nucleus covering ``p`` was at t−1, seen from ``p`` (Linajea's movement vectors; unlike
a flow label it changes from voxel to voxel, so read at a spot's centre it gives the
parent's position even when the spot is off the annotated centre). The union of the balls
is the mask of trained voxels; where balls overlap, each voxel goes to the nearest child
(so sister nuclei right after a division keep their own parents). On 2D+t data (Z = 1)
the balls are discs in the y–x plane and the z component is 0.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from celltrack.config.flow import FlowLabelConfig
from celltrack.config.movement import MovementConfig, MovementTargetConfig
from celltrack.errors import InvalidInputError, ShapeError
from celltrack.flow.labels import FlowLinks, flow_links
from celltrack.geometry import check_voxel_size
from celltrack.graph import TrackGraph

__all__ = ["movement_links", "movement_training_target"]

logger = logging.getLogger(__name__)


def _target_cfg(cfg: MovementConfig | MovementTargetConfig | None) -> MovementTargetConfig:
    if cfg is None:
        return MovementTargetConfig()
    if isinstance(cfg, MovementConfig):
        return cfg.target
    if isinstance(cfg, MovementTargetConfig):
        return cfg
    raise InvalidInputError(
        f"cfg must be a MovementConfig or MovementTargetConfig, got {type(cfg).__name__}"
    )


def movement_links(
    links: TrackGraph | FlowLinks, cfg: MovementConfig | MovementTargetConfig | None = None
) -> FlowLinks:
    """The annotated links that train movement vectors, as flat arrays.

    Parameters
    ----------
    links : TrackGraph or FlowLinks
        Edges parent (t−1) → child (t), positions in µm; with an ``approved`` edge column
        only approved links are used (unless ``target.approved_only`` is off).
    cfg : MovementConfig or MovementTargetConfig, optional
        Target settings (defaults if omitted).

    Returns
    -------
    FlowLinks
        ``t`` (child frame), ``child`` and ``parent`` centres (µm).

    Raises
    ------
    GraphError
        If a used link does not join consecutive frames.
    """
    if isinstance(links, FlowLinks):
        return links
    tcfg = _target_cfg(cfg)
    return flow_links(links, FlowLabelConfig(approved_only=tcfg.approved_only))


def movement_training_target(
    shape: Sequence[int],
    links: TrackGraph | FlowLinks,
    t: int,
    voxel_size: Sequence[float],
    cfg: MovementConfig | MovementTargetConfig | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Movement vectors and their mask for the annotated children of frame ``t``.

    Parameters
    ----------
    shape : sequence of 3 int
        Frame shape (Z, Y, X) in voxels (2D+t: Z = 1).
    links : TrackGraph or FlowLinks
        Annotated links parent (t−1) → child (t), µm (see :func:`movement_links`).
    t : int
        The child frame (≥ 1).
    voxel_size : sequence of 3 float
        Voxel size (z, y, x) in µm.
    cfg : MovementConfig or MovementTargetConfig, optional
        ``radius_um`` (µm) and ``max_displacement_um`` (µm, only checked: vectors longer
        than it cannot be output and are reported).

    Returns
    -------
    vectors : ndarray, shape (3, Z, Y, X), float32
        ``parent centre − voxel position`` (z, y, x) in µm inside the mask, 0 elsewhere;
        the z component is 0 on 2D+t data.
    mask : ndarray, shape (Z, Y, X), float32
        1 inside the union of the balls of radius ``radius_um`` around the children of
        frame t, 0 (not trained) elsewhere. All 0 if frame t has no annotated child.

    Raises
    ------
    ShapeError
        If ``shape`` is not 3 positive sizes.
    InvalidInputError
        If ``t`` < 1 (a child needs a previous frame).
    GraphError
        If a link does not join consecutive frames.

    Examples
    --------
    >>> g = TrackGraph({"id": [1, 2], "t": [0, 1], "z": [0, 0], "y": [5, 7], "x": [5, 5]},
    ...                {"source": [1], "target": [2]})
    >>> vec, mask = movement_training_target((1, 12, 12), g, 1, (1, 1, 1))
    >>> vec[:, 0, 7, 6].tolist(), float(mask[0, 7, 6]), float(mask[0, 0, 0])
    ([0.0, -2.0, -1.0], 1.0, 0.0)
    """
    tcfg = _target_cfg(cfg)
    vs = check_voxel_size(voxel_size)
    try:
        frame_shape = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise ShapeError(f"shape must be (Z, Y, X) in voxels, got {shape!r}") from None
    if len(frame_shape) != 3 or any(s < 1 for s in frame_shape):
        raise ShapeError(
            f"shape must be one frame's (Z, Y, X) with sizes ≥ 1 (voxels), got {frame_shape}"
        )
    t = int(t)
    if t < 1:
        raise InvalidInputError(
            f"movement targets need a child frame t ≥ 1 (the parent is at t−1), got t={t}"
        )
    fl = movement_links(links, tcfg)
    rows = np.flatnonzero(fl.t == t)
    vectors = np.zeros((3, *frame_shape), np.float32)
    mask = np.zeros(frame_shape, np.float32)
    if rows.size == 0:
        return vectors, mask
    two_d = frame_shape[0] == 1
    child, parent = fl.child[rows], fl.parent[rows]
    far = np.abs(parent - child) + tcfg.radius_um > np.asarray(tcfg.max_displacement_um)
    if two_d:
        far[:, 0] = False
    if np.any(far):
        logger.warning(
            "%d of %d links of frame %d have movement vectors longer than "
            "max_displacement_um=%s within radius_um=%s of the child; the model cannot "
            "output them (raise max_displacement_um)",
            int(np.any(far, axis=1).sum()), rows.size, t, tuple(tcfg.max_displacement_um),
            tcfg.radius_um,
        )
    r = float(tcfg.radius_um)
    nearest = np.full(frame_shape, np.inf, np.float32)
    shape_a = np.asarray(frame_shape)
    for c, p in zip(child, parent):  # one box per annotated child (tens to thousands)
        centre = c / vs
        reach = np.ceil(r / vs)
        lo = np.clip(np.floor(centre - reach).astype(int), 0, shape_a)
        hi = np.clip(np.ceil(centre + reach).astype(int) + 1, 0, shape_a)
        if two_d:
            lo[0], hi[0] = 0, 1
        if np.any(hi <= lo):
            continue  # the ball lies outside the frame
        sl = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
        grids = [np.arange(s.start, s.stop) * vs[d] for d, s in enumerate(sl)]
        gz, gy, gx = np.meshgrid(*grids, indexing="ij", sparse=True)
        dz = np.zeros_like(gz) if two_d else gz - c[0]
        dist = (dz * dz + (gy - c[1]) ** 2 + (gx - c[2]) ** 2).astype(np.float32)
        box = nearest[sl]
        win = (dist <= r * r) & (dist < box)
        if not win.any():
            continue
        box[win] = dist[win]
        for d, g in enumerate((gz, gy, gx)):
            if d == 0 and two_d:
                continue
            vectors[d][sl][win] = np.broadcast_to(p[d] - g, win.shape)[win]
        mask[sl][win] = 1.0
    return vectors, mask
