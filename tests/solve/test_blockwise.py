"""Block-wise solving: tiling, conflict colouring, pins, resume, executors, optimality gap."""

from __future__ import annotations

import itertools
import logging
from typing import Literal

import numpy as np
import pytest
from pydantic import Field
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp

from celltrack.config import Config
from celltrack.errors import CheckpointError, ConfigError, InvalidInputError
from celltrack.graph import TrackGraph
from celltrack.solve.base import Infeasible, Linker, LinkResult, SolveStatus, make_linker
from celltrack.solve.blockwise import (
    BlockGrid,
    BlockPartition,
    BlockwiseConfig,
    colour_levels,
    solve_blockwise,
)
from celltrack.solve.blockwise.blocks import check_sizes, roi_of
from celltrack.solve.blockwise.synthetic import synthetic_candidates

# --------------------------------------------------------------------------- helpers


class TinyILPConfig(Config):
    """Costs of the exact test linker (cost units)."""

    kind: Literal["tiny_ilp"] = Field("tiny_ilp", description="linker kind")
    node_offset: float = Field(0.3, description="cost of selecting a node (cost units)")
    node_score_weight: float = Field(-0.8, description="cost per unit score (cost units)")
    edge_weight: float = Field(0.05, description="cost per µm of edge distance (cost units/µm)")
    appear_cost: float = Field(0.6, description="track start cost (cost units)")
    split_cost: float = Field(0.5, description="division cost (cost units)")
    border_um: float = Field(5.0, description="free-start band at the FOV border (µm)")


class TinyILP(Linker):
    """A small exact tree ILP (scipy/HiGHS MILP) honouring ``pin`` and ``appear_free``:
    the reference global optimum in these tests (independent of celltrack.solve.ilp)."""

    config_class = TinyILPConfig

    def _costs(self, g: TrackGraph) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        c = self.config
        score = np.asarray(g.nodes["score"], float)
        node = c.node_offset + c.node_score_weight * score
        edge = c.edge_weight * np.asarray(g.edges["distance"], float)
        roi = np.asarray(g.attrs["roi_um"], float)
        pos = g.positions
        lo, hi = roi[1:, 0], roi[1:, 1]
        gap = np.minimum(pos - lo, hi - pos)
        gap[:, hi <= lo] = np.inf
        free = (g.t <= roi[0, 0]) | np.any(gap < c.border_um, axis=1)
        if "appear_free" in g.nodes:
            free |= np.asarray(g.nodes["appear_free"], bool)
        appear = np.where(free, 0.0, c.appear_cost)
        return node, edge, appear

    def objective_of(self, g: TrackGraph, edge_mask: np.ndarray, node_mask: np.ndarray) -> float:
        node, edge, appear = self._costs(g)
        src, tgt = g.edge_index()
        indeg = np.bincount(tgt[edge_mask], minlength=g.num_nodes)
        outdeg = np.bincount(src[edge_mask], minlength=g.num_nodes)
        return float(
            node[node_mask].sum()
            + edge[edge_mask].sum()
            + appear[node_mask & (indeg == 0)].sum()
            + self.config.split_cost * np.count_nonzero(outdeg == 2)
        )

    def _link(self, g: TrackGraph) -> LinkResult:
        node, edge, appear = self._costs(g)
        src, tgt = g.edge_index()
        n, m = g.num_nodes, g.num_edges
        # variables z = [x (n), y (m), s (n)]: node, edge, split
        split = np.full(n, self.config.split_cost)
        cost = np.concatenate([node + appear, edge - appear[tgt], split])
        e = np.arange(m)
        rows = np.concatenate([tgt, n + src, 2 * n + src, np.arange(3 * n)])
        v = np.arange(n)
        cols = np.concatenate([n + e, n + e, n + e, v, v, n + m + v])
        vals = np.concatenate([np.ones(3 * m), -np.ones(n), -2 * np.ones(n), -np.ones(n)])
        # Σ_in y − x ≤ 0;  Σ_out y − 2x ≤ 0;  Σ_out y − s ≤ 1
        a = sparse.csr_matrix((vals, (rows, cols)), shape=(3 * n, 2 * n + m))
        upper = np.concatenate([np.zeros(2 * n), np.ones(n)])
        lo, hi = np.zeros(2 * n + m), np.ones(2 * n + m)
        for offset, cols_ in ((0, g.nodes), (n, g.edges)):
            if "pin" in cols_:
                pin = np.asarray(cols_["pin"])
                size = pin.size
                lo[offset : offset + size] = np.where(pin == 1, 1, 0)
                hi[offset : offset + size] = np.where(pin == 0, 0, 1)
        res = milp(
            cost,
            constraints=LinearConstraint(a, -np.inf, upper),
            integrality=np.ones(cost.size),
            bounds=Bounds(lo, hi),
            options={"mip_rel_gap": 0.0},
        )
        if res.x is None:
            raise Infeasible(f"HiGHS found no solution: {res.message}")
        z = np.round(res.x).astype(bool)
        nmask, emask = z[:n], z[n : n + m]
        return LinkResult(
            g.subgraph(nodes=nmask, edges=emask),
            SolveStatus.OPTIMAL if res.status == 0 else SolveStatus.FEASIBLE,
            self.objective_of(g, emask, nmask),
        )


class CountingLinker(TinyILP):
    """TinyILP that counts its calls and can fail after a number of blocks."""

    calls = 0
    fail_after: int | None = None

    def _link(self, g: TrackGraph) -> LinkResult:
        limit = CountingLinker.fail_after
        if limit is not None and CountingLinker.calls >= limit:
            raise RuntimeError("simulated interruption")
        CountingLinker.calls += 1
        return super()._link(g)


def small_graph(seed: int = 0, frames: int = 8, cells: int = 300) -> TrackGraph:
    """A 2D+t candidate graph of a few thousand nodes."""
    return synthetic_candidates(frames, cells, ndim=2, seed=seed)


BLOCK = (4, None, 60.0, 60.0)
CONTEXT = (2, None, 20.0, 20.0)


def run(graph: TrackGraph, linker, config: BlockwiseConfig | None = None, **kw) -> LinkResult:
    """solve_blockwise with the test's block size and context, serial, without a bar.

    Config fields (``block_size``, ``context``, ``n_workers``, ...) given as keywords
    replace those of ``config``; ``executor``, ``store`` and ``progress`` are passed on.
    """
    passed_on = ("executor", "store", "progress")
    fields = {k: kw.pop(k) for k in list(kw) if k not in passed_on}
    given = (config or BlockwiseConfig()).model_dump(exclude_unset=True)
    merged = {"block_size": BLOCK, "context": CONTEXT, **given, **fields}
    kw.setdefault("executor", "serial")
    kw.setdefault("progress", False)
    return solve_blockwise(graph, linker, merged, **kw)


# --------------------------------------------------------------------------- tiling


@pytest.mark.parametrize(
    ("roi", "size", "ctx", "shape", "colours"),
    [
        # context <= block size on every axis: 2^4 colours
        ([[0, 9], [0, 120], [0, 130], [0, 150]], (3, 40, 40, 40), (1, 20, 40, 10), (4, 3, 4, 4),
         16),
        # context > block size: wider strides; no context along x: stride 1
        ([[0, 9], [0, 90], [0, 90], [0, 60]], (2, 30, 30, 30), (3, 45, 10, 0), (5, 3, 3, 2), 18),
    ],
)
def test_colouring_is_conflict_free(roi, size, ctx, shape, colours):
    grid = BlockGrid(np.array(roi, float), np.array(size, float), np.array(ctx, float))
    assert grid.shape == shape
    assert grid.num_colours == colours
    col = grid.colours()
    levels = colour_levels(grid)
    assert sorted(np.concatenate(levels).tolist()) == list(range(grid.num_blocks))
    for a, b in itertools.combinations(range(grid.num_blocks), 2):
        if col[a] == col[b]:
            assert not grid.conflict(a, b), (grid.block_index(a), grid.block_index(b))
    backward = colour_levels(grid, "backward")
    assert len(backward) == grid.shape[0] * grid.num_colours // grid.stride[0]
    assert sorted(np.concatenate(backward).tolist()) == list(range(grid.num_blocks))
    t_of_level = [set(grid.block_index(lv)[:, 0].tolist()) for lv in backward]
    assert all(len(ts) == 1 for ts in t_of_level)
    assert [ts.pop() for ts in t_of_level] == sorted(
        np.repeat(np.arange(grid.shape[0]), len(backward) // grid.shape[0]).tolist(), reverse=True
    )
    for level in backward:
        for a, b in itertools.combinations(level.tolist(), 2):
            assert not grid.conflict(a, b)
    # neighbours() lists exactly the conflicting blocks
    for a in (0, grid.num_blocks // 2, grid.num_blocks - 1):
        expected = [b for b in range(grid.num_blocks) if b != a and grid.conflict(a, b)]
        assert sorted(grid.neighbours(a).tolist()) == expected
        assert expected, "every block conflicts with some neighbour here"


def test_every_node_and_edge_has_one_owner_and_read_roi_contains_it():
    g = small_graph()
    size, ctx = check_sizes(BLOCK, CONTEXT)
    grid = BlockGrid(roi_of(g.t, g.positions, g.attrs["roi_um"]), size, ctx)
    part = BlockPartition(g, grid, np.array([1.0, 8.0, 8.0, 8.0]))
    assert grid.shape == (2, 1, 3, 3)
    counts = np.zeros(g.num_nodes, int)
    ecounts = np.zeros(g.num_edges, int)
    for b in range(grid.num_blocks):
        rows, erows = part.read_rows(b)
        owned = part.owned_nodes(b)
        counts[owned] += 1
        assert np.isin(owned, rows).all()
        # brute force read ROI membership
        read = grid.read_roi(b)
        inside = np.flatnonzero(grid.in_roi(part.coords, read))
        assert np.array_equal(rows, inside)
        src, tgt = g.edge_index()
        both = np.flatnonzero(np.isin(src, inside) & np.isin(tgt, inside))
        assert np.array_equal(erows, both)
        ecounts[erows[part.edge_block[erows] == b]] += 1
        # owner block of an edge = owner of its target
        assert np.array_equal(part.edge_block, part.node_block[tgt])
    assert (counts == 1).all()
    assert (ecounts == 1).all()  # context >= edge length: every edge decided by its owner
    assert not part.lost_edges().any()


def test_appear_free_only_at_block_borders():
    g = small_graph()
    size, ctx = check_sizes(BLOCK, CONTEXT)
    roi = roi_of(g.t, g.positions, g.attrs["roi_um"])
    grid = BlockGrid(roi, size, ctx)
    part = BlockPartition(g, grid, np.array([1.0, 8.0, 8.0, 8.0]))
    # corner block (t block 0, y 0, x 0): only the high y/x faces cut through data
    b0 = int(grid.linear_id(np.array([0, 0, 0, 0])))
    rows, _ = part.read_rows(b0)
    free = part.appear_free(b0, rows)
    c = part.coords[rows]
    read = grid.read_roi(b0)
    expected = (c[:, 2] >= read[2, 1] - 8) | (c[:, 3] >= read[3, 1] - 8)
    assert np.array_equal(free, expected) and free.any() and not free.all()
    # second time block, centre: first read frame and all four spatial faces
    b1 = int(grid.linear_id(np.array([1, 0, 1, 1])))
    rows, _ = part.read_rows(b1)
    free = part.appear_free(b1, rows)
    c = part.coords[rows]
    read = grid.read_roi(b1)
    assert read[0, 0] == 2  # frames 2..7 read for write frames 4..7
    expected = c[:, 0] == read[0, 0]
    for d in (2, 3):
        expected |= (c[:, d] < read[d, 0] + 8) | (c[:, d] >= read[d, 1] - 8)
    assert np.array_equal(free, expected)


# --------------------------------------------------------------------------- solving


def ilp_linker():
    """celltrack's CP-SAT ILP with costs that make node selection non-trivial."""
    from celltrack.solve.ilp import ILPConfig

    return make_linker(
        ILPConfig(
            node_offset=0.3, node_score_weight=-0.8, edge_feature="distance", edge_weight=0.05,
            appear_cost=0.6, split_cost=0.5, disappear_cost=0.0, border_distance_um=5.0,
            num_workers=1,
        )
    )


def selection_of(g: TrackGraph, forest: TrackGraph) -> tuple[np.ndarray, np.ndarray]:
    src, tgt = g.edge_index()
    key = src * g.num_nodes + tgt
    chosen = g.index_of(forest.edges["source"]) * g.num_nodes + g.index_of(forest.edges["target"])
    return np.isin(key, chosen), np.isin(g.ids, forest.ids)


@pytest.mark.parametrize(
    ("which", "order", "seeds"),
    [("ilp", "colours", (0, 1)), ("ilp", "backward", (0, 1)), ("tiny", "colours", (2,))],
)
def test_blockwise_within_one_percent_of_global_optimum(which, order, seeds):
    linker = ilp_linker() if which == "ilp" else TinyILP()
    for seed in seeds:
        g = small_graph(seed)
        assert 2000 < g.num_nodes < 4000
        glob = linker.link(g)
        assert glob.status == SolveStatus.OPTIMAL
        res = run(g, linker, config=BlockwiseConfig(order=order))
        res.graph.validate(forest=True)
        assert res.status == SolveStatus.FEASIBLE
        assert res.stats["num_colours"] == 8 and res.stats["active_blocks"] == 18
        assert res.stats["num_levels"] == 8  # 2 time blocks x 4 spatial colours either way
        assert res.stats["repairs"] == 0 and not res.stats["failed_blocks"]
        levels = [b["colour"] for b in res.stats["blocks"]]
        assert levels == sorted(levels) and levels.count(0) == 4
        assert all(b["pinned_nodes"] > 0 for b in res.stats["blocks"][4:])  # later levels pinned
        # the reported objective is the global objective of the stitched selection
        emask, nmask = selection_of(g, res.graph)
        assert res.objective == pytest.approx(linker.objective_of(g, emask, nmask))
        opt = glob.objective
        assert opt < 0 and g.num_nodes - glob.graph.num_nodes > 100  # a non-trivial selection
        assert res.objective >= opt - 1e-6  # cannot beat the optimum
        assert res.objective - opt <= 0.01 * abs(opt), (res.objective, opt)
        assert res.graph.num_nodes > 0.95 * glob.graph.num_nodes


def test_reference_linker_agrees_with_celltrack_ilp():
    g = small_graph(9, frames=5, cells=150)
    ilp, tiny = ilp_linker().link(g), TinyILP().link(g)
    assert ilp.objective == pytest.approx(tiny.objective, abs=2e-3 * g.num_nodes)
    tiny_under_ilp = ilp_linker().objective_of(g, *selection_of(g, tiny.graph))
    assert tiny_under_ilp == pytest.approx(ilp.objective, abs=2e-3 * g.num_nodes)


def test_user_pins_are_honoured_across_blocks():
    g = small_graph(2).copy()
    rng = np.random.default_rng(0)
    node_pin = np.full(g.num_nodes, -1, np.int8)
    edge_pin = np.full(g.num_edges, -1, np.int8)
    excluded = rng.choice(g.num_nodes, 30, replace=False)
    node_pin[excluded] = 0
    src, tgt = g.edge_index()
    # pin some edges whose endpoints are free and whose target has no other pinned edge
    ok = np.flatnonzero((node_pin[src] != 0) & (node_pin[tgt] != 0))
    _, first = np.unique(tgt[ok], return_index=True)
    chosen = ok[first][:: 15]
    _, once = np.unique(src[chosen], return_index=True)
    chosen = chosen[once]
    edge_pin[chosen] = 1
    g.set_node_column("pin", node_pin)
    g.set_edge_column("pin", edge_pin)
    res = run(g, TinyILP())
    assert not np.isin(g.ids[excluded], res.graph.ids).any()
    got = set(zip(res.graph.edges["source"].tolist(), res.graph.edges["target"].tolist()))
    want = set(zip(g.edges["source"][chosen].tolist(), g.edges["target"][chosen].tolist()))
    assert want <= got


def test_resume_after_interruption_skips_finished_blocks(tmp_path):
    g = small_graph(3)
    store = tmp_path / "store"
    reference = run(g, TinyILP())
    CountingLinker.calls, CountingLinker.fail_after = 0, 7
    with pytest.raises(RuntimeError, match="simulated interruption"):
        run(g, CountingLinker(), store=store)
    assert len(list(store.glob("block_*.npz"))) == 7
    CountingLinker.calls, CountingLinker.fail_after = 0, None
    res = run(g, CountingLinker(), store=store)
    active = res.stats["active_blocks"]
    assert CountingLinker.calls == active - 7
    assert res.stats["resumed_blocks"] == 7 and res.stats["solved_blocks"] == active - 7
    assert res.graph.equals(reference.graph)
    # a finished store is reloaded entirely: nothing solved again
    CountingLinker.calls = 0
    again = run(g, CountingLinker(), store=store)
    assert CountingLinker.calls == 0 and again.graph.equals(reference.graph)
    # resume=False starts afresh
    fresh = run(g, CountingLinker(), store=store, config=BlockwiseConfig(resume=False))
    assert CountingLinker.calls == active and fresh.graph.equals(reference.graph)


def test_store_of_another_problem_is_refused(tmp_path):
    store = tmp_path / "store"
    run(small_graph(4, frames=4, cells=60), TinyILP(), store=store)
    with pytest.raises(CheckpointError, match="different problem"):
        run(small_graph(5, frames=4, cells=60), TinyILP(), store=store)


def test_dask_and_processes_executors_match_serial():
    distributed = pytest.importorskip("distributed")
    g = small_graph(6, frames=6, cells=200)
    linker = make_linker("greedy")
    serial = run(g, linker)
    with distributed.LocalCluster(
        processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as client:
        dask_res = run(g, linker, executor=client)
        assert dask_res.stats["executor"] == "dask"
        assert dask_res.graph.equals(serial.graph)
        assert client.status == "running"  # a passed client stays open
        # a scheduler address: the executor connects its own client (and closes it)
        by_address = run(g, linker, executor=cluster.scheduler_address)
        assert by_address.stats["executor"] == "dask"
        assert by_address.graph.equals(serial.graph)
    proc = run(g, TinyILP(), executor="processes", n_workers=2)
    assert proc.stats["executor"] == "processes"
    assert proc.graph.equals(run(g, TinyILP()).graph)
    assert proc.stats["max_worker_peak_rss_mb"] > 0


def test_lost_edges_are_reported(caplog):
    g = small_graph(7, frames=4, cells=100)
    with caplog.at_level(logging.WARNING, logger="celltrack.solve.blockwise.api"):
        res = run(g, make_linker("greedy"), block_size=(2, None, 30, 30), context=(1, None, 2, 2))
    assert res.stats["lost_edges"] > 0
    assert "increase the context" in caplog.text
    res.graph.validate(forest=True)


def test_invalid_inputs():
    g = small_graph(8, frames=3, cells=50)
    with pytest.raises(ConfigError, match="context along t"):
        BlockwiseConfig(block_size=(2, None, 10, 10), context=(0, 0, 5, 5))
    with pytest.raises(ConfigError):
        run(g, TinyILP(), block_size=(2, None, -1, 10))
    with pytest.raises(InvalidInputError, match="executor"):
        run(g, TinyILP(), executor="gpu-cluster")
    with pytest.raises(InvalidInputError, match="TrackGraph"):
        solve_blockwise({"id": []}, TinyILP())
    with pytest.raises(InvalidInputError, match="linker"):
        run(g, object())


def test_empty_graph_gives_empty_forest():
    res = run(TrackGraph.empty(), TinyILP())
    assert res.graph.num_nodes == 0 and res.stats["active_blocks"] == 0
    with pytest.raises(ConfigError):
        run(small_graph(8, frames=3, cells=50), TinyILP(), block_size=5)


# --------------------------------------------------------------------------- signature


def test_config_positionally_by_keyword_or_as_dict_gives_one_result():
    # the pipeline passes its BlockwiseConfig as the third positional argument; before the
    # redesign that slot was ``block_size`` and every such run failed with a ConfigError
    g = small_graph(10, frames=4, cells=60)
    linker = make_linker("greedy")
    fields = {"block_size": (2, None, 30.0, 30.0), "context": (1, None, 10.0, 10.0)}
    cfg = BlockwiseConfig(**fields, executor="serial", progress=False)
    positional = solve_blockwise(g, linker, cfg)
    keyword = solve_blockwise(g, linker, config=cfg)
    as_dict = solve_blockwise(g, linker, fields, executor="serial", progress=False)
    assert positional.stats["num_blocks"] > 1
    assert positional.graph.equals(keyword.graph) and positional.graph.equals(as_dict.graph)
    assert positional.parameters["config"]["block_size"] == [2, None, 30.0, 30.0]
    assert positional.parameters["linker"]["kind"] == "greedy"
    # greedy has an objective: the stitched selection is scored with it
    emask, nmask = selection_of(g, positional.graph)
    assert positional.objective == pytest.approx(linker.objective_of(g, emask, nmask))


def test_options_are_keyword_only_and_config_is_checked():
    g = small_graph(10, frames=4, cells=60)
    with pytest.raises(TypeError):
        solve_blockwise(g, "greedy", None, "serial")  # executor is keyword-only
    with pytest.raises(ConfigError, match="BlockwiseConfig"):
        solve_blockwise(g, "greedy", (2, None, 30.0, 30.0))
    with pytest.raises(ConfigError):
        solve_blockwise(g, "greedy", {"block_sise": (2, None, 30.0, 30.0)})


def test_store_and_progress_keywords_override_the_config(tmp_path):
    g = small_graph(11, frames=4, cells=60)
    cfg = BlockwiseConfig(block_size=(2, None, 30.0, 30.0), context=(1, None, 10.0, 10.0),
                          executor="serial", progress=True)
    res = solve_blockwise(g, "greedy", cfg, store=tmp_path / "blocks", progress=False)
    assert res.parameters["config"]["progress"] is False
    assert res.parameters["config"]["store"] == str(tmp_path / "blocks")
    assert len(list((tmp_path / "blocks").glob("block_*.npz"))) == res.stats["active_blocks"]


def test_a_linker_must_subclass_linker():
    class DuckLinker:  # has link and config, but bypasses validation and provenance
        config = TinyILPConfig()

        def link(self, g):  # pragma: no cover - never called
            raise AssertionError

    with pytest.raises(InvalidInputError, match="subclass"):
        run(small_graph(8, frames=3, cells=50), DuckLinker())
