"""Flow-corrected nearest-neighbour linking (ELEPHANT's linker).

The linker works on **spots**: it searches parents itself with KD-trees and ignores the
candidate edges of its input, so it runs on a bare detection graph as well as on a
candidate graph. Input edges are kept only when they are *approved* (edge column
``approved`` True or ``pin == 1``); an input edge with ``pin == 0`` forbids that pair.

Algorithm (after ELEPHANT's ``NearestNeighborLinkingAction``; distances in µm):

1. Frames are processed in descending order t = t_max … t_min + 1.
2. Children at t: nodes tagged ``tp``, ``fn`` or ``unlabeled`` (every node without a
   ``tag`` column) that have no incoming approved edge. Each child searches around its
   *query position*: its predicted parent position ``parent_z/y/x`` when present and
   ``use_flow`` (its own position otherwise).
3. Up to ``max_passes`` passes over the still unlinked children (in id order; stop early
   when a pass links none). A child looks at frames t − 1, …, t − ``search_depth_frames``
   and, in each, at up to ``n_neighbors`` nearest possible parents (never tagged ``fp``,
   ``tn``, ``tb``, ``fb``, never node ``pin == 0``), in increasing distance d from the
   query; the search in a frame stops at the first candidate with d > ``search_distance_um``.
4. A parent may take ``max_children`` children when the division rule allows it
   (``division_rule``), otherwise one child. ELEPHANT's *flow* rule: the child's
   displacement s (distance from its position to its query position; d when there is no
   flow) exceeds ``division_displacement_um`` — or an existing child's does, or this
   candidate and an existing child are both within ``division_displacement_um`` of the
   query. The *geometry* rule looks at positions only, so a weak flow model that predicts
   small displacements cannot veto a division: the candidate and an existing child both
   lie farther than ``division_displacement_um`` from the parent, on opposite sides
   (cosine of the angle between the two displacements from the parent ≤
   ``division_max_cos``). ``"either"`` (default) allows what either rule allows. A link
   is refused if the parent already has that many approved children. If the parent is
   full, its longest non-approved link is replaced when it is at least as long as d (the
   displaced child is searched again in the next pass); otherwise the next candidate is
   tried.
5. With ``interpolate``, every accepted link that skips frames (parent at t′ < t − 1) is
   replaced by a chain through new nodes at t′ + 1 … t − 1, linearly interpolated between
   parent and child, carrying the child's covariance and node column
   ``interpolated = True`` (ELEPHANT inserts one node at the query position per frame and
   searches again; the linear chain gives the same topology in one step and is
   deterministic).

Nodes tagged ``fp``, ``tn``, ``tb``, ``fb`` or pinned out (``pin == 0``) are not cells
and are left out of the result. Status is HEURISTIC; the objective is ``None``.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Literal

import numpy as np
from pydantic import Field

from celltrack.config import Config
from celltrack.graph import TrackGraph
from celltrack.graph.tags import NEVER_LINKED
from celltrack.solve.base import Infeasible, Linker, LinkResult, SolveStatus, register_linker
from celltrack.solve.validate import forest_violation, pins

__all__ = ["FlowNNConfig", "FlowNNLinker"]

logger = logging.getLogger(__name__)

#: tags of nodes that are never linked (rejected detections and periphery marks).
EXCLUDED_TAGS = NEVER_LINKED


class FlowNNConfig(Config):
    """ELEPHANT's flow-corrected nearest-neighbour linker (distances in µm)."""

    kind: Literal["flow_nn"] = Field("flow_nn", description="linker name (discriminator)")
    search_distance_um: float = Field(
        5.0, gt=0, description="d_search: largest distance from the query position to a parent (µm)"
    )
    n_neighbors: int = Field(
        3, ge=1, description="nearest candidate parents examined per frame (count)"
    )
    search_depth_frames: int = Field(
        1, ge=1, description="look for parents up to this many frames back (frames; T_max)"
    )
    max_children: int = Field(2, ge=1, le=2, description="most children per parent (count)")
    division_displacement_um: float = Field(
        1.0,
        ge=0,
        description="a child displaced by more than this may be a second child (µm)",
    )
    division_rule: Literal["flow", "geometry", "either"] = Field(
        "either",
        description="when a parent may take a second child: 'flow' (ELEPHANT: the flow "
        "displacement exceeds division_displacement_um), 'geometry' (both children farther "
        "than division_displacement_um from the parent, on opposite sides), 'either'",
    )
    division_max_cos: float = Field(
        -0.5,
        ge=-1.0,
        le=1.0,
        description="geometry rule: largest cosine of the angle between the two children's "
        "displacements from the parent (−1 … 1; −0.5 = at least 120° apart)",
    )
    max_passes: int = Field(
        5, ge=1, description="passes over the unlinked children per frame (count)"
    )
    use_flow: bool = Field(
        True, description="search around parent_z/y/x when present (else around the spot)"
    )
    interpolate: bool = Field(
        False,
        description="fill frame gaps of accepted links with interpolated nodes "
        "(node column 'interpolated')",
    )


class _Edge:
    __slots__ = ("approved", "child", "d2", "parent", "sqdisp")

    def __init__(self, parent: int, child: int, d2: float, sqdisp: float, approved: bool) -> None:
        self.parent, self.child, self.d2, self.sqdisp, self.approved = (
            parent,
            child,
            d2,
            sqdisp,
            approved,
        )


class FlowNNLinker(Linker):
    """Flow-corrected nearest-neighbour linking (see module docstring).

    Parameters
    ----------
    config : FlowNNConfig, optional
        Defaults (ELEPHANT's) if omitted.

    Examples
    --------
    >>> g = TrackGraph.from_positions([0, 1], [[0, 0, 0], [0, 0, 2]])
    >>> FlowNNLinker().link(g).graph.num_edges
    1
    """

    config_class = FlowNNConfig
    config: FlowNNConfig
    links_spots = True  # it searches parents around flow-displaced positions itself

    # ---------------------------------------------------------------- inputs
    def _node_roles(self, graph: TrackGraph) -> tuple[np.ndarray, np.ndarray]:
        """(can be a parent, can be a child) masks, shape (N,)."""
        keep = pins(graph, "node") != 0
        if "tag" in graph.nodes:
            tag = np.asarray(graph.nodes["tag"]).astype(str)
            keep &= ~np.isin(tag, EXCLUDED_TAGS)
        return keep, keep.copy()

    def _query(self, graph: TrackGraph) -> tuple[np.ndarray, np.ndarray]:
        """Query positions (N, 3) µm and flow-displacement² (N,) (NaN where no flow)."""
        from celltrack.graph.candidates import PARENT_COLUMNS

        pos = graph.positions
        sqdisp = np.full(graph.num_nodes, np.nan)
        if not (self.config.use_flow and all(c in graph.nodes for c in PARENT_COLUMNS)):
            return pos, sqdisp
        pred = np.stack([np.asarray(graph.nodes[c], np.float64) for c in PARENT_COLUMNS], axis=1)
        ok = np.all(np.isfinite(pred), axis=1)
        query = np.where(ok[:, None], pred, pos)
        sqdisp[ok] = np.sum((pred[ok] - pos[ok]) ** 2, axis=1)
        return query, sqdisp

    # ---------------------------------------------------------------- main
    def _link(self, candidates: TrackGraph) -> LinkResult:
        """Link the spots of ``candidates`` (its non-approved edges are ignored).

        Parameters
        ----------
        candidates : TrackGraph
            Spots (positions µm, optional ``parent_z/y/x``, ``tag``, ``covariance``,
            ``pin``); edges optional (only approved / pinned ones are used).

        Returns
        -------
        LinkResult
            Forest with edge columns ``distance``, ``pred_distance`` (µm, parent to the
            child's query position), ``frame_gap`` and ``approved``; status HEURISTIC,
            or INFEASIBLE when approved edges already break the forest rules; ``timings``
            ``solve`` and ``assemble`` (s).
        """
        from scipy.spatial import cKDTree

        cfg = self.config
        t0 = time.perf_counter()
        graph = candidates
        n = graph.num_nodes
        can_parent, can_child = self._node_roles(graph)
        pos = graph.positions
        query, child_sqdisp = self._query(graph)
        t = graph.t
        theta2 = cfg.division_displacement_um**2
        r2 = cfg.search_distance_um**2
        stats: dict[str, Any] = {"nodes": n}

        # approved and forbidden input edges
        edge_pin = pins(graph, "edge")
        approved = edge_pin == 1
        if "approved" in graph.edges:
            col = np.asarray(graph.edges["approved"])
            approved |= (np.nan_to_num(col, nan=0.0) if col.dtype.kind == "f" else col).astype(bool)
        src, tgt = graph.edge_index() if graph.num_edges else (np.zeros(0, int), np.zeros(0, int))
        approved &= can_parent[src] & can_child[tgt]
        forbidden = set(zip(src[edge_pin == 0].tolist(), tgt[edge_pin == 0].tolist()))
        a_src, a_tgt = src[approved], tgt[approved]
        reason = forest_violation(src, tgt, approved, n, cfg.max_children, what="approved")
        if reason is not None:
            raise Infeasible(reason, stats)
        out_edges: dict[int, list[_Edge]] = {}
        parent_edge: dict[int, _Edge] = {}
        for s, c in zip(a_src.tolist(), a_tgt.tolist()):
            d2 = float(np.sum((pos[s] - query[c]) ** 2))
            sd = child_sqdisp[c] if np.isfinite(child_sqdisp[c]) else d2
            e = _Edge(s, c, d2, float(sd), True)
            out_edges.setdefault(s, []).append(e)
            parent_edge[c] = e

        # frames and per-frame parent trees (built lazily)
        order = np.argsort(t, kind="stable")
        frames, first = np.unique(t[order], return_index=True)
        bounds = dict(zip(frames.tolist(), zip(first.tolist(), [*first[1:].tolist(), n])))
        trees: dict[int, tuple[Any, np.ndarray] | None] = {}

        def tree_at(frame: int):
            if frame not in trees:
                if frame not in bounds:
                    trees[frame] = None
                else:
                    rows = order[slice(*bounds[frame])]
                    rows = np.sort(rows[can_parent[rows]])
                    trees[frame] = (cKDTree(pos[rows]), rows) if rows.size else None
            return trees[frame]

        replaced = 0
        passes_used = 0
        for frame in frames[::-1].tolist():
            if frame == frames[0]:
                break
            rows = order[slice(*bounds[frame])]
            rows = np.sort(rows[can_child[rows]])
            # ELEPHANT deletes every non-approved edge into this frame first; there are none here.
            rows = np.asarray([r for r in rows.tolist() if r not in parent_edge], np.int64)
            if rows.size == 0:
                continue
            # nearest candidates per earlier frame, for all children at once
            cands: list[tuple[np.ndarray, np.ndarray]] = []
            for gap in range(1, cfg.search_depth_frames + 1):
                tr = tree_at(frame - gap)
                if tr is None:
                    continue
                tree, prow = tr
                k = min(cfg.n_neighbors, prow.size)
                dist, idx = tree.query(query[rows], k=k)
                dist = dist.reshape(rows.size, k)
                idx = idx.reshape(rows.size, k)
                cands.append((dist**2, prow[idx]))
            if not cands:
                continue
            for pass_no in range(1, cfg.max_passes + 1):
                pending = [i for i in range(rows.size) if int(rows[i]) not in parent_edge]
                if not pending:
                    break
                passes_used = max(passes_used, pass_no)
                changed = False
                for i in pending:
                    child = int(rows[i])
                    if child in parent_edge:
                        continue
                    edge, bumped = self._find_parent(
                        child, i, cands, child_sqdisp, out_edges, forbidden, r2, theta2, pos
                    )
                    if edge is None:
                        continue
                    changed = True
                    if bumped is not None:
                        out_edges[bumped.parent].remove(bumped)
                        del parent_edge[bumped.child]
                        replaced += 1
                    out_edges.setdefault(edge.parent, []).append(edge)
                    parent_edge[child] = edge
                if not changed:
                    break
        t_link = time.perf_counter() - t0

        result = self._assemble(graph, can_parent | can_child, parent_edge, pos, query)
        t_assemble = time.perf_counter() - t0 - t_link
        stats.update(
            linked=len(parent_edge),
            replaced_links=replaced,
            passes=passes_used,
            interpolated_nodes=int(np.count_nonzero(result.nodes["interpolated"])),
        )
        logger.info(
            "flow_nn: %d links (%d replaced) in %.2f s",
            len(parent_edge), replaced, t_link + t_assemble,
        )
        return LinkResult(
            result,
            SolveStatus.HEURISTIC,
            timings={"solve": t_link, "assemble": t_assemble},
            stats=stats,
        )

    def _division_allowed(self, parent, child, d2, sqdisp, existing, pos, theta2) -> bool:
        """Whether ``child`` may be a second child of ``parent`` (see ``division_rule``)."""
        cfg = self.config
        if cfg.division_rule in ("flow", "either"):
            if sqdisp > theta2:
                return True
            if any(e.sqdisp > theta2 or (d2 < theta2 and e.d2 < theta2) for e in existing):
                return True
        if cfg.division_rule in ("geometry", "either"):
            v2 = pos[child] - pos[parent]
            n2 = float(v2 @ v2)
            for e in existing:
                v1 = pos[e.child] - pos[parent]
                n1 = float(v1 @ v1)
                if n1 > theta2 and n2 > theta2:
                    if float(v1 @ v2) <= cfg.division_max_cos * np.sqrt(n1 * n2):
                        return True
        return False

    def _find_parent(self, child, i, cands, child_sqdisp, out_edges, forbidden, r2, theta2, pos):
        """One child's search: (new edge, edge it replaces) or (None, None)."""
        cfg = self.config
        for d2s, parents in cands:
            for d2, parent in zip(d2s[i].tolist(), parents[i].tolist()):
                if d2 > r2:
                    break
                if (parent, child) in forbidden:
                    continue
                sd = child_sqdisp[child]
                sqdisp = float(sd) if np.isfinite(sd) else d2
                existing = out_edges.get(parent, [])
                allowed = 1
                if cfg.max_children > 1 and (
                    (sqdisp > theta2 and cfg.division_rule != "geometry")
                    or self._division_allowed(parent, child, d2, sqdisp, existing, pos, theta2)
                ):
                    allowed = cfg.max_children
                if sum(e.approved for e in existing) >= allowed:
                    continue
                bumped = None
                if len(existing) >= allowed:
                    free = [e for e in existing if not e.approved]
                    longest = max(free, key=lambda e: e.d2)
                    if longest.d2 < d2:
                        continue
                    bumped = longest
                return _Edge(parent, child, d2, sqdisp, False), bumped
        return None, None

    def _assemble(self, graph, keep, parent_edge, pos, query) -> TrackGraph:
        """Result forest: kept nodes (+ interpolated ones) and the accepted edges."""
        edges = list(parent_edge.values())
        ps = np.asarray([e.parent for e in edges], np.int64)
        cs = np.asarray([e.child for e in edges], np.int64)
        appr = np.asarray([e.approved for e in edges], bool)
        t = graph.t
        ids = graph.ids
        nodes = {k: np.asarray(v)[keep] for k, v in graph.nodes.items()}
        nodes["interpolated"] = np.zeros(int(keep.sum()), bool)
        gap = t[cs] - t[ps] if edges else np.zeros(0, np.int64)
        e_src, e_tgt = (
            ids[ps] if edges else np.zeros(0, np.int64),
            ids[cs] if edges else np.zeros(0, np.int64),
        )
        e_dist = np.linalg.norm(pos[ps] - pos[cs], axis=1) if edges else np.zeros(0)
        e_pred = np.linalg.norm(pos[ps] - query[cs], axis=1) if edges else np.zeros(0)
        e_gap, e_appr = gap.copy(), appr.copy()
        if self.config.interpolate and np.any(gap > 1):
            long = np.flatnonzero(gap > 1)
            steps = gap[long] - 1
            owner = np.repeat(long, steps)  # edge of every new node
            k = np.arange(owner.size) - np.repeat(np.cumsum(steps) - steps, steps) + 1  # 1..gap-1
            frac = (k / gap[owner])[:, None]
            new_pos = pos[ps[owner]] + frac * (pos[cs[owner]] - pos[ps[owner]])
            new_ids = int(ids.max()) + 1 + np.arange(owner.size)
            new_nodes = {
                "id": new_ids,
                "t": t[ps[owner]] + k,
                "z": new_pos[:, 0],
                "y": new_pos[:, 1],
                "x": new_pos[:, 2],
                "interpolated": np.ones(owner.size, bool),
            }
            if "covariance" in graph.nodes:
                new_nodes["covariance"] = np.asarray(graph.nodes["covariance"])[cs[owner]]
            if "tag" in graph.nodes:
                new_nodes["tag"] = np.full(owner.size, "unlabeled")
            nodes = _append_rows(nodes, new_nodes)
            # chain: parent -> n1 -> ... -> n_{g-1} -> child
            chain_src = np.where(k == 1, ids[ps[owner]], new_ids - 1)
            last = np.cumsum(steps) - 1
            seg_src = np.concatenate([chain_src, new_ids[last]])
            seg_tgt = np.concatenate([new_ids, ids[cs[long]]])
            prev_pos = np.where((k == 1)[:, None], pos[ps[owner]], np.roll(new_pos, 1, axis=0))
            seg_len = np.concatenate(
                [
                    np.linalg.norm(new_pos - prev_pos, axis=1),
                    np.linalg.norm(pos[cs[long]] - new_pos[last], axis=1),
                ]
            )
            short = gap <= 1
            e_src = np.concatenate([e_src[short], seg_src])
            e_tgt = np.concatenate([e_tgt[short], seg_tgt])
            e_dist = np.concatenate([e_dist[short], seg_len])
            e_pred = np.concatenate([e_pred[short], seg_len])
            e_gap = np.concatenate([e_gap[short], np.ones(seg_src.size, np.int64)])
            e_appr = np.concatenate([e_appr[short], np.zeros(seg_src.size, bool)])
        edge_cols = {
            "source": e_src,
            "target": e_tgt,
            "distance": e_dist,
            "pred_distance": e_pred,
            "frame_gap": e_gap.astype(np.int64),
            "approved": e_appr,
        }
        out = TrackGraph(nodes, edge_cols, attrs=dict(graph.attrs), validate=False)
        return out.sorted()


def _append_rows(nodes: dict[str, np.ndarray], new: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Append new node rows; columns missing in ``new`` get NaN / -1 / False / None."""
    m = len(new["id"])
    out = {}
    for name, col in nodes.items():
        if name in new:
            extra = (
                np.asarray(new[name]).astype(col.dtype, copy=False)
                if col.dtype.kind != "U"
                else np.asarray(new[name])
            )
        elif col.dtype.kind == "f":
            extra = np.full((m, *col.shape[1:]), np.nan)
        elif col.dtype.kind == "b":
            extra = np.zeros((m, *col.shape[1:]), bool)
        elif col.dtype.kind in "iu":
            extra = np.full((m, *col.shape[1:]), -1, col.dtype)
        else:
            extra = np.full((m, *col.shape[1:]), None, object)
        out[name] = np.concatenate([col, extra])
    return out


register_linker("flow_nn", FlowNNConfig, FlowNNLinker)
