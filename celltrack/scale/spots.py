"""Block-wise spot extraction from stored detection probabilities.

The probabilities of a movie, ``(T, 3, Z, Y, X)`` (background, periphery, centre) or a
centre map ``(T, 1, Z, Y, X)`` or ``(T, Z, Y, X)``, are read one (frame, block) at a time:
the block's *core* plus a *halo* on every side (clipped to the image). Each task extracts
the spots its core *owns*, so the union over blocks is exactly the whole-frame result of
:func:`celltrack.detect.spots.extract_spots` (before duplicate suppression); duplicates
are then suppressed per frame over the kept spots, which are few.

Ownership
---------
- ``'components'`` mode: a connected centre component belongs to the block whose core
  holds its first voxel in raster (z, y, x) order, a voxel of the component that lies in
  exactly one core. A component is measured only when the window holds all of it: one
  that touches a side of the window lying inside the image may continue outside, and
  if its first visible voxel lies in the core (the only case in which the block can own
  it) the window is grown around it, doubling the margin, until the component no longer
  touches such a side. The halo (``r_max_um`` plus one voxel per axis, see
  :func:`spot_halo`; one voxel below the core in z, since the first voxel is a
  component's lowest) makes that rare: it only decides speed, never the result. Pieces
  of one component that enter a window apart (a U whose bend lies outside it) grow to
  the same component, which the block keeps once.
- ``'maxima'`` mode: a local maximum belongs to the block whose core holds it; the halo
  covers the non-maximum neighbourhood (``nms_radius_um``), so each core voxel sees
  exactly the neighbourhood it has in the whole frame. A frame in which every voxel is
  a local maximum has no peaks (the rule of :func:`skimage.feature.peak_local_max`):
  each block reports whether its window is such a plateau, and a frame whose blocks
  all do keeps none.

Spots of a frame are ordered as the whole-frame extraction orders them (components by
their first voxel, maxima in raster order), get ids ``0..n-1``, go through
:func:`~celltrack.detect.spots.suppress_duplicates`, and the frames are joined by
:func:`~celltrack.detect.api.collect_spots`, so ids and row order match too. Maxima
positions are bit-identical to the whole-frame ones; component centroids and
covariances are computed in window coordinates and shifted, so they agree to rounding
(~1e-13 µm).

Tasks run on an executor (:func:`celltrack.solve.blockwise.executors.make_executor`):
``"serial"``, ``"processes"`` or dask. Workers read their own window from the array
(a Zarr array or path, a dask array), so only block-sized slices are ever loaded; an
in-memory numpy array is instead sliced by the driver and the window sent with the task.
With ``store`` every finished (frame, block) is saved atomically and a rerun skips it.

``celltrack.detect`` imports torch, so the detection functions are imported when a
task runs, not when this module is imported.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from celltrack.config.detection import SpotConfig
from celltrack.errors import InvalidInputError, ShapeError
from celltrack.geometry import check_voxel_size, sphere_covariances
from celltrack.graph import TrackGraph
from celltrack.progress import progress_bar
from celltrack.solve.blockwise.store import BlockStore, fingerprint

__all__ = ["extract_spots_blockwise", "spot_halo"]

logger = logging.getLogger(__name__)

_STRUCTURE = np.ones((3, 3, 3), bool)  # 26-connectivity (8 in 2D), as extract_spots
# maxima mode: is every voxel of a block's window a local maximum?
_NOT_PLATEAU, _PLATEAU, _UNKNOWN = 0, 1, 2


# ----------------------------------------------------------------------------- helpers


def spot_halo(spot_cfg: SpotConfig, voxel_size: Sequence[float]) -> np.ndarray:
    """Halo (voxels per axis z, y, x) read around each block for spot extraction.

    ``'components'``: ``ceil(r_max_um / voxel_size) + 1``, enough for a centre
    component (``centre_ratio`` × a nucleus of at most ``r_max_um``) whose first voxel
    lies in the core; larger components are still exact (the window grows around them)
    but cost a second read. ``'maxima'``: the reach of the non-maximum neighbourhood,
    ``floor(nms_radius_um / voxel_size)``, which makes the result exact.

    Parameters
    ----------
    spot_cfg : SpotConfig
        Spot settings (mode, ``r_max_um``, ``nms_radius_um``).
    voxel_size : sequence of 3 float
        Voxel size (z, y, x) in µm.

    Returns
    -------
    ndarray of int64, shape (3,)
        Halo in voxels (z, y, x).
    """
    if not isinstance(spot_cfg, SpotConfig):
        raise InvalidInputError(f"spot_cfg must be a SpotConfig, got {type(spot_cfg).__name__}")
    vs = check_voxel_size(voxel_size)
    if spot_cfg.mode == "maxima":
        return np.floor(spot_cfg.nms_radius_um / vs).astype(np.int64)
    return np.ceil(spot_cfg.r_max_um / vs).astype(np.int64) + 1


def _maxima_footprint(vs: np.ndarray, cfg: SpotConfig, two_d: bool) -> np.ndarray:
    """The ellipsoidal non-maximum neighbourhood extract_spots uses (bool, odd shape)."""
    reach = np.floor(cfg.nms_radius_um / vs).astype(int)
    if two_d:
        reach[0] = 0
    grids = np.meshgrid(*[np.arange(-r, r + 1) * s for r, s in zip(reach, vs)], indexing="ij")
    return sum(g**2 for g in grids) <= cfg.nms_radius_um**2


def _is_plateau(window: np.ndarray, vs: np.ndarray, cfg: SpotConfig) -> bool:
    """Whether peak_local_max sees ``window`` as trivial (every voxel a local maximum)."""
    from scipy import ndimage

    footprint = _maxima_footprint(vs, cfg, window.shape[0] == 1)
    if footprint.size == 1 or window.size == 1:
        return False
    top = ndimage.maximum_filter(window, footprint=footprint, mode="nearest")
    return bool(np.array_equal(window, top))


def _block_grid(shape: np.ndarray, block: np.ndarray) -> tuple[np.ndarray, list[tuple]]:
    """Blocks tiling ``shape`` (Z, Y, X): grid counts (3,) and (lo, hi) cores in C order."""
    counts = -(-shape // block)
    cores = []
    for index in np.ndindex(*counts.tolist()):
        lo = np.asarray(index, np.int64) * block
        cores.append((lo, np.minimum(lo + block, shape)))
    return counts, cores


def _window(
    core_lo: np.ndarray, core_hi: np.ndarray, halo: np.ndarray, shape: np.ndarray,
    cfg: SpotConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """The box [lo, hi) (voxels) read for a core: the core plus its halo, clipped.

    In ``'components'`` mode one voxel below the core in z is enough: a component's
    first voxel has its smallest z, so one reaching below the core shows a voxel in that
    layer (and is another block's), or leaves through a y/x side (and is grown).
    """
    below = halo.copy()
    if cfg.mode == "components":
        below[0] = min(int(halo[0]), 1)
    return np.maximum(core_lo - below, 0), np.minimum(core_hi + halo, shape)


def _open_source(probabilities: Any) -> Any:
    if isinstance(probabilities, (str, Path)):
        import zarr

        try:
            return zarr.open_array(str(probabilities), mode="r")
        except Exception as exc:  # zarr raises several types for a missing/odd store
            raise InvalidInputError(
                f"cannot open '{probabilities}' as a Zarr array of probabilities ({exc}); "
                "give the path of the (T, 3, Z, Y, X) array itself, or the array"
            ) from None
    return probabilities


def _centre_channel(shape: tuple[int, ...]) -> int | None:
    """Index of the centre channel: 2 of (T, 3, Z, Y, X), 0 of a stored centre map
    (T, 1, Z, Y, X); None for a (T, Z, Y, X) centre map."""
    if len(shape) == 5 and shape[1] in (1, 3):
        return 2 if shape[1] == 3 else 0
    if len(shape) == 4:
        return None
    raise ShapeError(
        f"probabilities must be (T, 3, Z, Y, X) class probabilities (background, periphery, "
        f"centre) or a centre map, (T, 1, Z, Y, X) or (T, Z, Y, X), got shape "
        f"{tuple(shape)}; 2D+t data has Z = 1"
    )


def _read_centre(
    source: Any, t: int, channel: int | None, lo: np.ndarray, hi: np.ndarray
) -> np.ndarray:
    """The centre probabilities of frame ``t`` in the box [lo, hi) as float32 (Z, Y, X)."""
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    index = (int(t), *box) if channel is None else (int(t), channel, *box)
    window = np.asarray(source[index]).astype(np.float32, copy=False)
    if not np.all(np.isfinite(window)):
        raise InvalidInputError(
            f"the probabilities of frame {t} contain NaN or infinite values in voxels "
            f"{lo.tolist()}..{(hi - 1).tolist()} (z, y, x); fix or re-run the prediction there"
        )
    return window


@dataclass
class _Task:
    """One (frame, block): what a worker needs (the array or the pre-read window)."""

    key: int
    t: int
    core_lo: np.ndarray
    core_hi: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    shape: np.ndarray
    halo: np.ndarray
    vs: np.ndarray
    cfg: SpotConfig
    channel: int | None
    source: Any = None
    window: np.ndarray | None = None


@dataclass
class _Found:
    """The spots one (frame, block) owns: raster keys and measurements (µm, µm²)."""

    key: int
    t: int
    raster: np.ndarray  # (n,) int64 linear (z, y, x) index of the first voxel / the peak
    pos: np.ndarray  # (n, 3) µm
    cov: np.ndarray  # (n, 3, 3) µm²
    score: np.ndarray  # (n,)
    plateau: int = _NOT_PLATEAU  # maxima: whether every window voxel is a local maximum
    cut: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


def _empty_found(task: _Task) -> _Found:
    return _Found(
        task.key, task.t, np.zeros(0, np.int64), np.zeros((0, 3)), np.zeros((0, 3, 3)),
        np.zeros(0),
    )


def _peak_rss_mb() -> float:
    """Peak resident set size of this process (MiB)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


# ------------------------------------------------------------------------ the worker


def _maxima_block(task: _Task, window: np.ndarray) -> _Found:
    from celltrack.detect.spots import extract_spots

    vs = task.vs
    found = extract_spots(window, vs, task.cfg, suppress=False)
    local = np.rint(found.positions / vs).astype(np.int64)  # exact: positions are index · vs
    plateau = _NOT_PLATEAU
    if found.num_nodes == 0:
        if np.any(window > task.cfg.threshold):
            # peak_local_max finds nothing in a window whose voxels are all local maxima;
            # in the frame those core voxels are peaks unless every window is a plateau
            if _is_plateau(window, vs, task.cfg):
                plateau = _PLATEAU
                local = np.argwhere(window > task.cfg.threshold).astype(np.int64)
        else:
            plateau = _UNKNOWN  # no spots here; checked only if the frame's vote needs it
    glob = local + task.lo
    inside = np.all((glob >= task.core_lo) & (glob < task.core_hi), axis=1)
    glob = glob[inside]
    n = glob.shape[0]
    return _Found(
        task.key,
        task.t,
        np.ravel_multi_index(tuple(glob.T), tuple(task.shape)).astype(np.int64),
        glob.astype(np.float64) * vs,
        sphere_covariances(n, task.cfg.point_radius_um),
        window[tuple((glob - task.lo).T)].astype(np.float64),
        plateau=plateau,
    )


def _measure(
    window: np.ndarray, labels: np.ndarray, keep: np.ndarray, lo: np.ndarray, vs: np.ndarray,
    cfg: SpotConfig, box_lo: np.ndarray, box_hi: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Spots of the labelled components ``keep`` (sorted label numbers) of ``window``.

    Returns the row (into ``keep``) of each kept spot, its position (µm, global), its
    covariance and score, measured by extract_spots on the box [box_lo, box_hi) (window
    voxels) around them with every other voxel set to 0, so the relabelled components
    come in the same order as ``keep``.
    """
    from celltrack.detect.spots import extract_spots

    box_lo, box_hi = box_lo.copy(), box_hi.copy()
    if window.shape[0] > 1 and box_hi[0] - box_lo[0] == 1:  # one z layer would read as 2D
        if box_hi[0] < window.shape[0]:
            box_hi[0] += 1
        else:
            box_lo[0] -= 1
    box = tuple(slice(int(a), int(b)) for a, b in zip(box_lo, box_hi))
    chosen = np.zeros(int(labels.max()) + 1, bool)
    chosen[keep] = True
    only = np.where(chosen[labels[box]], window[box], np.float32(0.0))
    lo = lo + box_lo
    got = extract_spots(only, vs, cfg, suppress=False)
    rows = np.arange(keep.size)
    if got.num_nodes != keep.size:  # some fell below r_min_um: find which
        every = extract_spots(
            only, vs, cfg.model_copy(update={"r_min_um": 0.0}), suppress=False
        )
        if every.num_nodes != keep.size:
            raise RuntimeError(
                f"block-wise extraction measured {every.num_nodes} of {keep.size} components; "
                "please report this"
            )
        void = np.dtype((np.void, 3 * 8))
        a = np.ascontiguousarray(every.positions).view(void).ravel()
        b = np.ascontiguousarray(got.positions).view(void).ravel()
        rows = np.flatnonzero(np.isin(a, b))
        if rows.size != got.num_nodes:  # identical centroids: match in order
            rows_list, j = [], 0
            for i in range(every.num_nodes):
                if j < got.num_nodes and a[i] == b[j]:
                    rows_list.append(i)
                    j += 1
            rows = np.asarray(rows_list, np.int64)
    pos = got.positions + lo * vs
    return rows, pos, np.asarray(got.nodes["covariance"]), np.asarray(got.nodes["score"])


def _grow(
    read: Any, t: int, seed: np.ndarray, box_lo: np.ndarray, box_hi: np.ndarray,
    halo: np.ndarray, shape: np.ndarray, cfg: SpotConfig,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read a window holding all of the component through ``seed`` (global voxel).

    Returns the window (float32), its labels, the component's label and the window's
    origin (voxels).
    """
    from scipy import ndimage

    margin = np.maximum(halo, 1)
    lo = np.maximum(box_lo - margin, 0)
    hi = np.minimum(box_hi + margin, shape)
    while True:
        window = read(t, lo, hi)
        labels, _ = ndimage.label(window > cfg.threshold, structure=_STRUCTURE)
        label = int(labels[tuple(seed - lo)])
        if label == 0:
            raise RuntimeError("block-wise extraction lost a component; please report this")
        box = ndimage.find_objects((labels == label).astype(np.int32))[0]
        blo = lo + np.array([s.start for s in box])
        bhi = lo + np.array([s.stop for s in box])
        low = (blo == lo) & (lo > 0)
        high = (bhi == hi) & (hi < shape)
        if not (low.any() or high.any()):
            return window, labels, np.array([label]), lo
        margin = margin * 2
        lo = np.where(low, np.maximum(lo - margin, 0), lo)
        hi = np.where(high, np.minimum(hi + margin, shape), hi)


def _resolve(read: Any, task: _Task, seed: np.ndarray, box_lo: np.ndarray,
             box_hi: np.ndarray) -> tuple[int, np.ndarray, np.ndarray, float] | None:
    """Measure a component cut by the window's edge, if ``task``'s core owns it."""
    window, labels, label, lo = _grow(
        read, task.t, seed, box_lo, box_hi, task.halo, task.shape, task.cfg
    )
    mine = labels == label[0]
    first = np.asarray(np.unravel_index(int(np.flatnonzero(mine)[0]), labels.shape)) + lo
    if not np.all((first >= task.core_lo) & (first < task.core_hi)):
        return None
    where = np.nonzero(mine)
    rows, pos, cov, score = _measure(
        window, labels, label, lo, task.vs, task.cfg,
        np.array([w.min() for w in where]), np.array([w.max() + 1 for w in where]),
    )
    if rows.size == 0:
        return None
    raster = int(np.ravel_multi_index(tuple(first), tuple(task.shape)))
    return raster, pos[0], cov[0], float(score[0])


def _resolve_cuts(
    read: Any, task: _Task, cuts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
) -> list[tuple[int, np.ndarray, np.ndarray, float]]:
    """Measure the cut components (seed, seen box) that ``task``'s core owns, each once.

    Pieces of one component can enter a window apart (a U whose bend lies outside it):
    they grow to the same component and its one raster key.
    """
    hits: dict[int, tuple[int, np.ndarray, np.ndarray, float]] = {}
    for seed, lo, hi in cuts:
        hit = _resolve(read, task, seed, lo, hi)
        if hit is not None:
            hits.setdefault(hit[0], hit)
    return list(hits.values())


def _component_block(task: _Task, window: np.ndarray) -> _Found:
    from scipy import ndimage

    labels, n = ndimage.label(window > task.cfg.threshold, structure=_STRUCTURE)
    if n == 0:
        return _empty_found(task)
    flat = labels.ravel()
    voxels = np.flatnonzero(flat)  # ascending raster order
    _, first_row = np.unique(flat[voxels], return_index=True)  # labels 1..n in order
    first = np.stack(np.unravel_index(voxels[first_row], window.shape), axis=1)
    first_glob = first + task.lo
    owned = np.all((first_glob >= task.core_lo) & (first_glob < task.core_hi), axis=1)
    boxes = ndimage.find_objects(labels)
    box_lo = np.array([[s.start for s in b] for b in boxes], np.int64)
    box_hi = np.array([[s.stop for s in b] for b in boxes], np.int64)
    size = np.asarray(window.shape)
    cut = np.any(
        ((box_lo == 0) & (task.lo > 0)) | ((box_hi == size) & (task.hi < task.shape)), axis=1
    )
    whole = np.flatnonzero(owned & ~cut) + 1
    raster_parts, pos_parts, cov_parts, score_parts = [], [], [], []
    if whole.size:
        rows, pos, cov, score = _measure(
            window, labels, whole, task.lo, task.vs, task.cfg,
            box_lo[whole - 1].min(axis=0), box_hi[whole - 1].max(axis=0),
        )
        raster_parts.append(
            np.ravel_multi_index(tuple(first_glob[whole[rows] - 1].T), tuple(task.shape))
        )
        pos_parts.append(pos)
        cov_parts.append(cov)
        score_parts.append(score)
    cuts = [
        (first_glob[label - 1], box_lo[label - 1] + task.lo, box_hi[label - 1] + task.lo)
        for label in (np.flatnonzero(owned & cut) + 1).tolist()
    ]
    pending = cuts if task.source is None else []  # the driver grows them (_finish_cut)
    grown = 0
    if task.source is not None:
        grown = len(cuts)
        for hit in _resolve_cuts(_reader(task), task, cuts):
            raster_parts.append(np.array([hit[0]], np.int64))
            pos_parts.append(hit[1][None])
            cov_parts.append(hit[2][None])
            score_parts.append(np.array([hit[3]]))
    if not raster_parts:
        out = _empty_found(task)
    else:
        out = _Found(
            task.key, task.t, np.concatenate(raster_parts).astype(np.int64),
            np.concatenate(pos_parts), np.concatenate(cov_parts), np.concatenate(score_parts),
        )
    out.cut = pending
    out.info["grown"] = grown
    return out


def _reader(task: _Task) -> Any:
    def read(t: int, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        return _read_centre(task.source, t, task.channel, lo, hi)

    return read


def _run_block(task: _Task) -> _Found:
    """Worker entry point: extract the spots one (frame, block) owns."""
    start = time.perf_counter()
    if task.window is not None:
        window = task.window
    else:
        window = _read_centre(task.source, task.t, task.channel, task.lo, task.hi)
    if task.cfg.mode == "maxima":
        out = _maxima_block(task, window)
    else:
        out = _component_block(task, window)
    out.info.update(
        seconds=time.perf_counter() - start,
        window_voxels=int(window.size),
        spots=int(out.raster.size),
        worker_peak_rss_mb=_peak_rss_mb(),
    )
    return out


# ---------------------------------------------------------------------------- store


class _SpotStore(BlockStore):
    """Per-(frame, block) spot results: one atomically written ``.npz`` each."""

    def save_found(self, found: _Found) -> Path:
        import json
        import os

        from celltrack.io.atomic import atomic_path

        final = self._file(found.key)
        with atomic_path(final) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(
                    handle, t=np.int64(found.t), raster=found.raster, pos=found.pos,
                    cov=found.cov, score=found.score, plateau=np.int8(found.plateau),
                    info=np.asarray(json.dumps(found.info, default=str)),
                )
                handle.flush()
                os.fsync(handle.fileno())
        return final

    def load_found(self, key: int) -> _Found:
        import json

        from celltrack.errors import CheckpointError

        path = self._file(key)
        try:
            with np.load(path, allow_pickle=False) as data:
                return _Found(
                    int(key), int(data["t"]), data["raster"], data["pos"], data["cov"],
                    data["score"], plateau=int(data["plateau"]),
                    info=json.loads(str(data["info"])),
                )
        except (OSError, KeyError, ValueError) as exc:
            raise CheckpointError(
                f"cannot read block spots '{path}' ({exc}); delete it to extract that block again"
            ) from None


def _source_identity(source: Any) -> str:
    """What identifies the probabilities in a store's fingerprint.

    A numpy array: a hash of its bytes. A Zarr array: its store, path and attributes.
    A dask array: its name (a token of the graph and, for ``from_array``, the data).
    Anything else: its type only, so a rerun trusts that the data did not change.
    """
    import json

    if isinstance(source, np.ndarray):
        return "numpy:" + fingerprint([source], {})
    kind = f"{type(source).__module__}.{type(source).__name__}"
    if hasattr(source, "store") and hasattr(source, "attrs"):
        try:
            attrs = json.dumps(dict(source.attrs), sort_keys=True, default=str)
        except Exception:  # odd attribute values: identify by location only
            attrs = ""
        return f"{kind}:{source.store}:{getattr(source, 'path', '')}:{attrs}"
    if hasattr(source, "dask") and hasattr(source, "name"):
        return f"{kind}:{source.name}"
    return kind


# ------------------------------------------------------------------------- the driver


def _check_frames(frames: int | Iterable[int] | None, n_frames: int) -> list[int]:
    if frames is None:
        return list(range(n_frames))
    items = [frames] if isinstance(frames, (int, np.integer)) else list(frames)
    try:
        out = [int(f) for f in items]
    except (TypeError, ValueError):
        raise InvalidInputError(f"frames must be integers, got {items[:5]}") from None
    bad = [f for f in out if not 0 <= f < n_frames]
    if bad:
        raise InvalidInputError(
            f"frames {bad[:5]} are outside the probabilities' frames 0..{n_frames - 1}"
        )
    if len(set(out)) != len(out):
        raise InvalidInputError(f"frames must not repeat, got {out[:10]}")
    return out


def _check_block_shape(block_shape: Any, shape: np.ndarray) -> np.ndarray:
    try:
        block = np.asarray(block_shape, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise InvalidInputError(
            f"block_shape must be 3 positive integers (z, y, x) in voxels, got {block_shape!r}"
        ) from None
    if block.shape != (3,) or np.any(block < 1) or np.any(block != np.round(block)):
        raise InvalidInputError(
            f"block_shape must be 3 positive integers (z, y, x) in voxels, got {block_shape!r}; "
            "for 2D+t data give (1, y, x)"
        )
    return np.minimum(block.astype(np.int64), shape)


# ---------------------------------------------------------------------------- driver


@dataclass
class _BlockRun:
    """What :func:`_run_block_tasks` did: every (frame, block) result, and how."""

    results: dict[int, _Found]  # by task key t · n_blocks + b
    computed: int  # tasks run now (the others came from the store)
    total: int
    executor: str


def _run_block_tasks(
    make_task: Callable[[int, int, np.ndarray, np.ndarray, bool], Any],
    worker: Callable[[Any], _Found],
    finish_cut: Callable[[_Found], _Found],
    *,
    frame_list: list[int],
    cores: list[tuple],
    problem: dict[str, Any] | None,
    store: str | Path | None,
    resume: bool,
    executor: Any,
    n_workers: int | None,
    desc: str,
    progress: bool,
) -> _BlockRun:
    """Run every (frame, block) task of a block-wise extraction, resumably.

    ``make_task(key, t, core_lo, core_hi, ship_window)`` builds a task (reading its window
    here when ``ship_window``: a numpy source on worker processes); ``worker`` runs it;
    ``finish_cut`` resolves, here, the cut objects of a worker that had only its window.
    With ``store`` each result is saved as it arrives and a rerun skips it; ``problem``
    (JSON-able) is the store's fingerprint.
    """
    from celltrack.solve.blockwise.executors import make_executor

    n_blocks = len(cores)
    spot_store = None
    if store is not None:
        spot_store = _SpotStore(store, fingerprint([], problem or {}), resume=resume)
    done = set(spot_store.finished()) if spot_store is not None else set()
    runner = make_executor(executor, n_workers)
    owned_runner = runner is not executor
    ship_windows = runner.name != "serial"

    def tasks() -> Iterator[Any]:
        for t in frame_list:
            for b, (core_lo, core_hi) in enumerate(cores):
                key = t * n_blocks + b
                if key not in done:
                    yield make_task(key, t, core_lo, core_hi, ship_windows)

    results: dict[int, _Found] = {}
    wanted = set(frame_list)
    for key in done:
        if key // n_blocks in wanted:
            results[key] = spot_store.load_found(key)  # type: ignore[union-attr]
    total = len(frame_list) * n_blocks
    bar = progress_bar(total=total, desc=desc, disable=not progress, unit="block")
    bar.update(len(results))
    computed = 0
    try:
        for found in runner.imap_unordered(worker, tasks()):
            if found.cut:  # cut objects of a shipped window: resolved here
                found = finish_cut(found)
            if spot_store is not None:
                spot_store.save_found(found)
            results[found.key] = found
            computed += 1
            bar.update()
    finally:
        bar.close()
        if owned_runner:
            runner.close()
    return _BlockRun(results, computed, total, runner.name)


def _block_stats(
    run: _BlockRun, block: np.ndarray, halo: np.ndarray, counts: np.ndarray, start: float
) -> dict[str, Any]:
    """The ``blockwise_spots`` attribute: grid, task counts, growth, time and memory."""
    infos = [r.info for r in run.results.values()]
    return {
        "block_shape": block.tolist(),
        "halo": halo.tolist(),
        "grid": counts.tolist(),
        "tasks": run.total,
        "computed": run.computed,
        "resumed": run.total - run.computed,
        "grown": int(sum(i.get("grown", 0) for i in infos)),
        "executor": run.executor,
        "seconds": time.perf_counter() - start,
        "max_worker_peak_rss_mb": max(
            (float(i.get("worker_peak_rss_mb", 0.0)) for i in infos), default=0.0
        ),
    }


def _frame_attrs(full_shape: tuple[int, ...], shape: np.ndarray, vs: np.ndarray) -> dict:
    """``voxel_size``, ``image_shape`` (T, Z, Y, X) and ``field_of_view_um`` of the spots."""
    return {
        "voxel_size": vs.tolist(),
        "image_shape": [full_shape[0], *shape.tolist()],
        "field_of_view_um": [[0.0, float((n - 1) * v)] for n, v in zip(shape, vs)],
    }


def _problem(
    what: str, source: Any, full_shape: tuple[int, ...], vs: np.ndarray, block: np.ndarray,
    halo: np.ndarray, **config: Any,
) -> dict[str, Any]:
    """The fingerprinted description of a block-wise extraction (its store's identity)."""
    return {
        "what": what,
        "source": _source_identity(source),
        "shape": list(full_shape),
        "dtype": str(getattr(source, "dtype", "")),
        "voxel_size": vs.tolist(),
        **config,
        "block_shape": block.tolist(),
        "halo": halo.tolist(),
    }


def extract_spots_blockwise(
    probabilities: Any,
    voxel_size: Sequence[float],
    spot_cfg: SpotConfig | None = None,
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
    """Spots of every frame, extracted block by block from stored probabilities.

    Equals ``collect_spots([extract_spots(probabilities[t], voxel_size, spot_cfg, t=t)
    for t in frames])`` (same spots, ids, row order and columns; see the module notes
    on rounding) while reading only block-sized windows of ``probabilities``.

    Parameters
    ----------
    probabilities : array_like or str or Path
        Detection probabilities, shape (T, 3, Z, Y, X) (background, periphery, centre)
        or a centre map, (T, 1, Z, Y, X) (as ``predict_blockwise(..., channels=(2,))``
        stores it) or (T, Z, Y, X): numpy, zarr, dask or anything sliceable, or the
        path of a Zarr array. Only the centre channel is read. On worker processes or
        dask, a numpy array is sliced here and each window sent with its task; any other
        array is sent itself and read by the worker, so a dask array should come from a
        store (``da.from_zarr``), not wrap an in-memory array.
    voxel_size : sequence of 3 float
        Voxel size (z, y, x) in µm.
    spot_cfg : SpotConfig, optional
        Spot settings (default :class:`SpotConfig`).
    block_shape : sequence of 3 int
        Core block (z, y, x) in voxels; clipped to the image. Aligning it with the Zarr
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
        fingerprint holds the shape, voxel size, spot config, blocks, halo and the data's
        identity (a numpy array's bytes, a Zarr array's location and attributes, a dask
        array's name), so a store of another problem is refused.
    resume : bool
        Keep results already in ``store`` (refusing those of another problem); False
        starts afresh.
    frames : int or iterable of int, optional
        Frames to process, in output order (default all).
    halo : sequence of 3 int, optional
        Halo (z, y, x) voxels read around each core; default :func:`spot_halo`. In
        ``'maxima'`` mode it must be at least that reach.
    progress : bool
        Show a progress bar over (frame, block) tasks.

    Returns
    -------
    TrackGraph
        Nodes ``t``, ``z, y, x`` (µm), ``covariance`` (N, 3, 3) µm², ``score`` and
        ``tag`` = ``"unlabeled"``, frames in the order given. ``attrs`` holds
        ``voxel_size``, ``image_shape`` (T, Z, Y, X), ``field_of_view_um`` and
        ``blockwise_spots`` (block shape, halo, grid, task counts, seconds, worker peak
        RSS).

    Raises
    ------
    ShapeError
        If ``probabilities`` is not (T, 3, Z, Y, X) or (T, Z, Y, X).
    InvalidInputError
        For a bad voxel size, block shape, halo, frame list or executor, or NaN
        probabilities (naming the frame and voxels).
    CheckpointError
        If ``store`` holds results of another problem (and ``resume`` is True).

    Examples
    --------
    >>> spots = extract_spots_blockwise(
    ...     "pred/probabilities.zarr", (2.0, 0.5, 0.5), SpotConfig(),
    ...     block_shape=(32, 256, 256), executor="processes")  # doctest: +SKIP
    """

    start = time.perf_counter()
    cfg = SpotConfig() if spot_cfg is None else spot_cfg
    if not isinstance(cfg, SpotConfig):
        raise InvalidInputError(f"spot_cfg must be a SpotConfig, got {type(cfg).__name__}")
    vs = check_voxel_size(voxel_size)
    source = _open_source(probabilities)
    full_shape = tuple(int(s) for s in getattr(source, "shape", ()))
    channel = _centre_channel(full_shape)
    shape = np.asarray(full_shape[-3:], np.int64)
    frame_list = _check_frames(frames, full_shape[0])
    block = _check_block_shape(block_shape, shape)
    need = spot_halo(cfg, vs)
    if halo is None:
        halo_v = need
    else:
        halo_v = np.asarray(halo, dtype=np.int64).reshape(-1)
        if halo_v.shape != (3,) or np.any(halo_v < 0):
            raise InvalidInputError(f"halo must be 3 integers >= 0 (z, y, x voxels), got {halo!r}")
        if cfg.mode == "components":
            halo_v = np.maximum(halo_v, 1)  # a 1-voxel-thick window would be read as 2D
        if cfg.mode == "maxima" and np.any(halo_v < need):
            raise InvalidInputError(
                f"halo {halo_v.tolist()} is smaller than the maxima neighbourhood "
                f"{need.tolist()} voxels (nms_radius_um = {cfg.nms_radius_um}): raise it or "
                "leave halo=None"
            )
    counts, cores = _block_grid(shape, block)
    n_blocks = len(cores)

    def make_task(key: int, t: int, core_lo: np.ndarray, core_hi: np.ndarray,
                  ship: bool) -> _Task:
        lo, hi = _window(core_lo, core_hi, halo_v, shape, cfg)
        task = _Task(key, t, core_lo, core_hi, lo, hi, shape, halo_v, vs, cfg, channel)
        if ship and isinstance(source, np.ndarray):
            task.window = _read_centre(source, t, channel, lo, hi)
        else:
            task.source = source
        return task

    run = _run_block_tasks(
        make_task,
        _run_block,
        lambda found: _finish_cut(found, source, channel, cores, n_blocks, shape, halo_v,
                                  vs, cfg),
        frame_list=frame_list,
        cores=cores,
        problem=_problem("blockwise_spots", source, full_shape, vs, block, halo_v,
                         spot_config=cfg.model_dump(mode="json")),
        store=store,
        resume=resume,
        executor=executor,
        n_workers=n_workers,
        desc="spots",
        progress=progress,
    )

    def plateau_of(found: _Found) -> bool:
        core_lo, core_hi = cores[found.key % n_blocks]
        lo, hi = _window(core_lo, core_hi, halo_v, shape, cfg)
        return _is_plateau(_read_centre(source, found.t, channel, lo, hi), vs, cfg)

    spots = _assemble(run.results, frame_list, n_blocks, cfg, plateau_of)
    spots.attrs.update(
        **_frame_attrs(full_shape, shape, vs),
        spot_config=cfg.model_dump(mode="json"),
        blockwise_spots=_block_stats(run, block, halo_v, counts, start),
    )
    logger.info("block-wise spots: %d spots in %d frames, %d blocks each (%d resumed) in %.1f s",
                spots.num_nodes, len(frame_list), n_blocks, run.total - run.computed,
                time.perf_counter() - start)
    return spots


def _finish_cut(
    found: _Found, source: Any, channel: int | None, cores: list[tuple], n_blocks: int,
    shape: np.ndarray, halo: np.ndarray, vs: np.ndarray, cfg: SpotConfig,
) -> _Found:
    """Measure, in the driver, the cut components a worker without the array could not."""
    core_lo, core_hi = cores[found.key % n_blocks]
    task = _Task(found.key, found.t, core_lo, core_hi, core_lo, core_hi, shape, halo, vs, cfg,
                 channel, source=source)
    parts = [(found.raster, found.pos, found.cov, found.score)]
    for hit in _resolve_cuts(_reader(task), task, found.cut):
        parts.append((np.array([hit[0]], np.int64), hit[1][None], hit[2][None],
                      np.array([hit[3]])))
    info = dict(found.info, grown=int(found.info.get("grown", 0)) + len(found.cut))
    return _Found(
        found.key, found.t, *(np.concatenate(p) for p in zip(*parts)), plateau=found.plateau,
        info=info,
    )


def _frame_is_plateau(parts: list[_Found], plateau_of: Any) -> bool:
    """Maxima mode: is every voxel of the frame a local maximum (then it has no peaks)?

    The frame is such a plateau exactly when every block's window is. Blocks that found
    nothing above the threshold did not check (state unknown); they are checked here, and
    only when every other block is a plateau and some hold spots.
    """
    states = [p.plateau for p in parts]
    if _NOT_PLATEAU in states or not any(p.raster.size for p in parts):
        return False
    return all(s == _PLATEAU or plateau_of(p) for s, p in zip(states, parts))


def _assemble(
    results: dict[int, _Found], frame_list: list[int], n_blocks: int, cfg: SpotConfig,
    plateau_of: Any,
) -> TrackGraph:
    """Per frame: order the owned spots as extract_spots does, suppress, collect."""
    from celltrack.detect.api import collect_spots
    from celltrack.detect.spots import suppress_duplicates

    per_frame = []
    for t in frame_list:
        parts = [results[t * n_blocks + b] for b in range(n_blocks)]
        if cfg.mode == "maxima" and _frame_is_plateau(parts, plateau_of):
            parts = []  # the whole frame is one plateau: no local maxima (peak_local_max)
        raster = np.concatenate([p.raster for p in parts]) if parts else np.zeros(0, np.int64)
        order = np.argsort(raster, kind="stable")
        if np.any(np.diff(raster[order]) == 0):
            raise RuntimeError(
                f"frame {t}: two blocks claimed the same spot; please report this"
            )
        n = raster.size
        pos = np.concatenate([p.pos for p in parts])[order] if parts else np.zeros((0, 3))
        cov = np.concatenate([p.cov for p in parts])[order] if parts else np.zeros((0, 3, 3))
        score = np.concatenate([p.score for p in parts])[order] if parts else np.zeros(0)
        graph = TrackGraph.from_positions(
            np.full(n, int(t), np.int64), pos.reshape(n, 3), covariance=cov.reshape(n, 3, 3),
            score=score.astype(np.float64), tag=np.full(n, "unlabeled"),
        )
        if cfg.suppression_distance_um > 0 and n > 1:
            graph = suppress_duplicates(graph, cfg.suppression_distance_um)
        per_frame.append(graph)
    return collect_spots(per_frame)
