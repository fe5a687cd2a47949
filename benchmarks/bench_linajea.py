"""ELEPHANT's models vs Linajea's on the same movies, points and links, side by side.

Run ``python benchmarks/bench_linajea.py [--seeds 1 2] [--movies default large_motion]``.
For every synthetic 3D+t movie and seed the same sparse annotations (10 points in one or
two frames, 20 approved links; :func:`celltrack.synth.sample_annotations`) train

- **elephant**: the ellipsoid detection U-Net (prior + batch) and the backward flow,
- **linajea**: the cell indicator and the movement vectors (separate networks),
- **linajea_joint**: one network with both heads (Linajea's joint model),

through :class:`celltrack.pipeline.Pipeline` with the CPU presets; the spots are linked by
the demo's ILP. Per run the table gives DET, TRA, division F1 (py-ctcmetrics-equal
metrics of :func:`celltrack.eval.evaluate`), the parent-position error on every
ground-truth link (mean µm, and as a ratio to "no motion", which assumes the nucleus did
not move), and the training and prediction seconds. Writes
``benchmarks/results/linajea.json``. Settings were tuned on seed 0; report other seeds.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from _common import print_table, write_json

from celltrack.config.indicator import IndicatorConfig
from celltrack.config.movement import MovementConfig
from celltrack.flow import parent_errors
from celltrack.model_kinds import predict_parent_positions
from celltrack.pipeline import Pipeline, PipelineConfig
from celltrack.solve.stage import field_of_view, link_stage
from celltrack.synth import SynthConfig, make_embryo, sample_annotations

#: Movies of the comparison.
MOVIES = {"default": SynthConfig, "large_motion": SynthConfig.large_motion}


def method_config(method: str, out: Path) -> PipelineConfig:
    """The pipeline config of one method (CPU presets, ILP of the demo, no figures)."""
    from celltrack.demo import DEMO_ILP, demo_config

    if method == "elephant":
        cfg = demo_config(out, quick=False)
    else:
        joint = method == "linajea_joint"
        cfg = PipelineConfig(
            preset="cpu",
            detection=IndicatorConfig.cpu(),
            motion=MovementConfig.cpu(joint=joint),
            linker=DEMO_ILP,
        )
    return cfg.model_copy(
        update={"use_motion": "always", "progress": False, "output": cfg.output.model_copy(
            update={"directory": str(out), "figures": False})}
    )


def run_one(method: str, movie: str, seed: int, work: Path) -> dict:
    """Train, detect, predict parents, link and score one method on one movie."""
    data = make_embryo(MOVIES[movie](seed=seed))
    ann = sample_annotations(data.gt, n_nuclei=10, n_links=20, rng=seed)
    out = work / f"{method}-{movie}-{seed}"
    pipeline = Pipeline(method_config(method, out), out)
    images, vs = pipeline.movie(data.image, data.voxel_size)
    start = time.perf_counter()
    spots = pipeline.spots_for(images, vs, ann)
    t = pipeline.timings
    train_s = sum(t.get(k, 0.0) for k in ("train_detection", "train_motion", "train_joint"))
    predict_s = t.get("detect", 0.0) + t.get("predict_motion", 0.0)
    candidates = pipeline.config.candidates.model_copy(
        update={"field_of_view_um": field_of_view(images.shape, vs)}
    )
    result = link_stage(spots, ann, candidates=candidates, linker=pipeline.config.linker)
    scores = pipeline.evaluate(data.gt, result.graph)
    motion_stage = "train_joint" if "train_joint" in pipeline._stages else "train_motion"
    model = (
        pipeline.train_joint(images, vs, ann)
        if motion_stage == "train_joint"
        else pipeline.train_motion(images, vs, ann)
    )
    parents = predict_parent_positions(model, images, data.gt, vs, pipeline.config.motion)
    errors = parent_errors(parents, data.gt)
    div = scores.divisions
    return {
        "movie": movie,
        "seed": seed,
        "method": method,
        "DET": scores.det,
        "TRA": scores.tra,
        "div_F1": float("nan") if div is None else div.f1,
        "parent_err_um": float(errors.flow.mean()),
        "no_motion_um": float(errors.no_motion.mean()),
        "err_ratio": errors.ratio,
        "spots": int(spots.num_nodes),
        "train_s": train_s,
        "predict_s": predict_s,
        "wall_s": time.perf_counter() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--movies", nargs="+", choices=list(MOVIES), default=list(MOVIES))
    parser.add_argument(
        "--methods",
        nargs="+",
        choices=["elephant", "linajea", "linajea_joint"],
        default=["elephant", "linajea", "linajea_joint"],
    )
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for movie in args.movies:
            for seed in args.seeds:
                for method in args.methods:
                    rows.append(run_one(method, movie, seed, Path(tmp)))
                    print_table(rows[-1:], f"{movie} seed {seed}: {method}")
    print_table(rows, "ELEPHANT vs Linajea models (same points and links; ILP linking)")
    write_json("linajea", {"rows": rows, "seeds": args.seeds, "threads": args.threads})


if __name__ == "__main__":
    main()
