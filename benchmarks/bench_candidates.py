"""Candidate-graph and heuristic-linker scale benchmark (10⁵ and 10⁶ nodes).

Synthetic movie: 100 frames of randomly walking cells (3 µm steps, ~25 µm spacing) with
a noisy "flow" prediction of each cell's parent position (node columns parent_z/y/x).
Measures ``build_candidates`` (radius 15 µm around the predicted parent), the greedy
linker on the resulting graph and the flow-NN linker (which works on the spots).

Run: ``python benchmarks/bench_candidates.py [--nodes 100000 1000000] [--no-flow-nn]``.
Writes ``benchmarks/results/candidates.json``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import peak_rss_mb, print_table, timed, write_json

from celltrack.graph import TrackGraph
from celltrack.graph.candidates import CandidateConfig, build_candidates
from celltrack.solve.flow_nn import FlowNNConfig, FlowNNLinker
from celltrack.solve.greedy import GreedyLinker

FRAMES = 100


def synthetic_movie(n_nodes: int, seed: int = 0) -> TrackGraph:
    """``n_nodes`` spots over 100 frames: random walks plus a noisy parent prediction."""
    rng = np.random.default_rng(seed)
    per = n_nodes // FRAMES
    side = (per * 25.0**3) ** (1 / 3)  # ~25 µm between cells
    start = rng.uniform(0, side, (per, 3))
    steps = rng.normal(0, 3.0 / np.sqrt(3), (FRAMES, per, 3))
    steps[0] = 0
    pos = start[None] + np.cumsum(steps, axis=0)  # (T, per, 3)
    prev = np.concatenate([pos[:1], pos[:-1]])
    pred = prev + rng.normal(0, 1.0, prev.shape)
    pred[0] = np.nan
    t = np.repeat(np.arange(FRAMES), per)
    flat = pos.reshape(-1, 3)
    p = pred.reshape(-1, 3)
    return TrackGraph.from_positions(
        t, flat, parent_z=p[:, 0], parent_y=p[:, 1], parent_x=p[:, 2], score=np.ones(t.size)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--no-flow-nn", action="store_true", help="skip the flow-NN linker")
    args = parser.parse_args()
    rows = []
    for n in args.nodes:
        spots = synthetic_movie(n)
        cfg = CandidateConfig(max_distance_um=15.0)
        t_cand, cand = timed(lambda s=spots, c=cfg: build_candidates(s, c))
        t_greedy, res = timed(lambda c=cand: GreedyLinker().link(c))
        row = {
            "nodes": spots.num_nodes,
            "edges": cand.num_edges,
            "edges_per_node": cand.num_edges / spots.num_nodes,
            "candidates_s": t_cand,
            "greedy_s": t_greedy,
            "greedy_rounds": res.stats["rounds"],
            "greedy_links": res.graph.num_edges,
        }
        if not args.no_flow_nn:
            t_fnn, fres = timed(
                lambda s=spots: FlowNNLinker(FlowNNConfig(search_distance_um=15.0)).link(s)
            )
            row.update(flow_nn_s=t_fnn, flow_nn_links=fres.graph.num_edges)
        row["peak_rss_mb"] = peak_rss_mb()
        rows.append(row)
        print_table([row], f"{n} nodes")
    print_table(rows, "candidate graph + heuristic linkers")
    write_json("candidates", {"frames": FRAMES, "radius_um": 15.0, "rows": rows})


if __name__ == "__main__":
    main()
