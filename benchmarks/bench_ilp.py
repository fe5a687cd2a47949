"""Benchmark 1 (speed): the tree ILP on a random candidate graph, celltrack vs motile + SCIP
vs laptrack, same input, one run.

The input imitates a Linajea candidate graph: a population of nuclei doing a random walk
(with misses and false positives, ``per_frame`` detections in every frame), each
detection carrying a noisy predicted parent position; candidate edges join a node to the
detections of the previous frame within θ µm of its predicted parent position, θ chosen
for ≈ 2.3 candidate parents per child (100 × 200 → ≈ 20k nodes, ≈ 46k edges). Costs are
the :class:`~celltrack.solve.ilp.ILPConfig` defaults (Linajea mouse values + split cost).

Run::

    python benchmarks/bench_ilp.py                      # full benchmark, motile limit 600 s
    python benchmarks/bench_ilp.py --frames 20 --motile-timeout 60

Prints a table (time, objective, bound, status per method) and writes
``benchmarks/results/ilp.json``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import time
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from celltrack.graph import TrackGraph
from celltrack.io.atomic import atomic_write_text
from celltrack.solve.ilp import ILPConfig, ILPLinker
from celltrack.solve.ilp.problem import LinkingProblem


def random_candidate_graph(
    n_frames: int = 100,
    per_frame: int = 200,
    *,
    seed: int = 0,
    box_um: tuple[float, float, float] = (60.0, 300.0, 300.0),
    parents_per_node: float = 1.95,
    motion_um: float = 6.0,
    miss_rate: float = 0.1,
    pred_noise_um: float = 3.0,
) -> TrackGraph:
    """Random Linajea-like candidate graph (see module docstring); positions in µm."""
    rng = np.random.default_rng(seed)
    box = np.asarray(box_um, np.float64)
    theta = (parents_per_node / (per_frame / np.prod(box)) / (4.0 / 3.0 * np.pi)) ** (1 / 3)
    cells = rng.uniform(0, box, (per_frame, 3))
    t_all, pos_all, pred_all, score_all = [], [], [], []
    for t in range(n_frames):
        before = cells
        cells = np.mod(cells + rng.normal(0, motion_um / np.sqrt(3), cells.shape), box)
        seen = rng.random(per_frame) > miss_rate
        det, parent = cells[seen], before[seen]
        pred = parent + rng.normal(0, pred_noise_um / np.sqrt(3), det.shape)
        n_fp = per_frame - det.shape[0]
        fp = rng.uniform(0, box, (n_fp, 3))
        fp_pred = fp + rng.normal(0, motion_um, fp.shape)
        t_all.append(np.full(per_frame, t))
        pos_all.append(np.vstack([det, fp]))
        pred_all.append(np.vstack([pred, fp_pred]))
        score_all.append(
            np.concatenate([rng.uniform(0.5, 1.0, det.shape[0]), rng.uniform(0.2, 0.7, n_fp)])
        )
    t = np.concatenate(t_all)
    pos, pred = np.vstack(pos_all), np.vstack(pred_all)
    src, tgt = [], []
    for f in range(1, n_frames):
        a = np.flatnonzero(t == f - 1)
        b = np.flatnonzero(t == f)
        lists = cKDTree(pos[a]).query_ball_point(pred[b], theta)
        counts = np.array([len(x) for x in lists])
        src.append(a[np.concatenate([np.asarray(x, np.int64) for x in lists])])
        tgt.append(np.repeat(b, counts))
    src, tgt = np.concatenate(src), np.concatenate(tgt)
    graph = TrackGraph(
        {
            "id": np.arange(t.size),
            "t": t,
            "z": pos[:, 0],
            "y": pos[:, 1],
            "x": pos[:, 2],
            "score": np.concatenate(score_all),
            "parent_z": pred[:, 0],
            "parent_y": pred[:, 1],
            "parent_x": pred[:, 2],
        },
        {
            "source": src,
            "target": tgt,
            "distance": np.linalg.norm(pos[src] - pos[tgt], axis=1),
            "pred_distance": np.linalg.norm(pos[src] - pred[tgt], axis=1),
            "frame_gap": np.ones(src.size, np.int64),
        },
    )
    graph.attrs["roi_um"] = [[0, n_frames - 1], *[[0.0, float(b)] for b in box]]
    graph.attrs["theta_um"] = float(theta)
    return graph


def run_celltrack(graph: TrackGraph, cfg: ILPConfig) -> dict:
    t0 = time.perf_counter()
    result = ILPLinker(cfg).link(graph)
    wall = time.perf_counter() - t0
    return {
        "method": "celltrack ILP (CP-SAT)",
        "time_s": wall,
        "objective": result.objective,
        "bound": result.bound,
        "status": result.status.value,
        "edges_selected": result.graph.num_edges,
        "divisions": int(result.graph.divisions().size),
        "timings": result.timings,
        "stats": result.stats,
    }


def _motile_worker(graph: TrackGraph, cfg: ILPConfig, timeout: float, threads: int, queue) -> None:
    import ilpy
    import motile
    from motile.constraints import MaxChildren, MaxParents
    from motile.costs import EdgeSelectedCost, NodeAppearCost, NodeSelectedCost, NodeSplitCost

    t0 = time.perf_counter()
    problem = LinkingProblem.from_graph(graph)
    free = problem.near_border(cfg.border_distance_um)
    nxg = graph.to_networkx()
    for node, flag in zip(graph.ids.tolist(), free.tolist()):
        nxg.nodes[node]["free_start"] = flag
    solver = motile.Solver(motile.TrackGraph(nxg, frame_attribute="t"))
    solver.add_cost(
        NodeSelectedCost(weight=cfg.node_score_weight, attribute="score", constant=cfg.node_offset)
    )
    solver.add_cost(EdgeSelectedCost(weight=cfg.edge_weight, attribute=cfg.edge_feature))
    solver.add_cost(NodeAppearCost(constant=cfg.appear_cost, ignore_attribute="free_start"))
    solver.add_cost(NodeSplitCost(constant=cfg.split_cost))
    solver.add_constraint(MaxParents(1))
    solver.add_constraint(MaxChildren(2))
    build = time.perf_counter() - t0
    solution = solver.solve(timeout=timeout, num_threads=threads, backend=ilpy.Preference.Scip)
    wall = time.perf_counter() - t0
    queue.put(
        {
            "method": "motile + SCIP",
            "time_s": wall,
            "build_s": build,
            "objective": float(solution.get_value()),
            "bound": None,
            "status": str(solution.status),
            "edges_selected": len(solver.get_selected_subgraph().edges),
        }
    )


def run_motile(graph: TrackGraph, cfg: ILPConfig, timeout: float, threads: int) -> dict:
    try:
        import motile  # noqa: F401
    except ImportError:
        return {"method": "motile + SCIP", "status": "not installed"}
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    t0 = time.perf_counter()
    proc = ctx.Process(target=_motile_worker, args=(graph, cfg, timeout, threads, queue))
    proc.start()
    hard = 2 * timeout + 120  # model building in Python is part of motile's cost
    proc.join(hard)
    if proc.is_alive():
        proc.terminate()
        proc.join()
        return {
            "method": "motile + SCIP",
            "time_s": time.perf_counter() - t0,
            "objective": None,
            "bound": None,
            "status": f"did not finish in {hard:.0f} s (killed)",
        }
    return queue.get() if not queue.empty() else {"method": "motile + SCIP", "status": "crashed"}


def run_laptrack(graph: TrackGraph, linker: ILPLinker) -> dict:
    try:
        from laptrack import LapTrack
    except ImportError:
        return {"method": "laptrack", "status": "not installed"}
    theta2 = graph.attrs["theta_um"] ** 2
    frames = np.unique(graph.t)
    rows = [np.flatnonzero(graph.t == f) for f in frames]
    pos = graph.positions
    t0 = time.perf_counter()
    lt = LapTrack(cutoff=theta2, splitting_cutoff=theta2, gap_closing_cutoff=False)
    tree = lt.predict([pos[r] for r in rows])
    wall = time.perf_counter() - t0
    pairs = {
        (int(rows[a[0]][a[1]]), int(rows[b[0]][b[1]]))
        for a, b in tree.edges()
    }
    pairs = {(s, t) if graph.t[s] < graph.t[t] else (t, s) for s, t in pairs}
    src, tgt = graph.edge_index()
    chosen = np.array([(s, t) in pairs for s, t in zip(src.tolist(), tgt.tolist())])
    objective = None
    try:
        objective = linker.objective_of(graph, chosen)
    except ValueError:
        pass
    return {
        "method": "laptrack (LAP, own costs)",
        "time_s": wall,
        "objective": objective,
        "bound": None,
        "status": "heuristic",
        "edges_selected": len(pairs),
        "edges_outside_candidates": int(len(pairs) - chosen.sum()),
    }


#: Linajea-style costs (mouse-paper weights, with an explicit split cost) for Benchmark 1.
LINAJEA_COSTS = dict(
    node_offset=-0.25,
    node_score_weight=-0.02,
    edge_weight=0.01,
    appear_cost=0.55,
    split_cost=0.1,
    disappear_cost=0.0,
    border_distance_um=10.0,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--per-frame", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cost-scale", type=float, default=1e6)
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--motile-timeout", type=float, default=600.0)
    parser.add_argument("--skip-motile", action="store_true")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "ilp.json"))
    args = parser.parse_args()

    graph = random_candidate_graph(args.frames, args.per_frame, seed=args.seed)
    cfg = ILPConfig(
        **LINAJEA_COSTS,
        num_workers=args.threads,
        time_limit_s=args.time_limit,
        cost_scale=args.cost_scale,
    )
    linker = ILPLinker(cfg)
    print(f"input: {graph.num_nodes} nodes, {graph.num_edges} edges, θ = "
          f"{graph.attrs['theta_um']:.1f} µm, {args.threads} threads")
    rows = [run_celltrack(graph, cfg)]
    if not args.skip_motile:
        rows.append(run_motile(graph, cfg, args.motile_timeout, args.threads))
    rows.append(run_laptrack(graph, linker))

    def fmt(v, spec):
        return "-" if v is None else format(v, spec)

    print(f"{'method':28s} {'time (s)':>9s} {'objective':>12s} {'bound':>12s}  status")
    for row in rows:
        print(
            f"{row['method']:28s} {fmt(row.get('time_s'), '9.2f')} "
            f"{fmt(row.get('objective'), '12.3f')} {fmt(row.get('bound'), '12.3f')}  "
            f"{row['status']}"
        )
    record = {
        "benchmark": "ilp speed (Benchmark 1)",
        "input": {
            "frames": args.frames,
            "per_frame": args.per_frame,
            "seed": args.seed,
            "nodes": graph.num_nodes,
            "edges": graph.num_edges,
            "theta_um": graph.attrs["theta_um"],
        },
        "config": cfg.model_dump(mode="json"),
        "threads": args.threads,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "results": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(record, indent=2, default=str))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
