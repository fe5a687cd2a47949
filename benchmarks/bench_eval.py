"""Benchmark — scoring speed: celltrack.eval vs traccuracy on the same pair of graphs.

A ground-truth lineage forest of about 20,000 nodes over 100 frames is drawn by a
branching random walk (``celltrack.eval._synthetic.random_forest``); the prediction is a
perturbed copy with every kind of error (jitter, missed / extra nodes, gaps, missing /
extra / swapped links, false, missed and shifted divisions). Both libraries score the
same input in one run:

- celltrack: :func:`celltrack.eval.evaluate` (point matching, AOGM/DET/TRA/LNK,
  divisions with a 1-frame tolerance, *and* Linajea's error counts and segment curve);
- traccuracy: ``TrackingGraph`` construction from networkx + ``run_metrics`` with
  ``PointMatcher`` + ``CTCMetrics`` + ``DivisionMetrics(max_frame_buffer=1)``
  (after a small warm-up run so numba compilation is not timed).

The numbers must agree exactly (every AOGM component, DET, TRA, LNK and the division
counts); the script exits with status 1 otherwise.

Run: ``python benchmarks/bench_eval.py [--frames 100] [--start 200] [--seed 0]``.
Writes ``benchmarks/results/eval.json``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from pathlib import Path

import networkx as nx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import peak_rss_mb, print_table, write_json

from celltrack.eval import evaluate
from celltrack.eval._synthetic import perturb, random_forest
from celltrack.graph import TrackGraph

THRESHOLD_UM = 10.0
TOLERANCE = 1


def to_networkx(graph: TrackGraph) -> nx.DiGraph:
    """Plain networkx graph with t, z, y, x node attributes (nodes in id order)."""
    g = nx.DiGraph()
    order = np.argsort(graph.ids)
    cols = [np.asarray(graph.nodes[c])[order].tolist() for c in ("id", "t", "z", "y", "x")]
    g.add_nodes_from((i, {"t": t, "z": z, "y": y, "x": x}) for i, t, z, y, x in zip(*cols))
    g.add_edges_from(zip(graph.edges["source"].tolist(), graph.edges["target"].tolist()))
    return g


def run_traccuracy(gt_nx: nx.DiGraph, pred_nx: nx.DiGraph) -> tuple[dict, dict]:
    import logging

    from traccuracy import TrackingGraph, run_metrics
    from traccuracy.matchers import PointMatcher
    from traccuracy.metrics import CTCMetrics, DivisionMetrics

    logging.getLogger("traccuracy").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gt = TrackingGraph(gt_nx, frame_key="t", location_keys=("z", "y", "x"))
        pred = TrackingGraph(pred_nx, frame_key="t", location_keys=("z", "y", "x"))
        results, _ = run_metrics(
            gt, pred, PointMatcher(threshold=THRESHOLD_UM),
            [CTCMetrics(), DivisionMetrics(max_frame_buffer=TOLERANCE)],
        )
    return results[0]["results"], results[1]["results"][f"Frame Buffer {TOLERANCE}"]


def compare(s, ctc: dict, div: dict) -> list[tuple[str, float, float]]:
    """(name, celltrack, traccuracy) for every shared number."""
    a, d = s.aogm, s.divisions
    return [
        ("FN nodes", a.fn_nodes, ctc["fn_nodes"]),
        ("FP nodes", a.fp_nodes, ctc["fp_nodes"]),
        ("NS", a.ns, ctc["ns_nodes"]),
        ("ED (FP edges)", a.ed, ctc["fp_edges"]),
        ("EA (FN edges)", a.ea, ctc["fn_edges"]),
        ("EC (wrong semantics)", a.ec, ctc["ws_edges"]),
        ("AOGM", a.aogm, ctc["AOGM"]),
        ("DET", s.det, ctc["DET"]),
        ("TRA", s.tra, ctc["TRA"]),
        ("LNK", s.lnk, ctc["LNK"]),
        ("TP divisions", d.tp, div["True Positive Divisions"]),
        ("FP divisions", d.fp, div["False Positive Divisions"]),
        ("FN divisions", d.fn, div["False Negative Divisions"]),
        ("division F1", d.f1, div["Division F1"]),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--start", type=int, default=200, help="cells in frame 0")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    gt = random_forest(args.frames, args.start, p_divide=0.01, p_die=0.01,
                       extent_um=(200.0, 600.0, 600.0), seed=args.seed)
    pred = perturb(gt, jitter_um=1.5, p_shift_div=0.2, seed=args.seed + 1)
    print(f"gt: {gt.num_nodes} nodes / {gt.num_edges} edges / {gt.divisions().size} divisions; "
          f"pred: {pred.num_nodes} nodes / {pred.num_edges} edges; {args.frames} frames")

    # warm-up both (numba compilation in traccuracy's LAP solver; imports)
    small_gt = random_forest(5, 20, seed=99)
    small_pred = perturb(small_gt, seed=98)
    run_traccuracy(to_networkx(small_gt), to_networkx(small_pred))
    evaluate(small_gt, small_pred, THRESHOLD_UM, division_tolerance=TOLERANCE)

    t0 = time.perf_counter()
    scores = evaluate(gt, pred, THRESHOLD_UM, division_tolerance=TOLERANCE)
    t_ct = time.perf_counter() - t0

    gt_nx, pred_nx = to_networkx(gt), to_networkx(pred)
    t0 = time.perf_counter()
    ctc, div = run_traccuracy(gt_nx, pred_nx)
    t_tr = time.perf_counter() - t0

    rows, agree = [], True
    for name, mine, theirs in compare(scores, ctc, div):
        same = (mine == theirs) or (
            isinstance(mine, float) and math.isclose(mine, theirs, rel_tol=0, abs_tol=1e-12)
        ) or (isinstance(mine, float) and math.isnan(mine) and math.isnan(theirs))
        agree &= bool(same)
        rows.append({"quantity": name, "celltrack": mine, "traccuracy": theirs,
                     "agree": "yes" if same else "NO"})
    print_table(rows, "Same input, same numbers")
    ratio = t_tr / t_ct
    timing = [{
        "nodes gt/pred": f"{gt.num_nodes}/{pred.num_nodes}",
        "celltrack s": t_ct,
        "traccuracy s": t_tr,
        "speed-up": ratio,
    }]
    print_table(timing, "Wall-clock time of one scoring run (celltrack also computes Linajea)")
    print(f"\ncelltrack is {ratio:.1f}x faster than traccuracy; numbers agree: {agree}")
    print("\n" + scores.table())
    write_json("eval", {
        "frames": args.frames,
        "gt_nodes": gt.num_nodes,
        "gt_edges": gt.num_edges,
        "pred_nodes": pred.num_nodes,
        "pred_edges": pred.num_edges,
        "threshold_um": THRESHOLD_UM,
        "division_tolerance": TOLERANCE,
        "celltrack_seconds": t_ct,
        "traccuracy_seconds": t_tr,
        "speedup": ratio,
        "numbers_agree": agree,
        "comparison": rows,
        "celltrack_scores": scores.to_dict(),
        "peak_rss_mb": peak_rss_mb(),
    })
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
