"""Block-wise solving of a candidate graph: tiles, conflict-free schedule, pinned context.

:func:`solve_blockwise` cuts the candidate graph's (t, z, y, x) region into blocks, solves
every block's sub-problem (its write ROI grown by a context) with any linker, and stitches
the per-block decisions into one lineage forest — the scheme of Linajea's block-wise
solver, with these rules:

* a node belongs to the block whose write ROI contains it, an edge to the block owning its
  target (child) node; only the owner's decisions are kept;
* blocks whose read ROI overlaps another's write ROI never run at the same time: blocks are
  coloured (daisy-style level stride) and solved colour by colour, the blocks of one colour
  in parallel;
* decisions of finished blocks inside a block's read ROI are pinned (``pin`` columns);
  appearing costs nothing near the read ROI's block borders (``appear_free``), while the
  sub-graph keeps the *global* ``roi_um`` so the field-of-view rule still sees the true
  field of view;
* each finished block is written to a result store (atomic ``.npz`` per block); a rerun
  with the same store loads finished blocks instead of solving them again.

The stitched solution is *sequentially consistent*, not globally optimal: decisions of
earlier colours are never revised. The status is therefore ``FEASIBLE`` (``HEURISTIC`` if
the per-block linker is a heuristic), never ``OPTIMAL``, even when every block was solved
to optimality.
"""

from __future__ import annotations

import logging
import pickle
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from celltrack.config import Config
from celltrack.errors import ConfigError, InvalidInputError
from celltrack.graph import TrackGraph
from celltrack.solve.base import Linker, LinkResult, SolveStatus, make_linker, provenance
from celltrack.solve.blockwise.blocks import BlockGrid, check_sizes, roi_of
from celltrack.solve.blockwise.executors import make_executor
from celltrack.solve.blockwise.schedule import BlockPartition, colour_levels
from celltrack.solve.blockwise.store import BlockResult, BlockStore, fingerprint
from celltrack.solve.blockwise.worker import solve_block
from celltrack.solve.validate import pins

__all__ = ["BlockwiseConfig", "solve_blockwise"]

log = logging.getLogger(__name__)

_OK = {SolveStatus.OPTIMAL.value, SolveStatus.FEASIBLE.value, SolveStatus.HEURISTIC.value}


class BlockwiseConfig(Config):
    """How to cut a candidate graph into blocks and where to solve them."""

    block_size: tuple[int | None, float | None, float | None, float | None] = Field(
        (5, 500.0, 500.0, 500.0),
        description="Write-ROI size per axis: (t frames, z µm, y µm, x µm); None = do not tile "
        "along that axis (e.g. z for 2D+t data). Linajea's published value is (5, 500, 500, 500).",
    )
    context: tuple[int | None, float | None, float | None, float | None] = Field(
        (2, 100.0, 100.0, 100.0),
        description="Read-ROI growth on each side of a block: (t frames, z µm, y µm, x µm); "
        "None = 0 (for axes that are not tiled). "
        "Must be at least the longest candidate edge (frames and µm) so every edge is seen by "
        "its owner block; twice that rules out any out-degree conflict between parallel blocks.",
    )
    appear_free_margin_um: float | None = Field(
        None,
        ge=0,
        description="Width (µm) of the band inside a read ROI's spatial block borders in which "
        "appearing costs nothing; None = the longest candidate edge's spatial length.",
    )
    appear_free_frames: int | None = Field(
        None,
        ge=0,
        description="Number of frames at the start of a read ROI (when earlier frames exist) in "
        "which appearing costs nothing; None = the largest candidate frame gap (>= 1).",
    )
    order: Literal["colours", "backward"] = Field(
        "colours",
        description="Solving order: 'colours' = daisy-style colouring of (t, z, y, x) (16 levels "
        "with context <= block size, most parallel); 'backward' = time blocks from last to first, "
        "coloured in space (closer to the global optimum at time borders, less parallel).",
    )
    executor: str = Field(
        "processes",
        description="Where blocks run: 'serial', 'processes' (local worker processes) or a dask "
        "scheduler address such as 'tcp://host:8786'. A distributed.Client can be passed to "
        "solve_blockwise(executor=...) directly.",
    )
    n_workers: int | None = Field(
        None, ge=1, description="Worker processes for executor='processes' (None = CPU count)."
    )
    start_method: Literal["fork", "spawn", "forkserver"] | None = Field(
        None, description="Multiprocessing start method for 'processes' (None = platform default)."
    )
    store: str | None = Field(
        None,
        description="Folder for per-block results (atomic .npz per block) so an interrupted run "
        "resumes; None = keep results in memory only.",
    )
    resume: bool = Field(
        True,
        description="Load blocks already in `store` instead of solving them "
        "(False = start afresh).",
    )
    compute_objective: bool = Field(
        True,
        description="Evaluate the stitched solution's global objective with the linker's "
        "objective_of (when it has one).",
    )
    progress: bool = Field(True, description="Show a progress bar over blocks (tqdm).")

    @model_validator(mode="after")
    def _check(self) -> BlockwiseConfig:
        for name, value in zip(("t", "z", "y", "x"), self.block_size):
            if value is not None and not value > 0:
                raise ValueError(f"block_size along {name} must be > 0 or None, got {value}")
        if any(c is not None and c < 0 for c in self.context):
            raise ValueError(f"context must be >= 0 on every axis, got {list(self.context)}")
        if self.block_size[0] is not None and (self.context[0] or 0) < 1:
            raise ValueError(
                "context along t must be >= 1 frame when tiling in time, or no edge between two "
                f"time blocks can be decided; got {self.context[0]}"
            )
        return self


def _resolve_linker(linker: Any) -> Linker:
    if isinstance(linker, (Config, str, dict)):
        return make_linker(linker)
    if not isinstance(linker, Linker):
        raise InvalidInputError(
            "linker must be a celltrack.solve.Linker (a subclass implementing _link), a linker "
            f"config, a kind name or a dict with 'kind'; got {type(linker).__name__}"
        )
    return linker


def _resolve_config(
    config: BlockwiseConfig | dict[str, Any] | None,
    executor: Any | None,
    store: str | Path | None,
    progress: bool | None,
) -> BlockwiseConfig:
    """The block-wise config with the keyword overrides applied (a Client stays aside)."""
    if config is None:
        config = BlockwiseConfig()
    elif isinstance(config, dict):
        from celltrack.config import config_from_dict

        config = config_from_dict(config, BlockwiseConfig)
    elif not isinstance(config, BlockwiseConfig):
        raise ConfigError(
            f"config must be a BlockwiseConfig (or a dict of its fields), got "
            f"{type(config).__name__}; block sizes go in BlockwiseConfig(block_size=..., "
            "context=...)"
        )
    updates: dict[str, Any] = {}
    if isinstance(executor, str):
        updates["executor"] = executor
    if store is not None:
        updates["store"] = str(store)
    if progress is not None:
        updates["progress"] = bool(progress)
    if not updates:
        return config
    from celltrack.config import config_from_dict

    return config_from_dict({**config.model_dump(), **updates}, type(config))


def _edge_extent(graph: TrackGraph, src: np.ndarray, tgt: np.ndarray) -> tuple[float, int]:
    """Longest spatial edge length (µm) and largest frame gap of the candidate edges."""
    if graph.num_edges == 0:
        return 0.0, 1
    squared = np.zeros(graph.num_edges)
    for axis in ("z", "y", "x"):  # per axis: O(E) 1-D temporaries only
        column = graph.nodes[axis]
        squared += (column[src] - column[tgt]) ** 2
    length = float(np.sqrt(squared.max()))
    gap = int((graph.t[tgt] - graph.t[src]).max())
    return length, max(gap, 1)


class _Stitcher:
    """Global decision arrays; commits block results with forest guards."""

    def __init__(self, partition: BlockPartition) -> None:
        n, m = partition.graph.num_nodes, partition.graph.num_edges
        self.src, self.tgt = partition.src, partition.tgt
        self.node_state = np.full(n, -1, np.int8)
        self.edge_state = np.full(m, -1, np.int8)
        self.outdeg = np.zeros(n, np.int64)
        self.indeg = np.zeros(n, np.int64)
        self.repairs = 0

    def commit(self, result: BlockResult) -> None:
        state = result.node_selected.astype(np.int8)
        # a node with children already committed elsewhere must stay selected
        forced = (state == 0) & (self.outdeg[result.node_rows] > 0)
        state[forced] = 1
        self.repairs += int(forced.sum())
        self.node_state[result.node_rows] = state
        rows = result.edge_rows[result.edge_selected]
        src, tgt = self.src[rows], self.tgt[rows]
        ok = (self.node_state[src] != 0) & (self.indeg[tgt] == 0)
        rows, src = rows[ok], src[ok]
        order = np.argsort(src, kind="stable")
        sorted_src = src[order]
        rank = np.arange(sorted_src.size) - np.searchsorted(sorted_src, sorted_src, side="left")
        keep = rows[order][rank < 2 - self.outdeg[sorted_src]]
        self.repairs += int(result.edge_selected.sum()) - keep.size
        self.edge_state[result.edge_rows] = 0
        self.edge_state[keep] = 1
        self.outdeg += np.bincount(self.src[keep], minlength=self.outdeg.size)
        self.indeg += np.bincount(self.tgt[keep], minlength=self.indeg.size)

    def masks(self) -> tuple[np.ndarray, np.ndarray]:
        edges = self.edge_state == 1
        nodes = self.node_state == 1
        nodes[self.src[edges]] = True
        nodes[self.tgt[edges]] = True
        return nodes, edges


def solve_blockwise(
    candidates: TrackGraph,
    linker: Any,
    config: BlockwiseConfig | dict[str, Any] | None = None,
    *,
    executor: Any | None = None,
    store: str | Path | None = None,
    progress: bool | None = None,
) -> LinkResult:
    """Solve a candidate graph block by block and stitch the blocks into one forest.

    Parameters
    ----------
    candidates : TrackGraph
        The candidate graph (nodes in µm, edges parent → child with feature columns). Its
        ``attrs["roi_um"]`` (if present) defines the tiled region; otherwise the nodes'
        bounding box. Optional ``pin`` / ``appear_free`` columns are honoured.
    linker : Linker, Config, str or dict
        The per-block linker (e.g. ``make_linker("ilp")``). It is sent to the workers as
        ``(class, config)`` and rebuilt there, so its class must be importable.
    config : BlockwiseConfig or dict, optional
        Block size and context (t frames, z/y/x µm), solving order, executor, worker
        count, result store, ... (defaults: :class:`BlockwiseConfig`).
    executor : str or distributed.Client, optional
        ``"serial"``, ``"processes"``, a dask scheduler address or a ``distributed.Client``
        (which is used and left open). Overrides ``config.executor``.
    store : str or Path, optional
        Result folder for resuming; overrides ``config.store``.
    progress : bool, optional
        Progress bar over blocks; overrides ``config.progress`` (None = the config's).

    Returns
    -------
    LinkResult
        ``graph``: the stitched forest (candidate columns kept; ``validate(forest=True)``
        holds). ``status``: ``FEASIBLE`` (``HEURISTIC`` for heuristic linkers; stitching is
        never proven optimal). ``objective``: the global objective of the stitched
        selection from the linker's ``objective_of`` (None for linkers without one).
        ``stats``: grid, colours, per-block records (status, sizes, seconds, worker peak
        RSS), repairs, lost edges. ``timings``: ``partition``, ``solve``, ``merge``,
        ``objective``, ``total`` seconds. ``parameters``: the block-wise config, the
        linker's config (``linker``) and the celltrack version.

    Raises
    ------
    InvalidInputError
        For a non-graph input, an unusable linker or executor.
    ConfigError
        For a ``config`` that is not a BlockwiseConfig (or dict of its fields) or invalid
        sizes.
    CheckpointError
        If ``store`` holds results of another problem (and ``resume`` is True).

    Examples
    --------
    >>> cfg = BlockwiseConfig(block_size=(5, 200, 200, 200), context=(2, 40, 40, 40))
    >>> result = solve_blockwise(candidates, make_linker("ilp"), cfg)  # doctest: +SKIP
    """
    start = time.perf_counter()
    if not isinstance(candidates, TrackGraph):
        raise InvalidInputError(
            f"candidates must be a TrackGraph, got {type(candidates).__name__}"
        )
    config = _resolve_config(config, executor, store, progress)
    client = executor if executor is not None and not isinstance(executor, str) else None
    linker = _resolve_linker(linker)
    linker_spec = (type(linker), linker.config)
    size, ctx = check_sizes(config.block_size, config.context)

    graph = candidates
    roi = roi_of(graph.t, graph.positions, graph.attrs.get("roi_um"))
    grid = BlockGrid(roi, size, ctx)
    src, tgt = graph.edge_index()
    length, gap = _edge_extent(graph, src, tgt)
    margin_um = length if config.appear_free_margin_um is None else config.appear_free_margin_um
    margin_t = gap if config.appear_free_frames is None else config.appear_free_frames
    margin = np.array([margin_t, margin_um, margin_um, margin_um], np.float64)
    partition = BlockPartition(graph, grid, margin)
    lost = partition.lost_edges()
    if lost.any():
        log.warning(
            "%d of %d candidate edges reach further than the context %s (longest edge %.1f µm, "
            "frame gap %d): no block can select them; increase the context",
            int(lost.sum()), graph.num_edges, ctx.tolist(), length, gap,
        )
    user_node_pin = pins(graph, "node") if "pin" in graph.node_columns else None
    user_edge_pin = pins(graph, "edge") if "pin" in graph.edge_columns else None
    user_free = None
    if "appear_free" in graph.node_columns:
        user_free = np.asarray(graph.nodes["appear_free"], bool)
    owned = np.bincount(partition.node_block, minlength=grid.num_blocks)
    t_partition = time.perf_counter() - start

    block_store = None
    if config.store is not None:
        key = fingerprint(
            [col for col in (*graph.nodes.values(), *graph.edges.values())],
            {
                "grid": grid.describe(),
                "margin": margin.tolist(),
                "order": config.order,
                "node_columns": graph.node_columns,
                "edge_columns": graph.edge_columns,
                "linker": f"{type(linker).__module__}.{type(linker).__qualname__}",
                "linker_config": linker.config.model_dump(mode="json"),
            },
        )
        block_store = BlockStore(config.store, key, resume=config.resume)
    finished = set(block_store.finished()) if block_store is not None else set()

    spec = client if client is not None else config.executor
    runner = make_executor(spec, config.n_workers, start_method=config.start_method)
    if runner.name != "serial":
        try:
            pickle.dumps(linker_spec)
        except Exception as exc:
            raise InvalidInputError(
                f"the linker {type(linker).__name__} cannot be sent to worker processes ({exc}); "
                "define its class at module level or use executor='serial'"
            ) from None

    from tqdm.auto import tqdm

    levels = colour_levels(grid, config.order)
    active = int(np.count_nonzero(owned))
    stitcher = _Stitcher(partition)
    records: list[dict[str, Any]] = []
    solved = resumed = 0
    t_solve = time.perf_counter()
    bar = tqdm(total=active, desc="blocks", unit="block", disable=not config.progress)
    try:
        for colour, level in enumerate(levels):
            level = level[owned[level] > 0]
            results: dict[int, BlockResult] = {}
            for block in level.tolist():
                if block in finished:
                    res = block_store.load(block)
                    res.info["resumed"] = True
                    results[block] = res
                    resumed += 1
                    bar.update(1)
            todo = [b for b in level.tolist() if b not in results]
            tasks = (
                partition.task(
                    b, colour, linker_spec, stitcher.node_state, stitcher.edge_state,
                    user_node_pin, user_edge_pin, user_free,
                )
                for b in todo
            )
            for res in runner.imap_unordered(solve_block, tasks):
                res.info["resumed"] = False
                if block_store is not None:
                    block_store.save(res)
                results[res.block] = res
                solved += 1
                bar.update(1)
            for block in sorted(results):
                stitcher.commit(results[block])
                records.append(results[block].info)
    finally:
        bar.close()
        if client is None:  # executors we created (a passed Client stays open)
            runner.close()
    t_solve = time.perf_counter() - t_solve

    t_merge = time.perf_counter()
    node_mask, edge_mask = stitcher.masks()
    forest = graph.subgraph(nodes=node_mask, edges=edge_mask)
    forest.validate(forest=True)
    t_merge = time.perf_counter() - t_merge

    t_obj = time.perf_counter()
    objective = None
    if config.compute_objective and linker.has_objective and graph.num_nodes:
        objective = float(linker.objective_of(graph, edge_mask, node_mask))
    t_obj = time.perf_counter() - t_obj

    statuses = [r["status"] for r in records]
    failed = [r["block"] for r in records if r["status"] not in _OK]
    if failed:
        log.warning(
            "%d block(s) found no solution (%s); their nodes are left unselected",
            len(failed), sorted({r["status"] for r in records if r["status"] not in _OK}),
        )
    status = (
        SolveStatus.HEURISTIC if SolveStatus.HEURISTIC.value in statuses else SolveStatus.FEASIBLE
    )
    rss = [r.get("worker_peak_rss_mb", 0.0) for r in records]
    stats = {
        "grid_shape": list(grid.shape),
        "num_blocks": grid.num_blocks,
        "active_blocks": active,
        "num_colours": grid.num_colours,
        "num_levels": len(levels),
        "solved_blocks": solved,
        "resumed_blocks": resumed,
        "failed_blocks": failed,
        "fallback_blocks": [r["block"] for r in records if r.get("fallback")],
        "repairs": stitcher.repairs,
        "lost_edges": int(lost.sum()),
        "appear_free_margin": margin.tolist(),
        "max_block_nodes": max((r["num_nodes"] for r in records), default=0),
        "max_block_edges": max((r["num_edges"] for r in records), default=0),
        "max_worker_peak_rss_mb": max(rss, default=0.0),
        "executor": runner.name,
        "blocks": records,
        "selected_nodes": forest.num_nodes,
        "selected_edges": forest.num_edges,
    }
    parameters = provenance(config)
    parameters["linker"] = linker.config.model_dump(mode="json")
    timings = {
        "partition": t_partition,
        "solve": t_solve,
        "merge": t_merge,
        "objective": t_obj,
        "total": time.perf_counter() - start,
    }
    return LinkResult(
        graph=forest,
        status=status,
        objective=objective,
        bound=None,
        timings=timings,
        parameters=parameters,
        stats=stats,
    )

