"""The function a worker runs on one block: rebuild the linker, solve, report owned decisions.

A worker receives only its block's sub-graph (column arrays of the nodes and edges in the
block's read ROI, with ``pin`` and ``appear_free`` columns already set by the driver) and
the linker as ``(class, config)``; it never sees the whole candidate graph, so its memory
is bounded by the block size.
"""

from __future__ import annotations

import logging
import resource
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from celltrack.graph import TrackGraph
from celltrack.solve.base import LinkResult
from celltrack.solve.blockwise.store import BlockResult

__all__ = ["BlockTask", "solve_block"]

log = logging.getLogger(__name__)


@dataclass
class BlockTask:
    """Everything a worker needs for one block (picklable, holds only the block's rows).

    Attributes
    ----------
    block : int
        Linear block id.
    colour : int
        The block's colour (schedule level).
    linker : tuple
        ``(linker_class, linker_config)``; the worker builds ``linker_class(linker_config)``.
    nodes, edges : dict of str to ndarray
        Node and edge columns of the block's sub-graph (read ROI), including ``pin``
        (int8, 1/0/-1) and ``appear_free`` (bool).
    attrs : dict
        Graph attributes (``roi_um`` is the *global* ROI, so field-of-view rules keep
        using the true field of view).
    node_rows, edge_rows : ndarray of int64
        Global rows of the sub-graph's nodes / edges.
    node_owned, edge_owned : ndarray of bool
        Which sub-graph nodes / edges the block owns (write ROI; edges by their target).
    user_node_pin, user_edge_pin : ndarray of int8 or None
        The pins without the neighbours' decisions, used for one retry when the pinned
        problem has no solution.
    """

    block: int
    colour: int
    linker: tuple[type, Any]
    nodes: dict[str, np.ndarray]
    edges: dict[str, np.ndarray]
    attrs: dict[str, Any]
    node_rows: np.ndarray
    edge_rows: np.ndarray
    node_owned: np.ndarray
    edge_owned: np.ndarray
    user_node_pin: np.ndarray | None = None
    user_edge_pin: np.ndarray | None = None


def _peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def selection_masks(graph: TrackGraph, result: LinkResult) -> tuple[np.ndarray, np.ndarray]:
    """Which nodes (N,) and edges (E,) of ``graph`` the linker's result graph selected."""
    chosen = result.graph
    node_sel = graph.has_nodes(chosen.ids) if chosen.num_nodes else np.zeros(0, bool)
    nodes = np.zeros(graph.num_nodes, bool)
    if chosen.num_nodes:
        nodes[graph.index_of(chosen.ids[node_sel])] = True
    edges = np.zeros(graph.num_edges, bool)
    if chosen.num_edges and graph.num_edges:
        src_ok = graph.has_nodes(chosen.edges["source"]) & graph.has_nodes(chosen.edges["target"])
        n = max(graph.num_nodes, 1)
        src, tgt = graph.edge_index()
        key = src.astype(np.int64) * n + tgt
        csrc = graph.index_of(chosen.edges["source"][src_ok])
        ctgt = graph.index_of(chosen.edges["target"][src_ok])
        edges = np.isin(key, csrc.astype(np.int64) * n + ctgt)
    # a selected edge implies its endpoints are selected
    if edges.any():
        src, tgt = graph.edge_index()
        nodes[src[edges]] = True
        nodes[tgt[edges]] = True
    return nodes, edges


def solve_block(task: BlockTask) -> BlockResult:
    """Solve one block and return the decisions for the nodes and edges it owns.

    If the linker finds no solution with the neighbours' decisions pinned (which only
    happens when they are contradictory, e.g. with a too small context), the block is
    solved once more with only the user's own pins; ``info["fallback"]`` records it.
    """
    start = time.perf_counter()
    linker_cls, linker_config = task.linker
    linker = linker_cls(linker_config)
    graph = TrackGraph(task.nodes, task.edges, attrs=task.attrs, validate=False)
    result = linker.link(graph)
    fallback = False
    if not result.ok and task.user_node_pin is not None:
        log.warning(
            "block %d: no solution with the neighbours' decisions pinned (%s); retrying with "
            "only the user's pins",
            task.block,
            result.status.value,
        )
        graph.set_node_column("pin", task.user_node_pin)
        graph.set_edge_column("pin", task.user_edge_pin)
        result = linker.link(graph)
        fallback = True
    if result.ok:
        nodes, edges = selection_masks(graph, result)
    else:
        nodes = np.zeros(graph.num_nodes, bool)
        edges = np.zeros(graph.num_edges, bool)
    info = {
        "block": int(task.block),
        "colour": int(task.colour),
        "status": result.status.value,
        "objective": None if result.objective is None else float(result.objective),
        "num_nodes": graph.num_nodes,
        "num_edges": graph.num_edges,
        "owned_nodes": int(task.node_owned.sum()),
        "owned_edges": int(task.edge_owned.sum()),
        "pinned_nodes": int(np.count_nonzero(task.nodes["pin"] >= 0)),
        "pinned_edges": int(np.count_nonzero(task.edges["pin"] >= 0)),
        "fallback": fallback,
        "seconds": time.perf_counter() - start,
        "worker_peak_rss_mb": _peak_rss_mb(),
    }
    return BlockResult(
        block=int(task.block),
        node_rows=task.node_rows[task.node_owned],
        node_selected=nodes[task.node_owned],
        edge_rows=task.edge_rows[task.edge_owned],
        edge_selected=edges[task.edge_owned],
        info=info,
    )
