"""TrackGraph scale benchmark: build, validate and query graphs of up to 10⁶ nodes / 2·10⁶ edges.

Compares with building the same graph in networkx (the representation most tracking tools
use). Run: ``python benchmarks/bench_trackgraph.py [--nodes 1000000]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import networkx as nx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import peak_rss_mb, print_table, timed, write_json

from celltrack import TrackGraph


def random_candidate_columns(n_nodes: int, n_frames: int, seed: int = 0):
    """Nodes spread over frames, each node linked to two nodes of the next frame (≈ 2N edges)."""
    rng = np.random.default_rng(seed)
    per = n_nodes // n_frames
    t = np.repeat(np.arange(n_frames), per)
    pos = rng.random((t.size, 3)) * 100
    ids = rng.permutation(t.size).astype(np.int64) * 3 + 7  # unsorted, sparse ids
    src_rows = np.arange(t.size - per)
    tgt_a = src_rows + per
    tgt_b = (src_rows - src_rows % per) + per + (src_rows + 1) % per
    source = np.concatenate([ids[src_rows], ids[src_rows]])
    target = np.concatenate([ids[tgt_a], ids[tgt_b]])
    nodes = {
        "id": ids,
        "t": t,
        "z": pos[:, 0],
        "y": pos[:, 1],
        "x": pos[:, 2],
        "score": rng.random(t.size),
    }
    edges = {"source": source, "target": target, "distance": rng.random(source.size)}
    return nodes, edges


def run(n_nodes: int, n_frames: int) -> dict:
    nodes, edges = random_candidate_columns(n_nodes, n_frames)
    build, g = timed(lambda: TrackGraph(nodes, edges, validate=False))
    validate, _ = timed(lambda: TrackGraph(nodes, edges).validate())
    lineages, _ = timed(g.lineages)
    sub_time, sub = timed(lambda: g.subgraph(edges=g.edges["distance"] < 0.5))
    tracklets, _ = timed(lambda: sub.tracklets())
    frame, _ = timed(lambda: [g.nodes_at(t) for t in range(n_frames)])
    row = {
        "nodes": g.num_nodes,
        "edges": g.num_edges,
        "build_s": build,
        "build+validate_s": validate,
        "lineages_s": lineages,
        "subgraph_s": sub_time,
        "tracklets_s": tracklets,
        "nodes_at_all_frames_s": frame,
    }
    if n_nodes <= 200_000:

        def to_nx():
            d = nx.DiGraph()
            d.add_nodes_from(
                (i, {"t": t, "z": z, "y": y, "x": x})
                for i, t, z, y, x in zip(*(nodes[k].tolist() for k in ("id", "t", "z", "y", "x")))
            )
            d.add_edges_from(zip(edges["source"].tolist(), edges["target"].tolist()))
            return d

        nx_time, _ = timed(to_nx)
        row["networkx_build_s"] = nx_time
        row["networkx/celltrack"] = nx_time / validate
    row["peak_rss_mb"] = peak_rss_mb()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=1_000_000)
    parser.add_argument("--frames", type=int, default=100)
    args = parser.parse_args()
    sizes = sorted({10_000, 100_000, args.nodes})
    rows = [run(n, args.frames) for n in sizes]
    print_table(rows, "TrackGraph scale (seconds; ≈2 edges per node)")
    write_json("trackgraph", {"rows": rows})


if __name__ == "__main__":
    main()
