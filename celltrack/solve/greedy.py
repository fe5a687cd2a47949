"""Greedy linker: accept candidate edges by increasing cost.

Edges of a candidate graph are visited from cheapest to most expensive (one argsort,
ties broken by edge row); the cost is the edge column ``cost_feature`` plus
``frame_gap_cost · (frame_gap − 1)``. An edge is accepted when its child has no parent yet and its
parent has fewer than ``max_children`` children; a *second* child is only accepted when
``second_child`` allows it:

- ``"always"``: any second child (Linajea's greedy baseline).
- ``"never"``: no divisions (at most one child).
- ``"cost_threshold"``: both children's edge costs are ≤ ``division_max_cost``.
- ``"displacement"``: ELEPHANT's rule — one of the two children is displaced by more
  than ``min_division_displacement_um`` from its predicted parent position (the
  distance to the parent when the graph carries no prediction), or both children sit
  within that distance of the parent (a division "on the spot").

The result is exactly that of the sequential greedy loop, but computed in vectorised
rounds: in each round, every undecided edge that is the cheapest undecided edge of both
its child and its parent is decided at once (the sequential loop would decide it the
same way, since every cheaper edge touching its endpoints is already decided). The
number of rounds is the length of the longest chain of competing edges (tens on real
data), each round costs O(E) numpy work, so 10⁶ edges take a few seconds.

Pins: edges with ``pin == 1`` are accepted first (a conflict among them gives status
INFEASIBLE), edges with ``pin == 0`` and nodes with ``pin == 0`` are excluded (such
nodes are dropped from the result). Every other node is kept: the greedy linker does not
select detections.
"""

from __future__ import annotations

import logging
import time
import warnings
from typing import Any, Literal

import numpy as np
from pydantic import Field

from celltrack.config import Config
from celltrack.errors import InvalidInputError
from celltrack.graph import TrackGraph
from celltrack.solve.base import Infeasible, Linker, LinkResult, SolveStatus, register_linker
from celltrack.solve.validate import bool_mask, edge_feature, forest_violation, pins

__all__ = ["GreedyConfig", "GreedyLinker", "greedy_select"]

logger = logging.getLogger(__name__)

SecondChildRule = Literal["always", "never", "cost_threshold", "displacement"]


class GreedyConfig(Config):
    """Greedy nearest-neighbour linking on a candidate graph."""

    kind: Literal["greedy"] = Field("greedy", description="linker name (discriminator)")
    cost_feature: str = Field(
        "pred_distance",
        description="edge column used as cost, smaller is better (µm for distance features)",
    )
    frame_gap_cost: float = Field(
        0.0,
        ge=0,
        description="added to the cost per skipped frame, times (frame_gap − 1) (cost units / "
        "frame); needs the edge column 'frame_gap' when nonzero",
    )
    max_cost: float | None = Field(
        None,
        ge=0,
        description="edges costlier than this are never accepted (cost units); None = no limit",
    )
    max_children: int = Field(2, ge=1, le=2, description="most children per parent (count, 1 or 2)")
    second_child: SecondChildRule = Field(
        "always",
        description="when a second child is accepted: always, never, cost_threshold or "
        "displacement",
    )
    division_max_cost: float = Field(
        10.0,
        ge=0,
        description="for second_child='cost_threshold': both children's costs must be "
        "<= this (cost units)",
    )
    min_division_displacement_um: float = Field(
        1.0,
        ge=0,
        description="for second_child='displacement': displacement that marks a real division (µm)",
    )


def _first_per_group(keys: np.ndarray, n: int) -> np.ndarray:
    """Mask of the first occurrence of every value of ``keys`` (values in [0, n))."""
    first = np.full(n, keys.size, np.int64)
    np.minimum.at(first, keys, np.arange(keys.size))
    return first[keys] == np.arange(keys.size)


def greedy_select(
    src: np.ndarray,
    tgt: np.ndarray,
    cost: np.ndarray,
    n_nodes: int,
    *,
    max_children: int = 2,
    second_ok=None,
    forced: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """Vectorised sequential-greedy edge selection.

    Parameters
    ----------
    src, tgt : ndarray of int, shape (E,)
        Parent and child node rows of every edge.
    cost : ndarray of float, shape (E,)
        Edge costs; edges are visited by increasing cost, ties by row.
    n_nodes : int
        Number of node rows.
    max_children : int
        1 or 2.
    second_ok : callable, optional
        ``second_ok(first_edges, second_edges) -> bool mask``: may the edge rows
        ``second_edges`` be accepted as second child next to the already accepted
        ``first_edges`` (same parents)? None = always.
    forced : ndarray of bool, shape (E,), optional
        Edges accepted before anything else (caller checks they are consistent).

    Returns
    -------
    selected : ndarray of bool, shape (E,)
    rounds : int
        Number of vectorised rounds used.
    """
    e = src.size
    selected = np.zeros(e, bool)
    has_parent = np.zeros(n_nodes, bool)
    n_children = np.zeros(n_nodes, np.int64)
    first_edge = np.full(n_nodes, -1, np.int64)
    if forced is not None and forced.any():
        rows = np.flatnonzero(forced)
        selected[rows] = True
        has_parent[tgt[rows]] = True
        np.add.at(n_children, src[rows], 1)
        order_f = rows[np.argsort(cost[rows], kind="stable")]
        first_edge[src[order_f[::-1]]] = order_f[::-1]  # any forced edge serves as the first
    order = np.argsort(cost, kind="stable")
    rem = order[~selected[order]]
    rounds = 0

    def prune(rem: np.ndarray, touched: np.ndarray | None) -> np.ndarray:
        keep = ~has_parent[tgt[rem]] & (n_children[src[rem]] < max_children)
        if second_ok is not None and max_children == 2:
            one = keep & (n_children[src[rem]] == 1)
            if touched is not None:
                one &= touched[src[rem]]
            idx = np.flatnonzero(one)
            if idx.size:
                ok = second_ok(first_edge[src[rem[idx]]], rem[idx])
                keep[idx[~ok]] = False
        return rem[keep]

    rem = prune(rem, None)
    while rem.size:
        rounds += 1
        s, t = src[rem], tgt[rem]
        ready = _first_per_group(t, n_nodes) & _first_per_group(s, n_nodes)
        acc = rem[ready]  # pruned edges are always acceptable
        selected[acc] = True
        has_parent[tgt[acc]] = True
        new_first = n_children[src[acc]] == 0
        first_edge[src[acc[new_first]]] = acc[new_first]
        n_children[src[acc]] += 1
        touched = np.zeros(n_nodes, bool)
        touched[src[acc]] = True
        rem = prune(rem[~ready], touched)
    return selected, rounds


class GreedyLinker(Linker):
    """Greedy linker (see module docstring); status HEURISTIC, objective = Σ accepted costs.

    Parameters
    ----------
    config : GreedyConfig, optional
        Defaults if omitted.

    Examples
    --------
    >>> from celltrack.graph.candidates import build_candidates
    >>> g = TrackGraph.from_positions([0, 1], [[0, 0, 0], [0, 0, 2]])
    >>> GreedyLinker().link(build_candidates(g)).graph.num_edges
    1
    """

    config_class = GreedyConfig
    config: GreedyConfig

    def costs(self, candidates: TrackGraph) -> np.ndarray:
        """Edge costs (cost units), shape (E,): ``cost_feature`` + frame-gap cost, ≥ 0.

        Raises
        ------
        InvalidInputError
            If a needed column is missing, or holds NaN/inf or negative values.
        """
        cfg = self.config
        setting = "GreedyConfig.cost_feature"
        cost = edge_feature(candidates.edges, cfg.cost_feature, setting=setting, nonnegative=True)
        if cfg.frame_gap_cost:
            gap = edge_feature(
                candidates.edges, "frame_gap", setting="GreedyConfig.frame_gap_cost=0",
                nonnegative=True,
            )
            cost = cost + cfg.frame_gap_cost * (gap - 1.0)
        return cost

    def _second_ok(
        self, candidates: TrackGraph, cost: np.ndarray, src: np.ndarray, tgt: np.ndarray
    ):
        cfg = self.config
        if cfg.max_children == 1 or cfg.second_child == "always":
            return None
        if cfg.second_child == "never":
            return lambda first, second: np.zeros(second.size, bool)
        if cfg.second_child == "cost_threshold":
            limit = cfg.division_max_cost
            return lambda first, second: (cost[first] <= limit) & (cost[second] <= limit)
        from celltrack.graph.candidates import PARENT_COLUMNS, predicted_parent

        pos = candidates.positions
        disp = np.linalg.norm(pos - predicted_parent(candidates), axis=1)
        has_pred = np.zeros(candidates.num_nodes, bool)
        if all(c in candidates.nodes for c in PARENT_COLUMNS):
            pz = np.stack([np.asarray(candidates.nodes[c], float) for c in PARENT_COLUMNS], 1)
            has_pred = np.all(np.isfinite(pz), axis=1)
        dist = np.linalg.norm(pos[src] - pos[tgt], axis=1)
        edge_disp = np.where(has_pred[tgt], disp[tgt], dist)
        theta = cfg.min_division_displacement_um

        def ok(first: np.ndarray, second: np.ndarray) -> np.ndarray:
            moved = (edge_disp[first] > theta) | (edge_disp[second] > theta)
            on_spot = (dist[first] < theta) & (dist[second] < theta)
            return moved | on_spot

        return ok

    def _link(self, candidates: TrackGraph) -> LinkResult:
        """Select a lineage forest from ``candidates``.

        Parameters
        ----------
        candidates : TrackGraph
            Candidate graph with the edge column ``config.cost_feature``; optional node
            and edge ``pin`` columns.

        Returns
        -------
        LinkResult
            ``graph``: kept nodes (all but ``pin == 0``) and accepted edges with all
            candidate columns; ``status`` HEURISTIC (INFEASIBLE if pinned edges
            conflict); ``objective`` = sum of accepted costs; ``timings`` ``build`` and
            ``solve`` (s).

        Raises
        ------
        InvalidInputError
            If the graph lacks the cost column, or has negative / NaN costs.
        """
        cfg = self.config
        t0 = time.perf_counter()
        stats: dict[str, Any] = {
            "nodes": candidates.num_nodes, "candidate_edges": candidates.num_edges,
        }
        keep_nodes = pins(candidates, "node") != 0
        if candidates.num_edges == 0:
            msg = (
                "GreedyLinker: the candidate graph has no edges, so every node stays an "
                "unlinked single-frame track; build candidates with build_candidates() first"
            )
            warnings.warn(msg, UserWarning, stacklevel=3)
            stats["warning"] = msg
            return LinkResult(candidates.subgraph(nodes=keep_nodes), SolveStatus.HEURISTIC, 0.0,
                              stats=stats)
        cost = self.costs(candidates)
        edge_pin = pins(candidates, "edge")
        src, tgt = candidates.edge_index()
        n = candidates.num_nodes
        forced = edge_pin == 1
        reason = forest_violation(src, tgt, forced, n, cfg.max_children, keep_nodes)
        if reason is not None:
            raise Infeasible(reason, stats)
        allowed = (edge_pin != 0) & keep_nodes[src] & keep_nodes[tgt]
        if cfg.max_cost is not None:
            allowed &= cost <= cfg.max_cost
        rows = np.flatnonzero(allowed | forced)
        t_build = time.perf_counter() - t0
        second_ok = self._second_ok(candidates, cost, src, tgt)
        if second_ok is not None:
            full_ok = second_ok

            def second_ok(first, second, _rows=rows):  # local rows → candidate rows
                return full_ok(_rows[first], _rows[second])

        sel_local, rounds = greedy_select(
            src[rows],
            tgt[rows],
            cost[rows],
            n,
            max_children=cfg.max_children,
            second_ok=second_ok,
            forced=forced[rows],
        )
        selected = np.zeros(candidates.num_edges, bool)
        selected[rows[sel_local]] = True
        graph = candidates.subgraph(nodes=keep_nodes, edges=selected)
        t_solve = time.perf_counter() - t0 - t_build
        stats.update(
            selected_edges=int(selected.sum()),
            rounds=rounds,
            divisions=int(np.count_nonzero(graph.out_degree() == 2)) if graph.num_edges else 0,
        )
        logger.info(
            "greedy: %d of %d edges in %d rounds, %.2f s",
            selected.sum(), selected.size, rounds, t_build + t_solve,
        )
        return LinkResult(
            graph,
            SolveStatus.HEURISTIC,
            float(cost[selected].sum()),
            timings={"build": t_build, "solve": t_solve},
            stats=stats,
        )

    def objective_of(
        self,
        candidates: TrackGraph,
        selected_edge_mask: Any,
        selected_node_mask: Any | None = None,
    ) -> float:
        """Sum of the costs (cost units) of the selected edges; nodes cost nothing.

        Parameters and errors as :meth:`Linker.objective_of`; the node mask is only
        checked (every selected edge needs both its nodes), and the forest rules allow
        ``max_children`` children.
        """
        edges = bool_mask(selected_edge_mask, candidates.num_edges, "selected_edge_mask")
        nodes = None
        if selected_node_mask is not None:
            nodes = bool_mask(selected_node_mask, candidates.num_nodes, "selected_node_mask")
        if not edges.any():
            return 0.0
        src, tgt = candidates.edge_index()
        reason = forest_violation(
            src, tgt, edges, candidates.num_nodes, self.config.max_children, nodes, "selected"
        )
        if reason is not None:
            raise InvalidInputError(f"the selection is not a lineage forest: {reason}")
        return float(self.costs(candidates)[edges].sum())


register_linker("greedy", GreedyConfig, GreedyLinker)
