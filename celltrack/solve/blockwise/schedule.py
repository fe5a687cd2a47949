"""Block schedule and sub-problem extraction.

:class:`BlockPartition` assigns every node of the global candidate graph to the block
whose write ROI contains it, every edge to the block owning its target (child) node, and
cuts out each block's sub-problem: the nodes in its read ROI and the edges between them,
with the neighbours' finished decisions pinned and ``appear_free`` set near the read ROI's
block borders. :func:`colour_levels` orders blocks colour by colour.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from celltrack.errors import InvalidInputError
from celltrack.graph import TrackGraph
from celltrack.solve.blockwise.blocks import BlockGrid
from celltrack.solve.blockwise.worker import BlockTask

__all__ = ["BlockPartition", "colour_levels"]


def colour_levels(grid: BlockGrid, order: str = "colours") -> list[np.ndarray]:
    """Block ids per level, in solving order; blocks of one level never conflict.

    Parameters
    ----------
    grid : BlockGrid
        The block grid.
    order : {"colours", "backward"}
        ``"colours"``: daisy-style colouring of all four axes (few levels, most
        parallelism: 16 with context <= block size). ``"backward"``: time blocks one after
        the other from the last to the first, each coloured in space. Later blocks then
        see their first read frame with free appearances and earlier blocks see the later
        decisions pinned, which avoids the horizon effect at time borders (measurably
        closer to the global optimum) at the cost of ``grid.shape[0]`` times more levels.
    """
    index = grid.block_index(np.arange(grid.num_blocks))
    if order == "colours":
        keys = grid.colours()
    elif order == "backward":
        spatial = index.copy()
        spatial[:, 0] = 0
        keys = (grid.shape[0] - 1 - index[:, 0]) * grid.num_colours + grid.colour_of(spatial)
    else:
        raise InvalidInputError(f"order must be 'colours' or 'backward', got {order!r}")
    levels = np.unique(keys)
    ordering = np.argsort(keys, kind="stable")
    bounds = np.searchsorted(keys[ordering], np.r_[levels, levels[-1] + 1])
    return [ordering[bounds[i] : bounds[i + 1]] for i in range(levels.size)]


def _csr(keys: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(keys, kind="stable")
    starts = np.searchsorted(keys[order], np.arange(n + 1))
    return order, starts


class BlockPartition:
    """Owner blocks of all nodes and edges, and per-block sub-problem extraction.

    Parameters
    ----------
    graph : TrackGraph
        The global candidate graph.
    grid : BlockGrid
        The block grid.
    margin : ndarray, shape (4,)
        Width of the band inside a read ROI's block borders whose nodes get
        ``appear_free`` (frames for t, µm otherwise). Along t only the lower face counts
        (appearing is a forward-in-time event).

    Attributes
    ----------
    node_block : ndarray, shape (N,)
        Linear id of the block owning each node.
    edge_block : ndarray, shape (E,)
        Linear id of the block owning each edge (its target's block).
    """

    def __init__(self, graph: TrackGraph, grid: BlockGrid, margin: np.ndarray) -> None:
        self.graph = graph
        self.grid = grid
        self.margin = np.asarray(margin, np.float64)
        nodes = graph.nodes
        self.coords = np.stack(
            [nodes["t"].astype(np.float64), nodes["z"], nodes["y"], nodes["x"]], axis=1
        )
        self.node_block = grid.linear_id(grid.block_of(self.coords)).astype(np.int64)
        self.src, self.tgt = graph.edge_index()
        self.edge_block = self.node_block[self.tgt] if graph.num_edges else np.zeros(0, np.int64)
        self._node_order, self._node_starts = _csr(self.node_block, grid.num_blocks)
        self._edge_order, self._edge_starts = _csr(self.edge_block, grid.num_blocks)
        self._mark = np.zeros(graph.num_nodes, bool)
        reach = []
        for size, ctx in zip(grid.block_size, grid.context):
            r = 0
            if np.isfinite(size) and ctx > 0:
                r = math.ceil(ctx / size)
                while r * size < ctx:
                    r += 1
            reach.append(r)
        self.reach = np.asarray(reach, np.int64)

    # ------------------------------------------------------------------ geometry
    def _nearby_blocks(self, block: int) -> np.ndarray:
        idx = self.grid.block_index(block)
        lo = np.maximum(idx - self.reach, 0)
        hi = np.minimum(idx + self.reach, np.asarray(self.grid.shape) - 1)
        axes = [np.arange(a, b + 1) for a, b in zip(lo, hi)]
        mesh = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 4)
        return self.grid.linear_id(mesh)

    def _gather(self, blocks: np.ndarray, order: np.ndarray, starts: np.ndarray) -> np.ndarray:
        parts = [order[starts[b] : starts[b + 1]] for b in blocks.tolist()]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def owned_nodes(self, block: int) -> np.ndarray:
        """Global rows of the nodes a block owns."""
        return self._node_order[self._node_starts[block] : self._node_starts[block + 1]]

    def read_rows(self, block: int) -> tuple[np.ndarray, np.ndarray]:
        """Global node rows and edge rows of a block's read ROI, each sorted.

        Edges are those with both endpoints inside the read ROI.
        """
        nearby = self._nearby_blocks(block)
        cand = self._gather(nearby, self._node_order, self._node_starts)
        inside = self.grid.in_roi(self.coords[cand], self.grid.read_roi(block))
        rows = np.sort(cand[inside])
        ecand = self._gather(nearby, self._edge_order, self._edge_starts)
        self._mark[rows] = True
        keep = self._mark[self.src[ecand]] & self._mark[self.tgt[ecand]]
        self._mark[rows] = False
        return rows, np.sort(ecand[keep])

    def appear_free(self, block: int, rows: np.ndarray) -> np.ndarray:
        """Nodes (of ``rows``) near the block borders of the read ROI, shape (len(rows),).

        Near means within ``margin`` of a spatial face that cuts through data, or within
        ``margin[0]`` frames of the read ROI's first frame when earlier frames hold data.
        """
        borders = self.grid.inner_borders(block)
        coords = self.coords[rows]
        free = coords[:, 0] < borders[0, 0] + self.margin[0]
        for d in range(1, 4):
            free |= coords[:, d] < borders[d, 0] + self.margin[d]
            free |= coords[:, d] >= borders[d, 1] - self.margin[d]
        return free

    def disappear_free(self, block: int, rows: np.ndarray) -> np.ndarray:
        """Nodes (of ``rows``) whose track end is not a real end: within ``margin`` of a
        spatial block border, or in the last ``margin[0]`` frames of the read ROI when later
        frames hold data. Shape (len(rows),)."""
        borders = self.grid.inner_borders(block)
        coords = self.coords[rows]
        free = coords[:, 0] >= borders[0, 1] - self.margin[0]
        for d in range(1, 4):
            free |= coords[:, d] < borders[d, 0] + self.margin[d]
            free |= coords[:, d] >= borders[d, 1] - self.margin[d]
        return free

    def lost_edges(self) -> np.ndarray:
        """Edges that no block can decide: the source lies outside the read ROI of the
        target's block (context smaller than the edge length). Boolean mask (E,)."""
        if self.graph.num_edges == 0:
            return np.zeros(0, bool)
        grid = self.grid
        lost = np.zeros(self.graph.num_edges, bool)
        for d in range(4):  # one axis at a time keeps the temporaries at O(E) 1-D arrays
            size = grid.block_size[d]
            if not np.isfinite(size):
                continue
            ctx = grid.context[d]
            src = self.coords[self.src, d]
            idx = np.clip(
                np.floor((self.coords[self.tgt, d] - grid.origin[d]) / size), 0, grid.shape[d] - 1
            )
            lo = np.where(idx == 0, -np.inf, grid.origin[d] + idx * size) - ctx
            lost |= src < lo
            del lo
            hi = np.where(idx == grid.shape[d] - 1, np.inf, grid.origin[d] + (idx + 1) * size)
            lost |= src >= hi + ctx
        return lost

    # ------------------------------------------------------------------ tasks
    def task(
        self,
        block: int,
        colour: int,
        linker: tuple[type, Any],
        node_state: np.ndarray,
        edge_state: np.ndarray,
        user_node_pin: np.ndarray | None,
        user_edge_pin: np.ndarray | None,
        user_appear_free: np.ndarray | None,
    ) -> BlockTask:
        """The self-contained task of one block.

        Parameters
        ----------
        block, colour : int
            Block id and its colour.
        linker : tuple
            ``(linker_class, linker_config)``.
        node_state, edge_state : ndarray of int8, shapes (N,), (E,)
            Decisions of finished blocks: 1 selected, 0 not, -1 undecided.
        user_node_pin, user_edge_pin : ndarray of int8 or None
            The candidate graph's own ``pin`` columns.
        user_appear_free : ndarray of bool or None
            The candidate graph's own ``appear_free`` column.
        """
        rows, erows = self.read_rows(block)
        nodes = {name: col[rows] for name, col in self.graph.nodes.items()}
        edges = {name: col[erows] for name, col in self.graph.edges.items()}
        upin_n = np.full(rows.size, -1, np.int8) if user_node_pin is None else user_node_pin[rows]
        upin_e = np.full(erows.size, -1, np.int8) if user_edge_pin is None else user_edge_pin[erows]
        nstate, estate = node_state[rows], edge_state[erows]
        nodes["pin"] = np.where(upin_n >= 0, upin_n, nstate).astype(np.int8)
        edges["pin"] = np.where(upin_e >= 0, upin_e, estate).astype(np.int8)
        free = self.appear_free(block, rows)
        if user_appear_free is not None:
            free |= user_appear_free[rows]
        nodes["appear_free"] = free
        # not in the cross-team contract yet: a linker with a track-end cost should waive it
        # where the read ROI, not the data, ends
        ends = self.disappear_free(block, rows)
        if "disappear_free" in nodes:
            ends |= np.asarray(nodes["disappear_free"], bool)
        nodes["disappear_free"] = ends
        neighbour_pins = bool(np.any(nstate >= 0) or np.any(estate >= 0))
        return BlockTask(
            block=int(block),
            colour=int(colour),
            linker=linker,
            nodes=nodes,
            edges=edges,
            attrs=dict(self.graph.attrs),
            node_rows=rows,
            edge_rows=erows,
            node_owned=self.node_block[rows] == block,
            edge_owned=self.edge_block[erows] == block,
            user_node_pin=upin_n if neighbour_pins else None,
            user_edge_pin=upin_e if neighbour_pins else None,
        )
