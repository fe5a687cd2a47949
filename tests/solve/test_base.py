"""The Linker base class: one set of input checks, timing, provenance, infeasibility, registry."""

from __future__ import annotations

import subprocess
import sys
from typing import Literal

import numpy as np
import pytest
from pydantic import Field

import celltrack
from celltrack.config import Config
from celltrack.errors import ConfigError, GraphError, InvalidInputError, ShapeError
from celltrack.graph import TrackGraph
from celltrack.graph.candidates import CandidateConfig, build_candidates
from celltrack.solve import (
    FlowNNLinker,
    GreedyConfig,
    GreedyLinker,
    ILPConfig,
    ILPLinker,
    Infeasible,
    Linker,
    LinkResult,
    SolveStatus,
    linker_config,
    linker_kinds,
    make_linker,
    register_linker,
)
from celltrack.solve import base as solve_base

BUILT_IN = {
    "greedy": lambda: GreedyLinker(),
    "flow_nn": lambda: FlowNNLinker(),
    "ilp": lambda: ILPLinker(ILPConfig(border_distance_um=0.0, num_workers=1)),
}


def _candidates() -> TrackGraph:
    """Two cells over three frames (one divides at t=1), with candidate edges."""
    t = [0, 1, 2, 2]
    pos = [[0, 10, 10], [0, 10, 11], [0, 10, 9], [0, 10, 14]]
    spots = TrackGraph.from_positions(t, pos, score=np.array([0.9, 0.9, 0.9, 0.9]))
    return build_candidates(spots, CandidateConfig(max_distance_um=6.0))


def _two_parents() -> TrackGraph:
    """Nodes 0 and 1 at t=0, both candidate parents of node 2 at t=1."""
    nodes = {"id": [0, 1, 2], "t": [0, 0, 1], "z": [0.0, 0.0, 0.0], "y": [0.0, 0.0, 0.0],
             "x": [0.0, 1.0, 0.5], "score": [0.9, 0.9, 0.9]}
    edges = {"source": [0, 1], "target": [2, 2], "distance": [0.5, 0.5],
             "pred_distance": [0.5, 0.5], "frame_gap": [1, 1]}
    return TrackGraph(nodes, edges)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("kind", sorted(BUILT_IN))
def test_every_linker_runs_the_same_input_checks(kind):
    linker = BUILT_IN[kind]()
    with pytest.raises(InvalidInputError, match=r"TrackGraph\.from_positions"):
        linker.link({"id": [0]})
    with pytest.raises(GraphError, match="check the detection step"):
        linker.link(TrackGraph.empty())
    bad_node = _candidates()
    bad_node.set_node_column("pin", np.array([0, 1, 2, -1]))
    with pytest.raises(InvalidInputError, match=r"set_node_column\('pin'"):
        linker.link(bad_node)
    bad_edge = _candidates()
    bad_edge.set_edge_column("pin", np.full(bad_edge.num_edges, 0.5))
    with pytest.raises(InvalidInputError, match=r"set_edge_column\('pin'"):
        linker.link(bad_edge)
    with pytest.raises(InvalidInputError, match="options it accepts"):
        linker.link(_candidates(), no_such_option=1)


def test_cost_column_checks_name_the_fix():
    cand = _candidates()
    with pytest.raises(InvalidInputError, match=r"set GreedyConfig\.cost_feature"):
        GreedyLinker(GreedyConfig(cost_feature="learned")).link(cand)
    with pytest.raises(InvalidInputError, match=r"set ILPConfig\.edge_feature"):
        ILPLinker(ILPConfig(edge_feature="learned")).link(cand)
    nan = cand.copy()
    nan.set_edge_column("pred_distance", np.full(cand.num_edges, np.nan))
    for linker in (GreedyLinker(), ILPLinker()):
        with pytest.raises(InvalidInputError, match="fill them"):
            linker.link(nan)
    # only the greedy linker needs costs >= 0 (the ILP prices any sign)
    neg = cand.copy()
    neg.set_edge_column("pred_distance", -np.ones(cand.num_edges))
    with pytest.raises(InvalidInputError, match="choose another column"):
        GreedyLinker().link(neg)
    assert ILPLinker(ILPConfig(num_workers=1)).link(neg).ok


def test_roi_hint_and_config_checks():
    cand = _candidates()
    cand.attrs["roi_um"] = [[0, 2], [0, 1]]
    with pytest.raises(ShapeError, match="roi_um"):
        ILPLinker().link(cand)
    with pytest.raises(InvalidInputError, match="hint_edges"):
        ILPLinker().link(_candidates(), hint_edges=np.ones(1, bool))
    with pytest.raises(InvalidInputError, match="needs a GreedyConfig"):
        GreedyLinker(ILPConfig())
    with pytest.raises(InvalidInputError, match="needs an ILPConfig"):
        ILPLinker(GreedyConfig())


# --------------------------------------------------------------------------- template


@pytest.mark.parametrize("kind", sorted(BUILT_IN))
def test_template_stamps_timings_and_provenance(kind):
    linker = BUILT_IN[kind]()
    result = linker.link(_candidates())
    assert result.ok and result.graph.num_edges >= 2
    assert result.parameters == {
        "config": linker.config.model_dump(mode="json"),
        "celltrack_version": celltrack.__version__,
    }
    phases = {k: v for k, v in result.timings.items() if k != "total"}
    assert phases, "each linker reports its own phases"
    assert all(v >= 0 for v in phases.values())
    assert result.timings["total"] >= sum(phases.values()) - 1e-9


@pytest.mark.parametrize("kind", sorted(BUILT_IN))
def test_infeasibility_is_reported_one_way(kind):
    # two pinned parents for one child: no lineage forest satisfies the pins
    graph = _two_parents()
    graph.set_edge_column("pin", np.int8([1, 1]))
    result = BUILT_IN[kind]().link(graph)
    assert result.status is SolveStatus.INFEASIBLE and not result.ok
    assert "parent" in result.stats["infeasible_reason"]
    assert result.objective is None and result.bound is None
    assert result.graph.num_nodes == 0 and "score" in result.graph.node_columns
    assert result.timings["total"] > 0 and result.parameters["config"]["kind"] == kind


def test_objective_is_optional():
    cand = _candidates()
    greedy = GreedyLinker()
    res = greedy.link(cand)
    chosen = np.isin(cand.edges["target"], res.graph.edges["target"]) & np.isin(
        cand.edges["source"], res.graph.edges["source"]
    )
    assert greedy.has_objective and greedy.objective_of(cand, chosen) == pytest.approx(
        res.objective
    )
    with pytest.raises(InvalidInputError, match="not a lineage forest"):
        greedy.objective_of(_two_parents(), np.ones(2, bool))
    with pytest.raises(InvalidInputError, match="shape"):
        greedy.objective_of(cand, chosen[:1])
    flow = FlowNNLinker()
    assert not flow.has_objective
    with pytest.raises(InvalidInputError, match="has no objective"):
        flow.objective_of(cand, chosen)


# --------------------------------------------------------------------------- registry


class NearestConfig(Config):
    """A user's linker: link every node to the closest node of the previous frame."""

    kind: Literal["nearest_test"] = Field("nearest_test", description="linker kind")
    max_distance_um: float = Field(5.0, gt=0, description="longest link (µm)")


class NearestLinker(Linker):
    """Keeps, per child, its shortest candidate edge (≤ max_distance_um, ≤ 2 children)."""

    config_class = NearestConfig

    def _link(self, candidates: TrackGraph, *, strict: bool = False) -> LinkResult:
        if strict:
            raise Infeasible("strict mode admits nothing", {"nodes": candidates.num_nodes})
        dist = np.asarray(candidates.edges["distance"], float)
        tgt = candidates.edge_index()[1]
        order = np.lexsort((dist, tgt))
        first = order[np.r_[True, tgt[order][1:] != tgt[order][:-1]]]
        keep = np.zeros(candidates.num_edges, bool)
        keep[first[dist[first] <= self.config.max_distance_um]] = True
        return LinkResult(candidates.subgraph(edges=keep), SolveStatus.HEURISTIC,
                          timings={"solve": 0.0})


@pytest.fixture
def nearest_registered():
    register_linker("nearest_test", NearestConfig, NearestLinker)
    yield
    solve_base._REGISTRY.pop("nearest_test", None)


def test_user_linker_runs_through_the_registry(nearest_registered):
    assert "nearest_test" in linker_kinds()
    cfg = linker_config({"kind": "nearest_test", "max_distance_um": 2.0})
    assert isinstance(cfg, NearestConfig) and cfg.max_distance_um == 2.0
    assert linker_config(cfg) is cfg and linker_config("nearest_test") == NearestConfig()
    for spec in ("nearest_test", {"kind": "nearest_test"}, NearestConfig()):
        linker = make_linker(spec)
        assert isinstance(linker, NearestLinker)
    result = make_linker("nearest_test", max_distance_um=3.0).link(_candidates())
    assert result.status is SolveStatus.HEURISTIC and result.graph.num_edges == 3
    assert result.parameters["config"] == {"kind": "nearest_test", "max_distance_um": 3.0}
    assert result.timings["total"] > 0
    strict = make_linker("nearest_test").link(_candidates(), strict=True)
    assert strict.status is SolveStatus.INFEASIBLE
    assert strict.stats == {"nodes": 4, "infeasible_reason": "strict mode admits nothing"}
    with pytest.raises(GraphError):  # the base's checks apply to the user's linker too
        make_linker("nearest_test").link(TrackGraph.empty())


def test_linker_config_errors_list_the_kinds():
    with pytest.raises(ConfigError, match="known kinds: flow_nn, greedy, ilp"):
        linker_config("tree")
    with pytest.raises(ConfigError, match="Did you mean 'greedy'"):
        linker_config({"kind": "gredy"})
    with pytest.raises(ConfigError, match="not a registered linker config"):
        linker_config(NearestConfig())
    with pytest.raises(ConfigError, match="kind name"):
        linker_config(3)
    with pytest.raises(ConfigError, match="max_children"):
        linker_config("greedy", max_children=5)
    assert linker_config(GreedyConfig(), max_cost=4.0).max_cost == 4.0


class _NoKind(Config):
    radius_um: float = Field(1.0, description="radius (µm)")


class _Abstract(Linker):
    config_class = NearestConfig


class _OtherConfigLinker(NearestLinker):
    config_class = GreedyConfig


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("", NearestConfig, NearestLinker), "non-empty string"),
        (("nearest_test", dict, NearestLinker), "must subclass celltrack.config.Config"),
        (("nearest_test", _NoKind, NearestLinker), "no kind field"),
        (("other", NearestConfig, NearestLinker), r"kind: Literal\['other'\]"),
        (("nearest_test", NearestConfig, object), "must subclass celltrack.solve.Linker"),
        (("nearest_test", NearestConfig, _Abstract), "implement _link"),
        (("nearest_test", NearestConfig, _OtherConfigLinker), "set `config_class = NearestConfig`"),
    ],
)
def test_register_linker_checks_its_arguments(args, message):
    with pytest.raises(ConfigError, match=message):
        register_linker(*args)
    assert "nearest_test" not in solve_base._REGISTRY and "other" not in solve_base._REGISTRY


# --------------------------------------------------------------------------- import cost


def _modules_after(code: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"import sys; {code}; print(' '.join(sorted(sys.modules)))"],
        check=True, capture_output=True, text=True,
    )
    return out.stdout.split()


HEAVY = ("ortools", "scipy.optimize", "scipy.spatial", "scipy.sparse", "pandas", "torch")


def test_import_and_configuring_load_no_solver():
    code = (
        "import celltrack.solve as s; s.make_linker('ilp'); s.make_linker('flow_nn'); "
        "s.linker_config({'kind': 'greedy'}); s.BlockwiseConfig()"
    )
    after_graph = set(_modules_after("import celltrack.graph"))
    after_solve = set(_modules_after(code))
    heavy = sorted(m for m in after_solve - after_graph if m.startswith(HEAVY))
    assert heavy == [], f"importing celltrack.solve loads {heavy}"
    assert not any(m.startswith(("ortools", "scipy.optimize")) for m in after_solve)


def test_linking_loads_the_solver_it_needs():
    code = (
        "import numpy as np; from celltrack.graph import TrackGraph; "
        "from celltrack.solve import ILPLinker; "
        "g = TrackGraph.from_positions([0, 1], [[0, 0, 0], [0, 0, 1]]); "
        "g = TrackGraph(dict(g.nodes), {'source': [0], 'target': [1], 'pred_distance': [1.0]}); "
        "assert ILPLinker().link(g).ok"
    )
    assert "ortools.sat.python.cp_model" in _modules_after(code)
