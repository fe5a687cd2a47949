"""Benchmark 1 (speed): the tree ILP on random candidate graphs, celltrack vs the HiGHS LP
relaxation alone vs motile + SCIP vs laptrack, same inputs, one run.

The input imitates a Linajea candidate graph: a population of nuclei doing a random walk
(with misses and false positives, ``per_frame`` detections in every frame), each
detection carrying a noisy predicted parent position; candidate edges join a node to the
detections of the previous frame within θ µm of its predicted parent position, θ chosen
for ≈ 2.3 candidate parents per child (100 × 200 → ≈ 20k nodes, ≈ 46k edges). Costs are
the :class:`~celltrack.solve.ilp.ILPConfig` defaults (Linajea mouse values + split cost).

Sizes: ``--sizes 20k,200k`` (default) are 100 and 1000 frames of ``--per-frame`` 200
detections; ``--million`` adds 10⁶ nodes (5000 frames). For every size the table shows the
celltrack ILP's total time (proven optimum), the HiGHS LP relaxation alone on the same
model (``scipy.optimize.linprog(method="highs")`` on every variable and row, no presolve of
ours: the cost any LP-based exact method pays at least once) and their ratio, whether
CP-SAT ran and which argument proved the optimum. motile + SCIP (≈ 5 min at 20k) and
laptrack run at the smallest size only, unless ``--skip-motile`` / ``--skip-laptrack``.

Run::

    python benchmarks/bench_ilp.py                      # 20k and 200k, motile limit 600 s
    python benchmarks/bench_ilp.py --skip-motile        # without motile + SCIP
    python benchmarks/bench_ilp.py --sizes 20k --frames-override 20 --motile-timeout 60

Prints a table and writes ``benchmarks/results/ilp.json``.
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
        "method": "celltrack ILP",
        "time_s": wall,
        "objective": result.objective,
        "bound": result.bound,
        "status": result.status.value,
        "proof": result.stats.get("proof"),
        "cpsat_ran": "cpsat_solve" in result.timings,
        "edges_selected": result.graph.num_edges,
        "divisions": int(result.graph.divisions().size),
        "timings": result.timings,
        "stats": result.stats,
    }


def run_lp_alone(graph: TrackGraph, cfg: ILPConfig, presolve: bool = True) -> dict:
    """The HiGHS LP relaxation of the whole model (every variable and row), timed alone.

    ``presolve``: HiGHS' default (on) is the baseline; off is reported too.
    """
    from scipy.optimize import linprog

    from celltrack.solve.ilp import build_model

    t0 = time.perf_counter()
    model = build_model(LinkingProblem.from_graph(graph), cfg)
    c = model.c.astype(np.float64)
    A = model.A.astype(np.float64)
    b = model.b.astype(np.float64)
    bounds = np.column_stack([model.lb, model.ub]).astype(np.float64)
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = linprog(c, A_ub=A, b_ub=b, bounds=bounds, method="highs",
                  options={"time_limit": float(cfg.time_limit_s) * 10, "presolve": presolve})
    wall = time.perf_counter() - t0
    x = res.x if res.x is not None else np.zeros(0)
    return {
        "method": "HiGHS LP alone" + ("" if presolve else " (no presolve)"),
        "time_s": wall,
        "build_s": build,
        "objective": None if res.x is None else float(res.fun) / cfg.cost_scale,
        "bound": None,
        "status": "optimal" if res.status == 0 else str(res.message),
        "fractional_values": int(np.sum(np.abs(x - np.rint(x)) > 1e-6)),
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


#: named sizes → frames (at the default 200 detections per frame)
SIZES = {"20k": 100, "200k": 1000, "1m": 5000}


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="20k,200k",
                        help="comma-separated sizes among " + ", ".join(SIZES))
    parser.add_argument("--million", action="store_true", help="add the 10^6-node size")
    parser.add_argument("--frames-override", type=int, default=None,
                        help="use this many frames instead (one size)")
    parser.add_argument("--per-frame", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cost-scale", type=float, default=1e6)
    parser.add_argument("--time-limit", type=float, default=600.0)
    parser.add_argument("--motile-timeout", type=float, default=600.0)
    parser.add_argument("--skip-motile", action="store_true")
    parser.add_argument("--skip-laptrack", action="store_true")
    parser.add_argument("--skip-lp", action="store_true", help="skip the LP-alone baseline")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "ilp.json"))
    args = parser.parse_args()

    names = [n.strip() for n in args.sizes.split(",") if n.strip()]
    if args.million and "1m" not in names:
        names.append("1m")
    frames_list = (
        [("custom", args.frames_override)] if args.frames_override
        else [(n, SIZES[n]) for n in names]
    )
    cfg = ILPConfig(
        **LINAJEA_COSTS,
        num_workers=args.threads,
        time_limit_s=args.time_limit,
        cost_scale=args.cost_scale,
    )
    linker = ILPLinker(cfg)
    # the solvers' imports (OR-Tools, scipy.optimize: ≈ 1–2 s) are a one-time cost per
    # process; paid here, outside every timing, as for the LP-alone baseline
    t0 = time.perf_counter()
    import celltrack.solve.ilp.phases  # noqa: F401
    import_s = time.perf_counter() - t0
    runs = []
    for index, (name, frames) in enumerate(frames_list):
        graph = random_candidate_graph(frames, args.per_frame, seed=args.seed)
        print(f"[{name}] {graph.num_nodes} nodes, {graph.num_edges} edges, θ = "
              f"{graph.attrs['theta_um']:.1f} µm, {args.threads} threads", flush=True)
        rows = [run_celltrack(graph, cfg)]
        print(f"  celltrack {rows[0]['time_s']:.2f} s ({rows[0]['status']}, proof "
              f"{rows[0]['proof']})", flush=True)
        if not args.skip_lp:
            rows.append(run_lp_alone(graph, cfg))
            print(f"  LP alone {rows[-1]['time_s']:.2f} s", flush=True)
            rows.append(run_lp_alone(graph, cfg, presolve=False))
            print(f"  LP alone, no presolve {rows[-1]['time_s']:.2f} s", flush=True)
        if index == 0 and not args.skip_motile:
            rows.append(run_motile(graph, cfg, args.motile_timeout, args.threads))
        if index == 0 and not args.skip_laptrack:
            rows.append(run_laptrack(graph, linker))
        lp_time = rows[1]["time_s"] if not args.skip_lp else None
        runs.append({
            "size": name,
            "input": {"frames": frames, "per_frame": args.per_frame, "seed": args.seed,
                      "nodes": graph.num_nodes, "edges": graph.num_edges,
                      "theta_um": graph.attrs["theta_um"]},
            "celltrack_over_lp": None if lp_time is None else rows[0]["time_s"] / lp_time,
            "celltrack_over_lp_no_presolve": (
                None if args.skip_lp else rows[0]["time_s"] / rows[2]["time_s"]
            ),
            "results": rows,
        })
        del graph

    print()
    print(f"{'size':6s} {'method':30s} {'time (s)':>9s} {'× LP':>6s} {'objective':>14s} "
          f"{'bound':>14s}  status")
    for run in runs:
        lp = next((r for r in run["results"] if r["method"] == "HiGHS LP alone"), None)
        for row in run["results"]:
            ratio = None
            if lp is not None and row.get("time_s") is not None:
                ratio = row["time_s"] / lp["time_s"]
            extra = ""
            if row["method"] == "celltrack ILP":
                extra = f", proof {row['proof']}, CP-SAT {'ran' if row['cpsat_ran'] else 'not run'}"
            print(
                f"{run['size']:6s} {row['method']:30s} {fmt(row.get('time_s'), '9.2f')} "
                f"{fmt(ratio, '6.2f')} {fmt(row.get('objective'), '14.3f')} "
                f"{fmt(row.get('bound'), '14.3f')}  {row['status']}{extra}"
            )
    record = {
        "benchmark": "ilp speed (Benchmark 1)",
        "config": cfg.model_dump(mode="json"),
        "threads": args.threads,
        "solver_import_s": import_s,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "load_average_at_end": list(os.getloadavg())},
        "runs": runs,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(record, indent=2, default=str))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
