"""Exact LP certificate (integer arithmetic, no float margin) and the component-wise LP."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import sparse

from celltrack.solve.ilp import ILPConfig, ILPLinker, build_model
from celltrack.solve.ilp.lp import (
    component_groups,
    components,
    exact_dual,
    exact_sum,
    float_margin,
    solve_lp,
)
from celltrack.solve.ilp.presolve import restrict
from celltrack.solve.ilp.problem import LinkingProblem


def _crosscheck():
    """The random-graph helpers of ``test_ilp_crosscheck`` (importlib mode: load by path)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).with_name("test_ilp_crosscheck.py")
    spec = importlib.util.spec_from_file_location("_ilp_crosscheck_helpers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_helpers = _crosscheck()
COSTS, random_candidates = _helpers.COSTS, _helpers.random_candidates


def test_exact_sum_does_not_overflow():
    values = np.full(1000, 2**61, np.int64)
    values[::2] = -(2**60)
    assert exact_sum(values) == sum(int(v) for v in values)
    assert exact_sum(np.zeros(0, np.int64)) == 0
    assert exact_sum(np.array([3, -5], np.int64)) == -2


def _tiny_model(seed):
    rng = np.random.default_rng(seed)
    nv, nr = 7, 6
    A = sparse.csr_matrix(rng.integers(-2, 3, (nr, nv)) * (rng.random((nr, nv)) < 0.5))
    b = rng.integers(0, 3, nr)
    c = rng.integers(-(10**9), 10**9, nv)
    return c, A.astype(np.int64), b.astype(np.int64)


@pytest.mark.parametrize("seed", range(5))
def test_exact_dual_is_a_valid_bound_for_any_multipliers(seed):
    c, A, b = _tiny_model(seed)
    best = min(
        int(c @ z)
        for z in (np.array(bits) for bits in itertools.product([0, 1], repeat=c.size))
        if np.all(A @ z <= b)
    )
    rng = np.random.default_rng(seed)
    for mu in (np.zeros(A.shape[0]), rng.uniform(0, 1e9, A.shape[0]), rng.uniform(0, 1e-3, 6)):
        ex = exact_dual(c, A, b, mu)
        assert ex.ceiling <= best
        # the integers are exact: recompute in Python integers
        mu_int = [int(m) for m in ex.mu]
        dense = A.toarray()
        r = [
            ex.denominator * int(c[j]) + sum(int(dense[i, j]) * mu_int[i] for i in range(6))
            for j in range(c.size)
        ]
        assert [int(v) for v in ex.reduced] == r
        assert ex.bound == -sum(m * int(bi) for m, bi in zip(mu_int, b)) + sum(min(0, v) for v in r)


def _old_margin(model):
    """The float safety margin the LP certificate used before (integer units)."""
    rest = restrict(model, model.lb, model.ub)
    lp = solve_lp(rest, model.num_vars, 60.0)
    c, A, b = rest.c.astype(float), rest.A.astype(float), rest.b.astype(float)
    mu = lp.mu
    magnitude = np.abs(c).sum() + (abs(A).T @ mu).sum() + mu @ np.abs(b)
    return float_margin(magnitude), lp


def test_large_cost_scale_is_proven_by_the_lp_certificate_without_cpsat():
    """With a huge cost_scale the old float margin (> 1 integer unit) hid the optimum."""
    g = random_candidates(4, 6, radius=4.0, seed=1)
    cfg = ILPConfig(**{**COSTS, "split_cost": 0.4}, cost_scale=1e12)
    model = build_model(LinkingProblem.from_graph(g), cfg)
    margin, lp = _old_margin(model)
    assert lp.integral
    assert margin > 1.0  # the old certificate could not reach the integral LP optimum
    result = ILPLinker(cfg).link(g)
    assert result.status.value == "optimal"
    assert result.stats["proof"] == "lp_certificate"
    assert "cpsat_solve" not in result.timings
    reference = ILPLinker(cfg.model_copy(update={"use_lp": False})).link(g)
    assert reference.stats["proof"] == "cpsat"
    assert result.objective == reference.objective
    assert result.bound == result.objective


def test_fractional_lp_still_goes_to_cpsat():
    g = random_candidates(4, 6, radius=4.0, seed=0)
    cfg = ILPConfig(**{**COSTS, "split_cost": -0.1}, local_hops=0)
    result = ILPLinker(cfg).link(g)
    assert result.stats["lp_integral"] is False
    assert result.stats["proof"] == "cpsat"
    assert "cpsat_solve" in result.timings
    reference = ILPLinker(cfg.model_copy(update={"use_lp": False})).link(g)
    assert result.objective == reference.objective
    assert result.status.value == "optimal"


def test_components_and_groups():
    # two independent blocks and an isolated variable
    A = sparse.csr_matrix(np.array([[1, -1, 0, 0, 0], [0, 0, 1, 1, 0], [0, 0, 0, 1, 0]], np.int64))
    count, var_label, row_label = components(A, 5)
    assert count == 3
    assert var_label[0] == var_label[1] != var_label[2] == var_label[3] != var_label[4]
    assert row_label[0] == var_label[0] and row_label[1] == row_label[2] == var_label[2]
    groups = component_groups(var_label, count, batch=2)
    assert sorted(np.concatenate(groups).tolist()) == [0, 1, 2]
    assert all(np.bincount(var_label, minlength=count)[g].sum() <= 2 for g in groups)


@pytest.mark.parametrize("seed", range(3))
def test_component_lp_equals_monolithic_lp_and_solve(seed):
    g = random_candidates(5, 10, radius=2.5, seed=seed)
    cfg = ILPConfig(**{**COSTS, "split_cost": (0.4, -0.1, 0.05)[seed]})
    model = build_model(LinkingProblem.from_graph(g), cfg)
    rest = restrict(model, model.lb, model.ub)
    count, _, _ = components(rest.A, rest.c.size)
    assert count > 1
    whole = solve_lp(rest, model.num_vars, 60.0, split=False)
    parts = solve_lp(rest, model.num_vars, 60.0, split=True)
    assert whole.bound == parts.bound
    assert np.isclose(model.c @ whole.values, model.c @ parts.values, rtol=0, atol=1e-3)
    split = ILPLinker(cfg).link(g)
    mono = ILPLinker(cfg.model_copy(update={"lp_components": False})).link(g)
    assert split.status.value == mono.status.value == "optimal"
    assert split.objective == mono.objective
    # random float costs: the optimum is unique, so the same forest
    assert _edges(split) == _edges(mono)
    assert split.graph.num_nodes == mono.graph.num_nodes


def _edges(result):
    e = result.graph.edges
    return sorted(zip(e["source"].tolist(), e["target"].tolist()))


@pytest.mark.parametrize("seed", range(3))
def test_windowed_lp_certifies_the_lp_bound_and_the_same_optimum(seed):
    g = random_candidates(14, 8, radius=3.0, seed=seed)
    split = (0.4, -0.1, 0.05)[seed]
    cfg = ILPConfig(**{**COSTS, "split_cost": split}, lp_window_frames=0)
    windowed = cfg.model_copy(update={"lp_window_frames": 3, "lp_window_overlap": 2})
    model = build_model(LinkingProblem.from_graph(g), cfg)
    rest = restrict(model, model.lb, model.ub)
    from celltrack.solve.ilp.windows import variable_frames

    frames = variable_frames(model, LinkingProblem.from_graph(g))[rest.free]
    whole = solve_lp(rest, model.num_vars, 60.0, split=False)
    parts = solve_lp(rest, model.num_vars, 60.0, frames=frames, window=3, overlap=2, seam=1)
    assert parts.info["lp_windows"] == 5
    assert parts.bound <= whole.bound  # always a valid bound …
    assert parts.bound >= whole.bound - 1  # … and here the LP's (seams repaired)
    plain = ILPLinker(cfg).link(g)
    result = ILPLinker(windowed).link(g)
    assert result.stats["lp_windows"] == 5
    assert result.status.value == plain.status.value == "optimal"
    assert result.objective == plain.objective
    assert _edges(result) == _edges(plain)


@pytest.mark.parametrize("seed", range(2))
def test_windows_of_a_growing_graph_are_balanced_and_keep_the_optimum(seed):
    g = random_candidates(14, np.arange(2, 16), radius=3.0, seed=seed)  # 2 … 15 per frame
    cfg = ILPConfig(**{**COSTS, "split_cost": 0.1}, division_angle_weight=1.0,
                    lp_window_frames=0)
    windowed = cfg.model_copy(update={"lp_window_frames": 4, "lp_window_overlap": 1})
    plain = ILPLinker(cfg).link(g)
    result = ILPLinker(windowed).link(g)
    assert result.stats["lp_windows"] == 4
    assert result.status.value == plain.status.value == "optimal"
    assert result.objective == pytest.approx(plain.objective, abs=1e-6)
    assert _edges(result) == _edges(plain)


def _division_costs(split: float, **settings) -> ILPConfig:
    """Division-aware costs whose windowed LP leaves seams to repair on the graphs below."""
    return ILPConfig(
        **{**COSTS, "split_cost": split},
        division_angle_weight=2.0,
        division_separation_weight=0.2,
        short_daughter_cost=0.8,
        persistence_frames=1,
        **settings,
    )


@pytest.mark.parametrize(("seed", "split"), [(2, -0.3), (22, 0.1)])
def test_windows_that_leave_a_gap_fall_back_to_one_lp_before_cpsat(seed, split):
    g = random_candidates(14, 8, radius=3.0, seed=seed)
    cfg = _division_costs(
        split,
        local_hops=0,  # no local repair of the seams: the stitched windows leave a gap
        lp_window_frames=0,
    )
    windowed = cfg.model_copy(
        update={"lp_window_frames": 3, "lp_window_overlap": 1, "lp_seam_frames": 1}
    )
    plain = ILPLinker(cfg).link(g)
    result = ILPLinker(windowed).link(g)
    assert result.stats["lp_windows_fallback"] is True
    assert "lp_windows_fallback" not in plain.stats
    assert result.stats["proof"] == plain.stats["proof"] == "lp_certificate"  # no CP-SAT
    assert result.objective == pytest.approx(plain.objective, abs=1e-6)
    assert _edges(result) == _edges(plain)


@pytest.mark.parametrize("seed", range(2))
def test_windows_apply_to_division_and_persistence_blocks(seed):
    g = random_candidates(14, 8, radius=3.0, seed=seed)
    cfg = ILPConfig(
        **{**COSTS, "split_cost": -0.2},
        division_separation_weight=0.1,
        division_angle_weight=1.0,
        short_daughter_cost=0.5,
        short_track_cost=0.3,
        persistence_frames=2,
        lp_window_frames=0,
    )
    model = build_model(LinkingProblem.from_graph(g), cfg)
    assert {"pair", "short_daughter", "short_daughter_cut", "short_track"} <= set(model.blocks)
    windowed = cfg.model_copy(update={"lp_window_frames": 3, "lp_window_overlap": 2})
    plain = ILPLinker(cfg).link(g)
    result = ILPLinker(windowed).link(g)
    assert result.stats["lp_windows"] >= 2
    assert result.status.value == plain.status.value == "optimal"
    assert result.objective == plain.objective
    assert _edges(result) == _edges(plain)


def test_windows_are_skipped_for_blocks_without_frames():
    from dataclasses import replace

    from celltrack.solve.ilp.windows import variable_frames

    problem = LinkingProblem.from_graph(random_candidates(14, 8, radius=3.0, seed=0))
    model = build_model(problem, ILPConfig(**COSTS))
    assert variable_frames(model, problem) is not None
    end = model.num_vars
    unknown = replace(model, blocks={**model.blocks, "unframed": slice(end, end)})
    assert variable_frames(unknown, problem) is None


def test_local_steps_stop_when_the_time_budget_is_spent():
    from celltrack.solve.ilp import phases

    g = random_candidates(14, 8, radius=3.0, seed=2)
    cfg = _division_costs(
        -0.3, lp_window_frames=3, lp_window_overlap=1, lp_seam_frames=1, time_limit_s=5.0
    )
    plain = ILPLinker(cfg).link(g)
    assert plain.stats["local_variables"] > 0  # within the budget the local steps run
    search = phases.build(g, cfg, [])
    search.start -= cfg.time_limit_s  # as if the LP had used the whole budget
    out = phases.run(search)
    assert search.stats["local_out_of_time"] is True
    assert "local_variables" not in search.stats
    assert out.status.value == "optimal"  # CP-SAT still gets its second and proves it
    objective = search.model.objective(out.z) / cfg.cost_scale
    assert objective == pytest.approx(plain.objective, abs=1e-6)
