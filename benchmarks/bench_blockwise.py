"""Benchmark 2 (scale): block-wise solving of synthetic candidate graphs up to 10⁶ nodes.

Each size runs in a fresh Python process (clean peak-memory numbers): a 3D+t synthetic
candidate graph (coherent random walks, divisions, misses, false detections; edges by
cKDTree within 8 µm) of ~10⁴ nodes per frame and 10, 30, 100 frames is solved block-wise
with the CP-SAT ILP on local worker processes. Reported per size: wall time of the solve,
time per 10⁵ nodes, peak RSS of the driver (graph + O(N) decision arrays), peak RSS of the
workers (the largest any block reached; bounded by the block size), block counts.

Usage::

    python benchmarks/bench_blockwise.py                 # 10 / 30 / 100 frames, 2 workers
    python benchmarks/bench_blockwise.py --frames 4 8    # quick
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import peak_rss_mb, print_table, write_json

CELLS_PER_FRAME = 9700  # + 5 % false, − 2 % missed ≈ 10⁴ nodes per frame
BLOCK = (5, 108.0, 108.0, 108.0)  # frames, µm: 2 × 2 × 2 spatial blocks over the ~210 µm box
CONTEXT = (1, 10.0, 10.0, 10.0)  # >= the 8 µm candidate radius and the 1-frame gap


def one(frames: int, workers: int, linker_kind: str, seed: int) -> dict:
    """Generate and solve one size in this process; return the measurements."""
    from celltrack.solve import make_linker
    from celltrack.solve.blockwise import BlockwiseConfig, solve_blockwise
    from celltrack.solve.blockwise.synthetic import synthetic_candidates

    start = time.perf_counter()
    graph = synthetic_candidates(frames, CELLS_PER_FRAME, ndim=3, seed=seed)
    t_gen = time.perf_counter() - start
    rss_graph = peak_rss_mb()
    if linker_kind == "ilp":
        from celltrack.solve.ilp import ILPConfig

        linker = make_linker(ILPConfig(num_workers=1, time_limit_s=60.0))
    else:
        linker = make_linker(linker_kind)
    config = BlockwiseConfig(
        block_size=BLOCK,
        context=CONTEXT,
        executor="processes",
        n_workers=workers,
        start_method="forkserver",  # workers do not inherit the driver's graph (clean RSS)
        compute_objective=False,
        progress=False,
    )
    start = time.perf_counter()
    result = solve_blockwise(graph, linker, config=config)
    t_solve = time.perf_counter() - start
    result.graph.validate(forest=True)
    blocks = result.stats["blocks"]
    true = graph.nodes["true"]
    return {
        "frames": frames,
        "nodes": graph.num_nodes,
        "edges": graph.num_edges,
        "blocks": result.stats["active_blocks"],
        "levels": result.stats["num_levels"],
        "max_block_nodes": result.stats["max_block_nodes"],
        "generate_s": t_gen,
        "solve_s": t_solve,
        "s_per_1e5_nodes": t_solve / (graph.num_nodes / 1e5),
        "block_s_sum": sum(b["seconds"] for b in blocks),
        "driver_peak_rss_mb": peak_rss_mb(),
        "driver_rss_after_graph_mb": rss_graph,
        "worker_peak_rss_mb": result.stats["max_worker_peak_rss_mb"],
        "selected_nodes": result.graph.num_nodes,
        "selected_edges": result.graph.num_edges,
        "true_nodes": int(true.sum()),
        "failed_blocks": len(result.stats["failed_blocks"]),
        "repairs": result.stats["repairs"],
        "timings": result.timings,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[10, 30, 100])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--linker", default="ilp", help="linker kind: ilp (default) or greedy")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(one(args.one, args.workers, args.linker, args.seed)))
        return
    rows, full = [], []
    for frames in args.frames:
        cmd = [sys.executable, __file__, "--one", str(frames), "--workers", str(args.workers),
               "--linker", args.linker, "--seed", str(args.seed)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        res = json.loads(out.stdout.strip().splitlines()[-1])
        full.append(res)
        rows.append({
            "nodes": res["nodes"],
            "edges": res["edges"],
            "blocks": res["blocks"],
            "solve_s": res["solve_s"],
            "s/1e5 nodes": res["s_per_1e5_nodes"],
            "driver MiB": res["driver_peak_rss_mb"],
            "driver MiB/1e5": res["driver_peak_rss_mb"] / (res["nodes"] / 1e5),
            "worker MiB": res["worker_peak_rss_mb"],
            "max block nodes": res["max_block_nodes"],
        })
        print_table(rows[-1:], f"{frames} frames")
    print_table(rows, f"Block-wise {args.linker}, {args.workers} worker processes, block {BLOCK}, "
                f"context {CONTEXT}")
    write_json("blockwise", {
        "benchmark": "Benchmark 2: block-wise solving scale",
        "linker": args.linker,
        "workers": args.workers,
        "block_size": BLOCK,
        "context": CONTEXT,
        "cells_per_frame": CELLS_PER_FRAME,
        "rows": full,
    })


if __name__ == "__main__":
    main()
