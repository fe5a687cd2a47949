"""Training target and weight of the cell indicator, rendered from annotated points.

The **target** (Linajea's cell indicator) is, at every voxel, the highest Gaussian peak
of the confirmed nuclei of the frame::

    target(v) = max over nuclei n of exp(−½ Σ_axes ((v − c_n) / σ)²)

with σ = ``target.sigma_um`` (µm, converted per axis by the voxel size, so a peak has
the same physical shape whatever the anisotropy); it is 1 at a centre that lies on a
voxel. In 2D+t data (Z = 1) the z axis is ignored.

The **weight** says where the target is known; everywhere else it is 0 (untrained):

========================================  =======================  ===============
region                                    target                   weight
========================================  =======================  ===============
ball of ``mask_radius_um``, tag tp        the Gaussian             1
ball of ``mask_radius_um``, tag fn        the Gaussian             ``false_weight``
ball around a rejected mark, fp / fb      0                        ``false_weight``
ball around a background mark, tn / tb    0                        1
automatic background (``'intensity'``)    the Gaussian (≈ 0 there) see below
========================================  =======================  ===============

The automatic background's voxels share one weight chosen so that their summed weight
is ``background_weight`` times the summed weight of the annotated balls of the frame (at
most 1 per voxel): background far outnumbers the few annotated voxels, and a weight of 1
for each would teach the network that everything is 0 (a sigmoid trained by MSE then
saturates and never recovers).

Balls of confirmed nuclei win over those of rejected marks where they overlap, and the
automatic background (:func:`celltrack.detect.evidence.intensity_background`) is only
applied where no annotation decided. Which tags are nuclei and which are rejections
follows :mod:`celltrack.graph.tags` (``NUCLEUS``, ``BACKGROUND``, ``PERIPHERY``,
``CORRECTIONS``); ``unlabeled`` spots are never used.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from celltrack.config.detection import LabelConfig
from celltrack.config.indicator import IndicatorConfig
from celltrack.detect.evidence import NucleusStatistics, intensity_background
from celltrack.errors import InvalidInputError, ShapeError
from celltrack.geometry import check_voxel_size
from celltrack.graph import TrackGraph
from celltrack.graph.tags import BACKGROUND, CORRECTIONS, NUCLEUS, PERIPHERY, Tag, tags_of

__all__ = [
    "REJECTED_TAGS",
    "evidence_config",
    "gaussian_peaks",
    "indicator_training_target",
    "point_balls",
]

logger = logging.getLogger(__name__)

#: Tags trained as "no nucleus centre here" (target 0): rejected and periphery marks.
REJECTED_TAGS: tuple[str, ...] = (*BACKGROUND, *PERIPHERY)


def _frame_shape(image: np.ndarray) -> tuple[int, int, int]:
    image = np.asarray(image)
    if image.ndim == 2:
        return (1, *image.shape)  # type: ignore[return-value]
    if image.ndim != 3 or min(image.shape) < 1:
        raise ShapeError(
            f"indicator targets are drawn on one frame (Z, Y, X) (or (Y, X)), got shape "
            f"{image.shape}; pass movie[t]"
        )
    return tuple(int(s) for s in image.shape)  # type: ignore[return-value]


def _box(centre_vox: np.ndarray, half: np.ndarray, shape: Sequence[int]) -> tuple[slice, ...]:
    lo = np.maximum(np.floor(centre_vox - half).astype(int), 0)
    hi = np.minimum(np.ceil(centre_vox + half).astype(int) + 1, np.asarray(shape))
    return tuple(slice(int(a), int(max(a, b))) for a, b in zip(lo, hi))


def _offsets(sl: tuple[slice, ...], centre_vox: np.ndarray, vs: np.ndarray, two_d: bool):
    """Physical offsets (µm) of a box's voxels from a centre, one broadcastable array per axis."""
    axes = []
    for d, s in enumerate(sl):
        off = (np.arange(s.start, s.stop) - centre_vox[d]) * vs[d]
        if d == 0 and two_d:
            off = np.zeros_like(off)
        shape = [1, 1, 1]
        shape[d] = off.size
        axes.append(off.reshape(shape))
    return axes


def gaussian_peaks(
    positions_um: np.ndarray,
    shape: Sequence[int],
    voxel_size: Sequence[float],
    sigma_um: Sequence[float],
    *,
    truncate: float = 4.0,
) -> np.ndarray:
    """The maximum over points of Gaussian peaks of height 1 (the indicator target).

    Parameters
    ----------
    positions_um : ndarray, shape (N, 3)
        Peak centres (z, y, x) in µm.
    shape : sequence of 3 int
        Frame (Z, Y, X) in voxels.
    voxel_size : sequence of 3 float
        (z, y, x) µm.
    sigma_um : sequence of 3 float
        Standard deviation (z, y, x) in µm; z is ignored when Z = 1.
    truncate : float
        Peaks are drawn within this many σ of their centre (0 beyond).

    Returns
    -------
    ndarray, shape (Z, Y, X), float32
        Values in [0, 1]; exactly 1 at a centre on a voxel.
    """
    vs = check_voxel_size(voxel_size)
    sigma = np.asarray(sigma_um, float)
    shape_t = tuple(int(s) for s in shape)
    two_d = shape_t[0] == 1
    out = np.zeros(shape_t, np.float32)
    for p in np.asarray(positions_um, float).reshape(-1, 3):
        c = p / vs
        half = truncate * sigma / vs
        if two_d:
            c = np.array([0.0, c[1], c[2]])
            half = np.array([0.0, half[1], half[2]])
        sl = _box(c, half, shape_t)
        if any(s.stop <= s.start for s in sl):
            continue
        dz, dy, dx = _offsets(sl, c, vs, two_d)
        q = (dz / sigma[0]) ** 2 + (dy / sigma[1]) ** 2 + (dx / sigma[2]) ** 2
        np.maximum(out[sl], np.exp(-0.5 * q).astype(np.float32), out=out[sl])
    return out


def point_balls(
    positions_um: np.ndarray,
    values: np.ndarray,
    shape: Sequence[int],
    voxel_size: Sequence[float],
    radius_um: float,
) -> np.ndarray:
    """Paint balls of ``radius_um`` around points with per-point values (maximum wins).

    Parameters
    ----------
    positions_um : ndarray, shape (N, 3)
        Ball centres (z, y, x) in µm.
    values : ndarray, shape (N,)
        Value painted by each ball (> 0).
    shape : sequence of 3 int
        Frame (Z, Y, X) in voxels.
    voxel_size : sequence of 3 float
        (z, y, x) µm.
    radius_um : float
        Ball radius (µm; discs in-plane when Z = 1). The voxel nearest to each centre is
        always painted, so a small ball never vanishes.

    Returns
    -------
    ndarray, shape (Z, Y, X), float32
        0 outside every ball.
    """
    vs = check_voxel_size(voxel_size)
    shape_t = tuple(int(s) for s in shape)
    two_d = shape_t[0] == 1
    out = np.zeros(shape_t, np.float32)
    r = float(radius_um)
    for p, value in zip(np.asarray(positions_um, float).reshape(-1, 3), np.asarray(values)):
        c = p / vs
        half = r / vs
        if two_d:
            c = np.array([0.0, c[1], c[2]])
            half = np.array([0.0, half[1], half[2]])
        sl = _box(c, half, shape_t)
        if any(s.stop <= s.start for s in sl):
            continue
        dz, dy, dx = _offsets(sl, c, vs, two_d)
        inside = dz**2 + dy**2 + dx**2 <= r * r
        nearest = tuple(
            int(np.clip(np.round(c[d]), s.start, s.stop - 1)) - s.start for d, s in enumerate(sl)
        )
        inside[nearest] = True
        view = out[sl]
        np.maximum(view, np.where(inside, np.float32(value), np.float32(0)), out=view)
    return out


def evidence_config(cfg: IndicatorConfig) -> LabelConfig:
    """The :class:`LabelConfig` that runs the 'intensity' rule with the indicator's settings."""
    tc = cfg.target
    return LabelConfig(
        auto_background=tc.auto_background,
        auto_background_fraction=tc.auto_background_fraction,
        auto_background_margin_um=tc.auto_background_margin_um,
        point_radius_um=tc.nucleus_radius_um,
    )


def _check_inside(pos: np.ndarray, shape: tuple[int, int, int], vs: np.ndarray, t: int) -> None:
    vox = pos / vs
    if shape[0] == 1:
        vox = vox[:, 1:]
        limit = np.asarray(shape[1:]) - 0.5
    else:
        limit = np.asarray(shape) - 0.5
    bad = np.flatnonzero(np.any((vox < -0.5) | (vox > limit), axis=1))
    if bad.size:
        raise InvalidInputError(
            f"{bad.size} annotation(s) of frame {t} lie outside the image of shape {shape} "
            f"voxels (e.g. at {pos[bad[0]].round(2).tolist()} µm with voxel size "
            f"{vs.tolist()} µm); check the voxel size and that positions are (z, y, x) in µm"
        )


def indicator_training_target(
    image: np.ndarray,
    annotations: TrackGraph,
    t: int,
    voxel_size: Sequence[float],
    cfg: IndicatorConfig,
    *,
    statistics: NucleusStatistics | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The indicator target and its training weight for frame ``t`` (module docstring).

    Parameters
    ----------
    image : ndarray, shape (Z, Y, X)
        The raw frame ``t`` (used by the automatic background; (Y, X) means Z = 1).
    annotations : TrackGraph
        Annotations (µm) of any frames; those with ``t == t`` are used. Without a
        ``tag`` column every spot is a confirmed nucleus (``tp``).
    t : int
        The frame.
    voxel_size : sequence of 3 float
        (z, y, x) µm.
    cfg : IndicatorConfig
        ``target`` (σ, mask radius, automatic background) and ``loss`` (false and
        background weights).
    statistics : NucleusStatistics, optional
        Annotated-nucleus statistics of other frames, for the automatic background of a
        frame with only rejected marks (:func:`celltrack.detect.evidence.pool_statistics`).

    Returns
    -------
    target : ndarray, shape (Z, Y, X), float32
        Values in [0, 1].
    weight : ndarray, shape (Z, Y, X), float32
        ≥ 0; 0 = not trained.

    Raises
    ------
    InvalidInputError
        If ``annotations`` is not a TrackGraph, a tag is unknown or an annotation of the
        frame lies outside the image.
    ShapeError
        If ``image`` is not one frame.
    """
    if not isinstance(annotations, TrackGraph):
        raise InvalidInputError(
            f"annotations must be a TrackGraph, got {type(annotations).__name__}; build one "
            "with TrackGraph.from_positions(t, positions, tag=...)"
        )
    if not isinstance(cfg, IndicatorConfig):
        raise InvalidInputError(f"cfg must be an IndicatorConfig, got {type(cfg).__name__}")
    vs = check_voxel_size(voxel_size)
    shape = _frame_shape(image)
    frame = np.asarray(image, np.float32).reshape(shape)
    spots = annotations.subgraph(nodes=annotations.t == int(t))
    tags = tags_of(spots, default=Tag.TP)
    pos = spots.positions.astype(np.float64).reshape(-1, 3)
    used = tags != Tag.UNLABELED.value
    _check_inside(pos[used], shape, vs, int(t))
    tc, lc = cfg.target, cfg.loss

    nucleus = np.isin(tags, NUCLEUS)
    rejected = np.isin(tags, REJECTED_TAGS)
    target = gaussian_peaks(pos[nucleus], shape, vs, tc.sigma_um)
    false = np.isin(tags, CORRECTIONS)
    weights = np.where(false, lc.false_weight, 1.0)
    # a ball with weight 0 (false_weight = 0) is still "decided": paint a tiny positive
    # value first so the automatic background does not claim it
    eps = np.float32(1e-12)
    nuc_w = point_balls(pos[nucleus], np.maximum(weights[nucleus], eps), shape, vs,
                        tc.mask_radius_um)
    rej_w = point_balls(pos[rejected], np.maximum(weights[rejected], eps), shape, vs,
                        tc.mask_radius_um)
    in_nucleus = nuc_w > 0
    in_rejected = (rej_w > 0) & ~in_nucleus
    weight = np.where(in_nucleus, nuc_w, np.where(in_rejected, rej_w, 0.0)).astype(np.float32)
    target[in_rejected] = 0.0
    if tc.auto_background == "intensity" and lc.background_weight > 0:
        evidence = intensity_background(
            frame, spots.subgraph(nodes=used), vs, evidence_config(cfg), statistics=statistics
        )
        if evidence is not None:
            free = evidence.background & (weight == 0) & ~in_nucleus & ~in_rejected
            annotated = float(weight.sum())
            if free.any() and annotated > 0:
                per_voxel = lc.background_weight * annotated / float(free.sum())
                weight[free] = np.float32(min(per_voxel, 1.0))
    weight[weight < 1e-9] = 0.0
    return target, weight
