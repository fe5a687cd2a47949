"""All linkers agree on unambiguous cases (well separated cells, short steps, clear divisions)."""

from __future__ import annotations

import numpy as np
import pytest

from celltrack.graph import TrackGraph
from celltrack.graph.candidates import CandidateConfig, build_candidates
from celltrack.solve.base import make_linker


def _unambiguous_movie(seed: int, lineages: int = 4, frames: int = 6):
    """Lineages ≥ 60 µm apart, steps ≤ 1.5 µm, one division per lineage (daughters 3 µm
    from the mother). Returns (spots, true edge set, field of view)."""
    rng = np.random.default_rng(seed)
    t, pos, edges = [], [], []
    next_id = 0
    for lin in range(lineages):
        start = np.array([50.0, 60.0 + 70.0 * lin, 60.0 + 70.0 * (lin % 2)])
        split_at = int(rng.integers(1, frames - 2))
        cells = [(next_id, start)]
        t.append(0)
        pos.append(start)
        next_id += 1
        for frame in range(1, frames):
            new_cells = []
            for cid, p in cells:
                if frame == split_at + 1 and len(cells) == 1:
                    axis = rng.normal(size=3)
                    axis *= 3.0 / np.linalg.norm(axis)
                    kids = [p + axis, p - axis]
                else:
                    step = rng.normal(size=3)
                    kids = [p + step * (1.5 / np.linalg.norm(step)) * rng.uniform(0.2, 1.0)]
                for k in kids:
                    t.append(frame)
                    pos.append(k)
                    edges.append((cid, next_id))
                    new_cells.append((next_id, k))
                    next_id += 1
            cells = new_cells
    spots = TrackGraph.from_positions(np.asarray(t), np.asarray(pos), score=np.full(len(t), 0.9))
    fov = ((0.0, 100.0), (0.0, 400.0), (0.0, 200.0))
    return spots, set(edges), fov


def _edge_set(graph: TrackGraph) -> set[tuple[int, int]]:
    return set(zip(graph.edges["source"].tolist(), graph.edges["target"].tolist()))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_greedy_and_flow_nn_agree_with_truth(seed):
    spots, truth, fov = _unambiguous_movie(seed)
    cand = build_candidates(spots, CandidateConfig(max_distance_um=10, field_of_view_um=fov))
    results = {
        "greedy": make_linker("greedy").link(cand),
        "greedy-displacement": make_linker("greedy", second_child="displacement").link(cand),
        "flow_nn": make_linker("flow_nn", search_distance_um=10).link(cand),
        "flow_nn-spots": make_linker("flow_nn", search_distance_um=10).link(spots),
    }
    for name, res in results.items():
        assert res.ok, name
        assert _edge_set(res.graph) == truth, name
        assert res.graph.num_nodes == spots.num_nodes, name
        assert len(res.graph.divisions()) == 4, name


@pytest.mark.parametrize("seed", [0, 1])
def test_ilp_agrees_with_greedy_and_flow_nn(seed):
    spots, truth, fov = _unambiguous_movie(seed)
    cand = build_candidates(spots, CandidateConfig(max_distance_um=10, field_of_view_um=fov))
    ilp = make_linker("ilp", time_limit_s=20.0, num_workers=1).link(cand)
    greedy = make_linker("greedy").link(cand)
    flow_nn = make_linker("flow_nn", search_distance_um=10).link(cand)
    assert ilp.status.value == "optimal"
    assert _edge_set(ilp.graph) == _edge_set(greedy.graph) == _edge_set(flow_nn.graph) == truth
    assert set(ilp.graph.ids.tolist()) == set(spots.ids.tolist())
