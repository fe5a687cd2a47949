"""Block-wise extraction of the cell indicator's maxima from a stored indicator.

The indicator of a movie, a ``(T, 1, Z, Y, X)`` array (as block-wise prediction stores
it: Zarr, float32 or float16), is read one (frame, block) at a time: the block's *core*
plus a *halo* on every side (clipped to the frame). The result equals the whole-frame
:func:`celltrack.detect.nms.indicator_maxima` read out by
:func:`celltrack.detect.indicator_predict.indicator_spots`, bit for bit.

Exactness
---------
- The max filter of a read box equals the whole frame's on its *exact box*: the box
  shrunk by the filter's half-window on every side lying inside the frame (on a side at
  the frame's border, ``mode="nearest"`` repeats the same edge voxel as in the frame).
  The default halo is the half-window plus :data:`MARGIN` voxels, so the exact box holds
  the core and a margin around it.
- Maxima are merged into plateaus (26-connected components, 8 in 2D+t), each placed at
  its voxel nearest to its centroid (ties in C order), computed in frame coordinates
  exactly as the whole frame does. A plateau belongs to the block whose core holds that
  voxel, so each is kept once.
- A plateau with a voxel in the core that touches a side of the exact box lying inside
  the frame may continue outside: the box is grown around it (doubling the margin on
  the sides it touches) and read again until the plateau lies inside, however many
  blocks it spans (saturated values, float16 storage).

Frames of a block-wise prediction that were not predicted hold NaN: like
:func:`celltrack.scale.spots.extract_spots_blockwise`, ``frames`` defaults to every
frame and NaN read anywhere raises :class:`~celltrack.errors.InvalidInputError` (naming
the frame and voxels), as the whole-frame function does; pass the predicted frames.

Tasks run on an executor (:func:`celltrack.solve.blockwise.executors.make_executor`).
Workers read their own box from the array (Zarr, dask), so only block-sized boxes are
ever loaded; an in-memory numpy array on worker processes is sliced by the driver, the
box sent with its task, and the plateaus to grow are resolved by the driver. With
``store`` every finished (frame, block) is saved atomically and a rerun skips it.

Workers import neither torch nor :mod:`celltrack.detect`; the driver does, to build the
spot graph (:func:`~celltrack.detect.indicator_predict.spots_from_maxima`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from celltrack.config.indicator import IndicatorNMSConfig
from celltrack.errors import InvalidInputError, ShapeError
from celltrack.geometry import check_voxel_size, plateau_representatives, sphere_covariances
from celltrack.graph import TrackGraph
from celltrack.scale.spots import (
    _block_grid,
    _block_stats,
    _check_block_shape,
    _check_frames,
    _Found,
    _frame_attrs,
    _peak_rss_mb,
    _problem,
    _run_block_tasks,
)

__all__ = ["MARGIN", "extract_indicator_spots_blockwise", "indicator_halo"]

logger = logging.getLogger(__name__)

MARGIN = 2
"""Voxels of exact box kept around a core beyond the half-window (default halo)."""

_STRUCTURE = np.ones((3, 3, 3), bool)  # 26-connectivity (8 in 2D), as indicator_maxima

Reader = Callable[[np.ndarray, np.ndarray], np.ndarray]


# ----------------------------------------------------------------------------- helpers


def _window_shape(nms: IndicatorNMSConfig, vs: np.ndarray, two_d: bool) -> np.ndarray:
    """The max-filter window (z, y, x) in voxels, as indicator_maxima uses it."""
    from celltrack.detect.nms import window_voxels

    return np.asarray(window_voxels(vs, nms.window_um, two_d=two_d), np.int64)


def indicator_halo(
    nms: IndicatorNMSConfig, voxel_size: Sequence[float], *, two_d: bool = False
) -> np.ndarray:
    """Default halo (voxels z, y, x) read around each block: half-window + :data:`MARGIN`.

    Any halo of at least the half-window gives the exact result; the margin only makes
    growing the read box around a plateau (a second read) rare.

    Parameters
    ----------
    nms : IndicatorNMSConfig
        ``window_um`` sets the max-filter window.
    voxel_size : sequence of 3 float
        Voxel size (z, y, x) in µm.
    two_d : bool
        2D+t data (Z = 1): no halo in z.

    Returns
    -------
    ndarray of int64, shape (3,)
        Halo in voxels (z, y, x).
    """
    if not isinstance(nms, IndicatorNMSConfig):
        raise InvalidInputError(f"nms must be an IndicatorNMSConfig, got {type(nms).__name__}")
    halo = _window_shape(nms, check_voxel_size(voxel_size), two_d) // 2 + MARGIN
    if two_d:
        halo[0] = 0
    return halo


def _open_source(indicator: Any) -> Any:
    if isinstance(indicator, (str, Path)):
        import zarr

        try:
            return zarr.open_array(str(indicator), mode="r")
        except Exception as exc:  # zarr raises several types for a missing/odd store
            raise InvalidInputError(
                f"cannot open '{indicator}' as a Zarr array of the indicator ({exc}); give "
                "the path of the (T, 1, Z, Y, X) array itself, or the array"
            ) from None
    return indicator


def _read(source: Any, t: int, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The indicator of frame ``t`` in the box [lo, hi) as float32 (Z, Y, X)."""
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    window = np.asarray(source[(int(t), 0, *box)]).astype(np.float32, copy=False)
    if np.isnan(window).any():
        raise InvalidInputError(
            f"the indicator of frame {t} holds NaN in voxels {lo.tolist()}..{(hi - 1).tolist()} "
            "(z, y, x): the frame was not predicted there; predict it or pass only the "
            "predicted frames"
        )
    return window


@dataclass
class _Geometry:
    """What every task of a problem shares: the frame, the filter and the threshold."""

    shape: np.ndarray  # (3,) frame (Z, Y, X) voxels
    size: np.ndarray  # (3,) max-filter window voxels
    half: np.ndarray  # (3,) size // 2
    threshold: float
    margin: int
    vs: np.ndarray  # (3,) µm
    point_radius_um: float


def _maxima(
    window: np.ndarray, lo: np.ndarray, hi: np.ndarray, geo: _Geometry
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Maxima mask of the box [lo, hi) where it equals the whole frame's.

    Returns the mask and the values (float32) on the exact box [elo, ehi), and elo, ehi
    (global voxels).
    """
    from scipy import ndimage

    peak = ndimage.maximum_filter(window, size=tuple(geo.size.tolist()), mode="nearest")
    elo = np.where(lo > 0, lo + geo.half, 0)
    ehi = np.where(hi < geo.shape, hi - geo.half, geo.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(elo - lo, ehi - lo))
    values = window[box]
    return (values == peak[box]) & (values > geo.threshold), values, elo, ehi


def _cut_sides(
    lo: np.ndarray, hi: np.ndarray, elo: np.ndarray, ehi: np.ndarray, shape: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Which sides (low, high; ``(..., 3)`` bool) of boxes [lo, hi) touch an inner side of
    the exact box [elo, ehi), beyond which a plateau may continue."""
    return (lo == elo) & (elo > 0), (hi == ehi) & (ehi < shape)


def _grow(
    read: Reader, seed: np.ndarray, box_lo: np.ndarray, box_hi: np.ndarray, geo: _Geometry
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read an exact box holding all of the plateau through ``seed`` (global voxel).

    ``box_lo, box_hi`` bound the part already seen. Returns the plateau's mask and the
    values on that exact box, and its origin (global voxels).
    """
    from scipy import ndimage

    margin = max(geo.margin, 1)
    want_lo = np.maximum(box_lo - margin, 0)
    want_hi = np.minimum(box_hi + margin, geo.shape)
    while True:
        lo = np.maximum(want_lo - geo.half, 0)
        hi = np.minimum(want_hi + geo.half, geo.shape)
        mask, values, elo, ehi = _maxima(read(lo, hi), lo, hi, geo)
        labels, _ = ndimage.label(mask, structure=_STRUCTURE)
        label = int(labels[tuple(seed - elo)])
        if label == 0:
            raise RuntimeError("block-wise indicator maxima lost a plateau; please report this")
        mine = labels == label
        where = np.nonzero(mine)
        plo = elo + np.array([w.min() for w in where])
        phi = elo + np.array([w.max() + 1 for w in where])
        low, high = _cut_sides(plo, phi, elo, ehi, geo.shape)
        if not (low.any() or high.any()):
            return mine, values, elo
        margin *= 2
        want_lo = np.where(low, np.maximum(plo - margin, 0), elo)
        want_hi = np.where(high, np.minimum(phi + margin, geo.shape), ehi)


def _resolve(
    read: Reader, cut: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    core_lo: np.ndarray, core_hi: np.ndarray, geo: _Geometry,
) -> tuple[list[np.ndarray], list[np.float32]]:
    """Grow the cut plateaus (seed in the core, seen part's box) and keep those the core owns.

    A plateau seen as several parts (seeds) is grown once. Returns the owned global
    voxels and their values.
    """
    voxels: list[np.ndarray] = []
    scores: list[np.float32] = []
    grown: list[tuple[np.ndarray, np.ndarray]] = []  # (origin, mask) of plateaus done

    def seen(seed: np.ndarray) -> bool:
        for origin, mine in grown:
            rel = seed - origin
            if np.all((rel >= 0) & (rel < mine.shape)) and mine[tuple(rel)]:
                return True
        return False

    for seed, box_lo, box_hi in cut:
        if seen(seed):
            continue
        mine, values, origin = _grow(read, seed, box_lo, box_hi, geo)
        grown.append((origin, mine))
        rep = plateau_representatives(mine.astype(np.int32), 1, origin)[0]
        if np.all((rep >= core_lo) & (rep < core_hi)):
            voxels.append(rep)
            scores.append(values[tuple(rep - origin)])
    return voxels, scores


# ------------------------------------------------------------------------ the worker


@dataclass
class _Task:
    """One (frame, block): what a worker needs (the array, or the box read for it)."""

    key: int
    t: int
    core_lo: np.ndarray
    core_hi: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    geo: _Geometry
    source: Any = None
    window: np.ndarray | None = None


def _found(task: _Task, voxels: np.ndarray, scores: np.ndarray) -> _Found:
    """The spots a block owns, as the spot store keeps them (raster keys, µm, µm²)."""
    geo = task.geo
    n = voxels.shape[0]
    return _Found(
        task.key,
        task.t,
        np.ravel_multi_index(tuple(voxels.T), tuple(geo.shape)).astype(np.int64),
        voxels.astype(np.float64) * geo.vs,
        sphere_covariances(n, geo.point_radius_um),
        scores.astype(np.float64),
    )


def _block(task: _Task, window: np.ndarray) -> _Found:
    """The plateaus whose representative voxel lies in the task's core."""
    from scipy import ndimage

    geo = task.geo
    mask, values, elo, ehi = _maxima(window, task.lo, task.hi, geo)
    labels, n = ndimage.label(mask, structure=_STRUCTURE)
    if n == 0:
        return _found(task, np.zeros((0, 3), np.int64), np.zeros(0, np.float32))
    core = tuple(slice(int(a), int(b)) for a, b in zip(task.core_lo - elo, task.core_hi - elo))
    in_core = labels[core]
    present, first = np.unique(in_core.ravel(), return_index=True)
    first, present = first[present > 0], present[present > 0]
    boxes = ndimage.find_objects(labels)
    box_lo = elo + np.array([[s.start for s in b] for b in boxes], np.int64)
    box_hi = elo + np.array([[s.stop for s in b] for b in boxes], np.int64)
    low, high = _cut_sides(box_lo, box_hi, elo, ehi, geo.shape)
    cut = np.any(low | high, axis=1)
    rep = plateau_representatives(labels, n, elo)
    owned = np.all((rep >= task.core_lo) & (rep < task.core_hi), axis=1) & ~cut
    voxels = list(rep[owned])
    scores = list(values[tuple((rep[owned] - elo).T)])
    pending = []
    for label, at in zip(present.tolist(), first.tolist()):
        if cut[label - 1]:
            seed = np.asarray(np.unravel_index(at, in_core.shape), np.int64) + task.core_lo
            pending.append((seed, box_lo[label - 1], box_hi[label - 1]))
    if pending and task.source is not None:
        more_voxels, more_scores = _resolve(
            _reader(task.source, task.t), pending, task.core_lo, task.core_hi, geo
        )
        voxels += more_voxels
        scores += more_scores
    out = _found(
        task, np.asarray(voxels, np.int64).reshape(-1, 3), np.asarray(scores, np.float32)
    )
    out.info["grown"] = len(pending) if task.source is not None else 0
    if task.source is None:
        out.cut = pending
    return out


def _reader(source: Any, t: int) -> Reader:
    def read(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        return _read(source, t, lo, hi)

    return read


def _run_block(task: _Task) -> _Found:
    """Worker entry point: the maxima one (frame, block) owns."""
    start = time.perf_counter()
    window = task.window
    if window is None:
        window = _read(task.source, task.t, task.lo, task.hi)
    out = _block(task, window)
    out.info.update(
        seconds=time.perf_counter() - start,
        window_voxels=int(window.size),
        spots=int(out.raster.size),
        worker_peak_rss_mb=_peak_rss_mb(),
    )
    return out


def _finish_cut(found: _Found, source: Any, core: tuple, geo: _Geometry) -> _Found:
    """Resolve, in the driver, the cut plateaus of a worker that had only its box."""
    voxels, scores = _resolve(_reader(source, found.t), found.cut, core[0], core[1], geo)
    task = _Task(found.key, found.t, core[0], core[1], core[0], core[1], geo)
    more = _found(task, np.asarray(voxels, np.int64).reshape(-1, 3),
                  np.asarray(scores, np.float32))
    info = dict(found.info, grown=int(found.info.get("grown", 0)) + len(found.cut))
    return _Found(
        found.key, found.t,
        *(np.concatenate([a, b]) for a, b in zip(
            (found.raster, found.pos, found.cov, found.score),
            (more.raster, more.pos, more.cov, more.score),
        )),
        info=info,
    )


# ------------------------------------------------------------------------- the driver


def extract_indicator_spots_blockwise(
    indicator: Any,
    voxel_size: Sequence[float],
    nms: IndicatorNMSConfig | None = None,
    *,
    block_shape: Sequence[int],
    executor: Any = "serial",
    n_workers: int | None = None,
    store: str | Path | None = None,
    resume: bool = True,
    frames: int | Iterable[int] | None = None,
    halo: Sequence[int] | None = None,
    progress: bool = False,
) -> TrackGraph:
    """Spots at the indicator's maxima in every frame, found block by block.

    Equals ``collect_spots([indicator_spots(indicator[t, 0], voxel_size, nms, t=t) for t
    in frames])`` bit for bit (same spots, ids, row order and column values) while
    reading only block-sized boxes of ``indicator`` (larger only around a plateau that
    spans blocks, see the module notes).

    Parameters
    ----------
    indicator : array_like or str or Path
        Cell indicator, shape (T, 1, Z, Y, X) (float32 or float16; 2D+t has Z = 1): zarr,
        dask, numpy or anything sliceable, or the path of a Zarr array. On worker
        processes or dask a numpy array is sliced here and each box sent with its task;
        any other array is sent itself and read by the worker.
    voxel_size : sequence of 3 float
        Voxel size (z, y, x) in µm.
    nms : IndicatorNMSConfig, optional
        Max-filter window, threshold and spot radius (default
        :class:`IndicatorNMSConfig`).
    block_shape : sequence of 3 int
        Core block (z, y, x) in voxels; clipped to the frame. Aligning it with the Zarr
        chunks avoids reading chunks twice.
    executor : str or distributed.Client or executor
        ``"serial"``, ``"processes"``, a dask scheduler address or ``Client``, or an
        object with ``imap_unordered`` (see
        :func:`celltrack.solve.blockwise.executors.make_executor`). A passed Client or
        executor is left open.
    n_workers : int, optional
        Worker processes for ``"processes"`` (default: the CPUs).
    store : str or Path, optional
        Folder for per-(frame, block) results: a rerun skips the blocks found there. Its
        fingerprint holds the shape, dtype, voxel size, NMS config, blocks, halo and the
        data's identity (a numpy array's bytes, a Zarr array's location and attributes,
        a dask array's name), so a store of another problem is refused.
    resume : bool
        Keep results already in ``store`` (refusing those of another problem); False
        starts afresh.
    frames : int or iterable of int, optional
        Frames to process, in output order (default all; frames not predicted hold NaN
        and raise, so pass the predicted ones).
    halo : sequence of 3 int, optional
        Voxels (z, y, x) read around each core, at least the max filter's half-window;
        default :func:`indicator_halo`.
    progress : bool
        Show a progress bar over (frame, block) tasks.

    Returns
    -------
    TrackGraph
        Nodes ``t``, ``z, y, x`` (µm), ``covariance`` (N, 3, 3) µm² (spheres of
        ``nms.point_radius_um``), ``score`` (indicator value) and ``tag`` =
        ``"unlabeled"``; per frame by decreasing score, frames in the order given.
        ``attrs`` holds ``voxel_size``, ``image_shape`` (T, Z, Y, X),
        ``field_of_view_um`` and ``blockwise_spots`` (block shape, halo, grid, task
        counts, plateaus grown, seconds, worker peak RSS).

    Raises
    ------
    ShapeError
        If ``indicator`` is not (T, 1, Z, Y, X).
    InvalidInputError
        For a bad voxel size, NMS config, block shape, halo, frame list or executor, or
        NaN in a processed frame (naming the frame and voxels).
    CheckpointError
        If ``store`` holds results of another problem (and ``resume`` is True).

    Examples
    --------
    >>> spots = extract_indicator_spots_blockwise(
    ...     "pred/indicator.zarr", (2.0, 0.5, 0.5), IndicatorNMSConfig(),
    ...     block_shape=(32, 256, 256), frames=range(10),
    ...     executor="processes")  # doctest: +SKIP
    """

    start = time.perf_counter()
    cfg = IndicatorNMSConfig() if nms is None else nms
    if not isinstance(cfg, IndicatorNMSConfig):
        raise InvalidInputError(f"nms must be an IndicatorNMSConfig, got {type(cfg).__name__}")
    vs = check_voxel_size(voxel_size)
    source = _open_source(indicator)
    full_shape = tuple(int(s) for s in getattr(source, "shape", ()))
    if len(full_shape) != 5 or full_shape[1] != 1 or min(full_shape) < 1:
        raise ShapeError(
            f"the indicator must be a (T, 1, Z, Y, X) array (one channel; 2D+t data has "
            f"Z = 1), got shape {full_shape}"
        )
    shape = np.asarray(full_shape[2:], np.int64)
    frame_list = _check_frames(frames, full_shape[0])
    block = _check_block_shape(block_shape, shape)
    two_d = bool(shape[0] == 1)
    size = _window_shape(cfg, vs, two_d)
    if halo is None:
        halo_v = indicator_halo(cfg, vs, two_d=two_d)
    else:
        try:
            halo_v = np.asarray(halo, dtype=np.int64).reshape(-1)
        except (TypeError, ValueError):
            raise InvalidInputError(f"halo must be 3 integers (z, y, x voxels), got {halo!r}") \
                from None
        if halo_v.shape != (3,) or np.any(halo_v < size // 2):
            raise InvalidInputError(
                f"halo must be 3 integers (z, y, x voxels) of at least the max filter's "
                f"half-window {(size // 2).tolist()} (window_um = {list(cfg.window_um)}), "
                f"got {halo!r}; leave halo=None for the default"
            )
    geo = _Geometry(shape, size, size // 2, float(cfg.threshold), MARGIN, vs,
                    float(cfg.point_radius_um))
    counts, cores = _block_grid(shape, block)
    n_blocks = len(cores)

    def make_task(key: int, t: int, core_lo: np.ndarray, core_hi: np.ndarray,
                  ship: bool) -> _Task:
        lo = np.maximum(core_lo - halo_v, 0)
        hi = np.minimum(core_hi + halo_v, shape)
        task = _Task(key, t, core_lo, core_hi, lo, hi, geo)
        if ship and isinstance(source, np.ndarray):
            task.window = _read(source, t, lo, hi)
        else:
            task.source = source
        return task

    run = _run_block_tasks(
        make_task,
        _run_block,
        lambda found: _finish_cut(found, source, cores[found.key % n_blocks], geo),
        frame_list=frame_list,
        cores=cores,
        problem=_problem("blockwise_indicator_spots", source, full_shape, vs, block, halo_v,
                         nms_config=cfg.model_dump(mode="json")),
        store=store,
        resume=resume,
        executor=executor,
        n_workers=n_workers,
        desc="indicator maxima",
        progress=progress,
    )
    spots = _assemble(run.results, frame_list, n_blocks, shape, vs, cfg)
    spots.attrs.update(
        **_frame_attrs(full_shape, shape, vs),
        blockwise_spots=_block_stats(run, block, halo_v, counts, start),
    )
    logger.info(
        "block-wise indicator maxima: %d spots in %d frames, %d blocks each (%d resumed) "
        "in %.1f s", spots.num_nodes, len(frame_list), n_blocks, run.total - run.computed,
        time.perf_counter() - start,
    )
    return spots


def _assemble(
    results: dict[int, _Found], frame_list: list[int], n_blocks: int, shape: np.ndarray,
    vs: np.ndarray, cfg: IndicatorNMSConfig,
) -> TrackGraph:
    """Per frame: order the owned maxima as indicator_maxima does, build and join graphs."""
    from celltrack.detect.api import collect_spots
    from celltrack.detect.indicator_predict import spots_from_maxima

    per_frame = []
    for t in frame_list:
        parts = [results[t * n_blocks + b] for b in range(n_blocks)]
        raster = np.concatenate([p.raster for p in parts]).astype(np.int64)
        scores = np.concatenate([p.score for p in parts]).astype(np.float32)  # exact
        if np.unique(raster).size != raster.size:
            raise RuntimeError(
                f"frame {t}: two blocks claimed the same maximum; please report this"
            )
        vox = np.stack(np.unravel_index(raster, tuple(shape)), axis=1).astype(np.int64)
        rank = np.lexsort((vox[:, 2], vox[:, 1], vox[:, 0], -scores))
        per_frame.append(spots_from_maxima(vox[rank], scores[rank], vs, cfg, t=t))
    return collect_spots(per_frame)
