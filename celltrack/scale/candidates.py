"""Block-wise candidate graph: edges per child frame on an executor, persisted as GEFF.

:func:`build_candidates_blockwise` equals :func:`celltrack.graph.candidates.build_candidates`
(same edges in the same order, same columns and attrs) while each task sees only the
nodes of one child frame ``t`` and its parent frames ``t − max_gap_frames … t − 1``:
the task runs :func:`~celltrack.graph.candidates.build_candidates` itself on that
sub-graph and keeps the edges into frame ``t``. Rows keep their relative order in the
sub-graph, so the per-frame search, its tie order and the edge order are the whole
graph's; concatenating the frames in time order gives the whole graph's edge table.
Predicted parents (``parent_z/y/x``, e.g. from
:func:`celltrack.scale.parents.displace_from_store`) and ``max_candidates`` act per child
and frame gap, so they are unchanged; the ROI (``attrs['roi_um']``, from
``field_of_view_um`` or else the bounding box of *all* nodes) is computed once from the
whole node table.

:func:`candidate_graph_blockwise` chains block-wise spot extraction, optional parent
positions from a stored flow, candidates, and an atomic GEFF write: the movie and its
probabilities are only ever read block by block.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from celltrack.config.detection import SpotConfig
from celltrack.errors import InvalidInputError
from celltrack.graph.candidates import PARENT_COLUMNS, CandidateConfig, build_candidates
from celltrack.graph.trackgraph import NODE_REQUIRED, TrackGraph
from celltrack.progress import progress_bar

__all__ = ["build_candidates_blockwise", "candidate_graph_blockwise"]

logger = logging.getLogger(__name__)


@dataclass
class _FrameTask:
    """Nodes of a child frame and its parent frames (only the columns the search uses)."""

    t: int
    nodes: dict[str, np.ndarray]
    cfg: CandidateConfig


def _frame_edges(task: _FrameTask) -> tuple[int, dict[str, np.ndarray], float]:
    """Worker: the candidate edges into frame ``task.t`` (source/target ids, features)."""
    start = time.perf_counter()
    sub = TrackGraph(task.nodes, validate=False)
    cand = build_candidates(sub, task.cfg)
    child_t = sub.t[sub.index_of(cand.edges["target"])] if cand.num_edges else np.zeros(0)
    keep = child_t == task.t
    edges = {name: np.asarray(col)[keep] for name, col in cand.edges.items()}
    return task.t, edges, time.perf_counter() - start


def _search_columns(spots: TrackGraph, cfg: CandidateConfig) -> list[str]:
    names = list(NODE_REQUIRED)
    if cfg.use_predicted_position and all(c in spots.nodes for c in PARENT_COLUMNS):
        names += list(PARENT_COLUMNS)
    return names


def build_candidates_blockwise(
    spots: TrackGraph,
    cfg: CandidateConfig | None = None,
    *,
    executor: Any = "serial",
    n_workers: int | None = None,
    out: str | Path | None = None,
    overwrite: bool = False,
    zarr_format: int = 2,
    progress: bool = False,
) -> TrackGraph:
    """Candidate graph of ``spots``, one task per child frame, optionally written as GEFF.

    Parameters
    ----------
    spots : TrackGraph
        Detections (N nodes, positions in µm). Existing edges are ignored and dropped.
        Optional node columns ``parent_z/y/x`` (µm) give each node's predicted position
        one frame earlier.
    cfg : CandidateConfig, optional
        Search radius (µm), frame gap, k nearest, field of view; defaults if omitted.
    executor : str or distributed.Client or executor
        ``"serial"``, ``"processes"``, a dask scheduler address or ``Client``, or an
        object with ``imap_unordered``
        (:func:`celltrack.solve.blockwise.executors.make_executor`). A passed Client or
        executor is left open.
    n_workers : int, optional
        Worker processes for ``"processes"``.
    out : str or Path, optional
        Write the graph here as GEFF (zarr), atomically (:func:`celltrack.io.write_geff`).
    overwrite : bool
        Replace an existing ``out``.
    zarr_format : {2, 3}
        Zarr format of ``out``.
    progress : bool
        Progress bar over child frames.

    Returns
    -------
    TrackGraph
        Equal to ``build_candidates(spots, cfg)``: the same nodes and node columns; edges
        parent (t − k) → child (t) with ``distance`` (µm), ``pred_distance`` (µm) and
        ``frame_gap`` (int64), ordered by child frame, child row, ``pred_distance``;
        ``attrs['roi_um']`` and ``attrs['candidates']`` as there, plus
        ``attrs['blockwise_candidates']`` (tasks, executor, seconds).

    Raises
    ------
    InvalidInputError
        If ``spots`` is not a TrackGraph, ``cfg`` not a CandidateConfig, or the executor
        is unknown.
    OutputExistsError
        If ``out`` holds data and ``overwrite`` is False.
    """
    from celltrack.graph.candidates import _roi
    from celltrack.solve.blockwise.executors import make_executor

    start = time.perf_counter()
    if not isinstance(spots, TrackGraph):
        raise InvalidInputError(
            f"build_candidates_blockwise needs a TrackGraph of spots, got {type(spots).__name__}"
        )
    cfg = CandidateConfig() if cfg is None else cfg
    if not isinstance(cfg, CandidateConfig):
        raise InvalidInputError(f"cfg must be a CandidateConfig, got {type(cfg).__name__}")
    if out is not None and not overwrite:
        from celltrack.io.atomic import refuse_existing

        refuse_existing(Path(out), overwrite)  # fail before the work, not after

    t = spots.t
    order = np.argsort(t, kind="stable")
    frames, first = np.unique(t[order], return_index=True)
    bounds = dict(zip(frames.tolist(), zip(first.tolist(), [*first[1:].tolist(), t.size])))
    columns = {c: np.asarray(spots.nodes[c]) for c in _search_columns(spots, cfg)}

    def tasks() -> Iterator[_FrameTask]:
        for frame in frames.tolist():
            parents = [f for f in range(frame - cfg.max_gap_frames, frame) if f in bounds]
            if not parents:
                continue
            rows = np.sort(np.concatenate(
                [order[slice(*bounds[f])] for f in (*parents, frame)]
            ))  # the whole graph's row order, restricted to these frames
            yield _FrameTask(frame, {c: v[rows] for c, v in columns.items()}, cfg)

    n_tasks = sum(
        1 for f in frames.tolist()
        if any(g in bounds for g in range(f - cfg.max_gap_frames, f))
    )
    runner = make_executor(executor, n_workers)
    owned = runner is not executor
    parts: dict[int, dict[str, np.ndarray]] = {}
    seconds = []
    bar = progress_bar(total=n_tasks, desc="candidates", disable=not progress, unit="frame")
    try:
        for frame, edges, secs in runner.imap_unordered(_frame_edges, tasks()):
            parts[frame] = edges
            seconds.append(secs)
            bar.update()
    finally:
        bar.close()
        if owned:
            runner.close()

    names = ("source", "target", "distance", "pred_distance", "frame_gap")
    dtypes = (np.int64, np.int64, np.float64, np.float64, np.int64)
    edges = {
        name: (
            np.concatenate([parts[f][name] for f in sorted(parts)])
            if parts else np.zeros(0, dtype)
        )
        for name, dtype in zip(names, dtypes)
    }
    attrs = dict(spots.attrs)
    attrs["roi_um"] = _roi(spots, cfg.field_of_view_um)
    attrs["candidates"] = cfg.model_dump(mode="json")
    nodes = {name: np.asarray(col) for name, col in spots.nodes.items()}
    graph = TrackGraph(nodes, edges, attrs=attrs, validate=False)
    graph.attrs["blockwise_candidates"] = {
        "tasks": n_tasks,
        "executor": runner.name,
        "task_seconds_max": max(seconds, default=0.0),
        "seconds": time.perf_counter() - start,
    }
    logger.info(
        "block-wise candidates: %d nodes, %d edges in %d frame tasks, %.2f s",
        graph.num_nodes, graph.num_edges, n_tasks, time.perf_counter() - start,
    )
    if out is not None:
        from celltrack.io.geff_io import write_geff

        write_geff(graph, out, zarr_format=zarr_format, overwrite=overwrite)
    return graph


def candidate_graph_blockwise(
    probabilities: Any,
    voxel_size: Sequence[float],
    spot_cfg: SpotConfig | None = None,
    candidate_cfg: CandidateConfig | None = None,
    *,
    block_shape: Sequence[int],
    flow: Any = None,
    out: str | Path | None = None,
    overwrite: bool = False,
    executor: Any = "serial",
    n_workers: int | None = None,
    store: str | Path | None = None,
    frames: int | Iterable[int] | None = None,
    progress: bool = False,
) -> TrackGraph:
    """Spots, predicted parents and candidate edges of a stored prediction, as GEFF.

    Runs :func:`celltrack.scale.spots.extract_spots_blockwise`, then (with ``flow``)
    :func:`celltrack.scale.parents.displace_from_store`, then
    :func:`build_candidates_blockwise`, and writes the result to ``out`` atomically.
    Neither the probabilities nor the flow are ever loaded whole.

    Parameters
    ----------
    probabilities : array_like or str or Path
        Detection probabilities (T, 3, Z, Y, X) (or a (T, Z, Y, X) centre map).
    voxel_size : sequence of 3 float
        Voxel size (z, y, x) in µm.
    spot_cfg : SpotConfig, optional
        Spot settings.
    candidate_cfg : CandidateConfig, optional
        Candidate settings; a missing ``field_of_view_um`` becomes the movie's extent
        ``((0, (Z−1)·vz), (0, (Y−1)·vy), (0, (X−1)·vx))`` µm, as the Project does.
    block_shape : sequence of 3 int
        Core block (z, y, x) in voxels for spot extraction.
    flow : array_like, optional
        Backward flow (T, 3, Z, Y, X) in µm; adds ``parent_z/y/x`` to the spots.
    out : str or Path, optional
        GEFF (zarr) folder to write.
    overwrite : bool
        Replace an existing ``out``.
    executor : str or distributed.Client or executor
        Where the block and frame tasks run (one executor for both stages).
    n_workers : int, optional
        Worker processes for ``"processes"``.
    store : str or Path, optional
        Resumable per-(frame, block) spot store.
    frames : int or iterable of int, optional
        Frames to process (default all).
    progress : bool
        Progress bars.

    Returns
    -------
    TrackGraph
        The candidate graph (spots as nodes, their block-wise provenance in attrs).
    """
    from celltrack.scale.spots import _open_source, extract_spots_blockwise
    from celltrack.solve.blockwise.executors import make_executor

    cand = CandidateConfig() if candidate_cfg is None else candidate_cfg
    if not isinstance(cand, CandidateConfig):
        raise InvalidInputError(
            f"candidate_cfg must be a CandidateConfig, got {type(cand).__name__}"
        )
    if out is not None and not overwrite:
        from celltrack.io.atomic import refuse_existing

        refuse_existing(Path(out), overwrite)
    source = _open_source(probabilities)
    runner = make_executor(executor, n_workers)
    try:
        spots = extract_spots_blockwise(
            source, voxel_size, spot_cfg, block_shape=block_shape, executor=runner,
            store=store, frames=frames, progress=progress,
        )
        if flow is not None:
            from celltrack.scale.parents import displace_from_store

            spots = displace_from_store(spots, flow, voxel_size, progress=progress)
        if cand.field_of_view_um is None:
            fov = tuple(tuple(pair) for pair in spots.attrs["field_of_view_um"])
            cand = cand.model_copy(update={"field_of_view_um": fov})
        return build_candidates_blockwise(
            spots, cand, executor=runner, out=out, overwrite=overwrite, progress=progress,
        )
    finally:
        if runner is not executor:
            runner.close()
