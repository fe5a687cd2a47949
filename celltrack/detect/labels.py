"""Render annotations of one frame into a detection label volume.

Label codes (uint8) combine a class with a "false" flag; a larger code wins where
annotations overlap, which gives the overwrite priority centre > periphery > background
(and, within a class, a correction over a confirmation) independently of drawing order:

====  ==============================  =====
code  meaning                         class
====  ==============================  =====
0     unlabelled (ignored)            —
1     background                      0
2     background, false annotation    0
3     periphery                       1
4     periphery, false annotation     1
5     centre                          2
6     centre, false annotation        2
7     background, automatic           0
====  ==============================  =====

Tags follow ELEPHANT: ``tp``/``fn`` draw a nucleus (whole ellipsoid periphery, the
centre ellipsoid — semi-axes × centre ratio — dilated by one voxel as periphery, then
the centre ellipsoid as centre); ``tb``/``fb`` draw periphery only; ``tn``/``fp`` draw
background only. ``fn``, ``fb`` and ``fp`` are corrections of the model ("false" tags)
and carry the loss' ``false_weight``; ``unlabeled`` spots are never drawn.

Automatic background (code 7: the 'intensity' rule of :mod:`celltrack.detect.evidence`
and ``background_threshold``) is painted last and only on voxels no annotation drew, so
it never overrides a mark. It trains like background (class 0, normal weight); the
trainer hands the loss :func:`training_codes`, where it is code 1, and
:func:`label_summary` counts it apart from the manual background.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from celltrack.config.detection import LabelConfig
from celltrack.detect.evidence import NucleusStatistics, intensity_background
from celltrack.errors import InvalidInputError, ShapeError
from celltrack.geometry import check_voxel_size, ellipsoid_mask, sphere_covariances
from celltrack.graph import TrackGraph
from celltrack.graph.tags import BACKGROUND as BACKGROUND_TAGS
from celltrack.graph.tags import CORRECTIONS, REVIEWED, Tag, tags_of
from celltrack.graph.tags import PERIPHERY as PERIPHERY_TAGS

__all__ = [
    "AUTO_BACKGROUND",
    "BACKGROUND",
    "CENTRE",
    "PERIPHERY",
    "UNLABELLED",
    "label_classes",
    "label_is_false",
    "label_summary",
    "render_labels",
    "spot_arrays",
    "training_codes",
]

logger = logging.getLogger(__name__)

UNLABELLED = 0
BACKGROUND = 1
PERIPHERY = 3
CENTRE = 5
AUTO_BACKGROUND = 7


def training_codes(labels: np.ndarray) -> np.ndarray:
    """The label codes the loss takes: automatic background (7) becomes background (1).

    Parameters
    ----------
    labels : ndarray of uint8, shape (Z, Y, X)
        Codes of :func:`render_labels`.

    Returns
    -------
    ndarray of uint8, shape (Z, Y, X)
        Codes 0..6.
    """
    labels = np.asarray(labels)
    return np.where(labels == AUTO_BACKGROUND, np.uint8(BACKGROUND), labels).astype(np.uint8)


def label_classes(labels: np.ndarray) -> np.ndarray:
    """Class per voxel: -1 unlabelled, 0 background, 1 periphery, 2 centre (int64)."""
    labels = training_codes(labels).astype(np.int64)
    return np.where(labels > 0, (labels - 1) // 2, -1)


def label_is_false(labels: np.ndarray) -> np.ndarray:
    """True where the label comes from a false (correcting) annotation."""
    labels = training_codes(labels).astype(np.int64)
    return (labels > 0) & ((labels - 1) % 2 == 1)


def label_summary(labels: np.ndarray) -> dict[str, int]:
    """Voxels per kind of label: what a model is trained on.

    Parameters
    ----------
    labels : ndarray of uint8, any shape
        Codes of :func:`render_labels` (one frame or several stacked).

    Returns
    -------
    dict of str to int
        ``centre``, ``periphery``, ``background`` (all of it), ``background_manual``
        (rejected marks tn/fp), ``background_automatic`` (code 7), ``false`` (voxels
        of corrections fn/fb/fp, which carry ``false_weight``) and ``unlabelled``.
    """
    counts = np.bincount(np.asarray(labels, np.uint8).ravel(), minlength=8)
    manual = int(counts[BACKGROUND] + counts[BACKGROUND + 1])
    automatic = int(counts[AUTO_BACKGROUND])
    return {
        "centre": int(counts[CENTRE] + counts[CENTRE + 1]),
        "periphery": int(counts[PERIPHERY] + counts[PERIPHERY + 1]),
        "background": manual + automatic,
        "background_manual": manual,
        "background_automatic": automatic,
        "false": int(counts[BACKGROUND + 1] + counts[PERIPHERY + 1] + counts[CENTRE + 1]),
        "unlabelled": int(counts[UNLABELLED]),
    }


def spot_arrays(
    spots: TrackGraph, default_radius_um: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions (N, 3) µm, covariances (N, 3, 3) µm² and tags (N,) str of a graph.

    Spots without a ``covariance`` column become spheres of ``default_radius_um``;
    without a ``tag`` column every spot counts as ``tp``. Covariances are checked to be
    symmetric positive definite.
    """
    if not isinstance(spots, TrackGraph):
        raise InvalidInputError(
            f"annotations must be a TrackGraph, got {type(spots).__name__}; build one with "
            "TrackGraph.from_positions(t, positions, covariance=..., tag=...)"
        )
    n = spots.num_nodes
    pos = spots.positions.astype(np.float64)
    if "covariance" in spots.nodes:
        cov = np.asarray(spots.nodes["covariance"], dtype=np.float64).reshape(n, 3, 3)
    else:
        cov = sphere_covariances(n, default_radius_um)
    tags = tags_of(spots, default=Tag.TP)
    if n:
        bad_sym = ~np.all(np.isclose(cov, np.swapaxes(cov, 1, 2), atol=1e-9), axis=(1, 2))
        with np.errstate(invalid="ignore"):
            eig = np.linalg.eigvalsh(np.where(np.isfinite(cov), cov, 0.0))
        bad = bad_sym | ~np.all(np.isfinite(cov), axis=(1, 2)) | (eig[:, 0] <= 0)
        if bad.any():
            ids = spots.ids[bad][:5].tolist()
            raise InvalidInputError(
                f"{int(bad.sum())} annotation covariance(s) are not symmetric positive definite "
                f"(node ids {ids}); give radii > 0, e.g. geometry.covariance_from_radii"
            )
    return pos, cov, tags


def _check_inside(spots: TrackGraph, pos: np.ndarray, shape: np.ndarray, vs: np.ndarray) -> None:
    extent = (shape - 1) * vs
    half = vs / 2
    outside = np.any((pos < -half) | (pos > extent + half) | ~np.isfinite(pos), axis=1)
    if outside.any():
        ids = spots.ids[outside][:5].tolist()
        raise InvalidInputError(
            f"{int(outside.sum())} annotation(s) lie outside the image (node ids {ids}, first "
            f"at {pos[outside][0].round(3).tolist()} µm); the image spans 0..{extent.tolist()} "
            "µm in (z, y, x): check the voxel size and the frame"
        )


def render_labels(
    spots: TrackGraph,
    shape: Sequence[int],
    voxel_size: Sequence[float],
    cfg: LabelConfig | None = None,
    *,
    image: np.ndarray | None = None,
    frame: int | None = None,
    statistics: NucleusStatistics | None = None,
) -> np.ndarray:
    """Render one frame's annotations into a uint8 label volume.

    Parameters
    ----------
    spots : TrackGraph
        Annotations of this frame: positions (µm), optional ``covariance`` (µm²; without
        it spheres of ``cfg.point_radius_um``) and ``tag`` (default ``tp``). Spots tagged
        ``unlabeled`` are ignored.
    shape : sequence of 3 int
        Frame shape (Z, Y, X) in voxels.
    voxel_size : sequence of 3 float
        Voxel size (z, y, x) in µm.
    cfg : LabelConfig, optional
        Centre ratio, minimum voxel counts, point radius, background threshold,
        automatic background.
    image : ndarray, shape (Z, Y, X), optional
        The frame (raw or normalised); required when ``cfg.background_threshold`` is
        set. With ``cfg.auto_background == "intensity"`` (the default) it gives the
        automatic background (:func:`celltrack.detect.evidence.intensity_background`);
        without it there is none.
    frame : int, optional
        Use only the spots with ``t == frame``; if omitted all spots must share one frame.
    statistics : NucleusStatistics, optional
        Annotated-nucleus statistics of other frames, for the automatic background of a
        frame without annotated nuclei (:func:`celltrack.detect.evidence.pool_statistics`).

    Returns
    -------
    ndarray of uint8, shape (Z, Y, X)
        Label codes (see the module docstring).

    Raises
    ------
    InvalidInputError
        If a spot lies outside the image, a covariance is not positive definite, spots
        of several frames are given without ``frame``, or a tag is unknown.
    """
    cfg = cfg or LabelConfig()
    vs = check_voxel_size(voxel_size)
    shape_arr = np.asarray([int(s) for s in shape])
    if shape_arr.shape != (3,) or np.any(shape_arr < 1):
        raise ShapeError(f"shape must be (Z, Y, X) with 3 positive sizes, got {tuple(shape)}")
    if not isinstance(spots, TrackGraph):
        spot_arrays(spots, cfg.point_radius_um)  # raises the explanatory error
    if frame is not None:
        spots = spots.subgraph(nodes=spots.t == int(frame))
    elif spots.num_nodes and np.unique(spots.t).size > 1:
        raise InvalidInputError(
            f"render_labels draws one frame but got spots of frames {np.unique(spots.t)[:5]}; "
            "pass frame=t"
        )
    pos, cov, tags = spot_arrays(spots, cfg.point_radius_um)
    _check_inside(spots, pos, shape_arr, vs)

    shape_t = tuple(int(s) for s in shape_arr)
    labels = np.zeros(shape_t, np.uint8)
    automatic = np.zeros(shape_t, bool)
    if image is not None:
        image = np.asarray(image, dtype=np.float32)
        if image.shape != shape_t:
            raise ShapeError(f"image must have shape {shape_t}, got {image.shape}")
    if cfg.background_threshold is not None:
        if image is None:
            raise InvalidInputError(
                "cfg.background_threshold is set: pass the frame as image= to threshold it"
            )
        lo, hi = float(image.min()), float(image.max())
        norm = (image - lo) / (hi - lo) if hi > lo else np.zeros_like(image)
        automatic |= norm < cfg.background_threshold
    if cfg.auto_background == "intensity":
        if image is None:
            logger.debug("no image given: no automatic background")
        else:
            evidence = intensity_background(image, spots, vs, cfg, statistics=statistics)
            if evidence is not None:
                automatic |= evidence.background

    structure = np.ones((1, 3, 3) if shape_t[0] == 1 else (3, 3, 3), bool)
    for p, c, tag in zip(pos, cov, tags):  # one rasterisation per annotation
        if tag not in REVIEWED:
            continue
        false = int(tag in CORRECTIONS)
        if tag in BACKGROUND_TAGS:
            _paint(labels, *ellipsoid_mask(p, c, vs, shape_t, min_voxels=cfg.min_voxels),
                   BACKGROUND + false)
            continue
        _paint(labels, *ellipsoid_mask(p, c, vs, shape_t, min_voxels=cfg.min_voxels),
               PERIPHERY + false)
        if tag in PERIPHERY_TAGS:
            continue
        sl, inner = ellipsoid_mask(
            p, c, vs, shape_t, scale=cfg.centre_ratio, min_voxels=cfg.min_centre_voxels
        )
        if inner.size == 0:
            continue
        # periphery shell of at least one voxel around the centre, even for tiny nuclei
        lo = [max(s.start - 1, 0) for s in sl]
        hi = [min(s.stop + 1, n) for s, n in zip(sl, shape_t)]
        grown = np.zeros([h - low for low, h in zip(lo, hi)], bool)
        grown[tuple(slice(s.start - low, s.stop - low) for s, low in zip(sl, lo))] = inner
        grown = ndimage.binary_dilation(grown, structure)
        _paint(labels, tuple(slice(a, b) for a, b in zip(lo, hi)), grown, PERIPHERY + false)
        _paint(labels, sl, inner, CENTRE + false)
    labels[automatic & (labels == UNLABELLED)] = AUTO_BACKGROUND
    return labels


def _paint(labels: np.ndarray, sl: tuple[slice, ...], mask: np.ndarray, code: int) -> None:
    """Write ``code`` where ``mask`` is set unless a higher-priority code is already there."""
    if mask.size == 0:
        return
    view = labels[sl]
    np.maximum(view, np.where(mask, np.uint8(code), np.uint8(0)), out=view)
