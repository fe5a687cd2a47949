"""Flow benchmark: parent-position error vs number of annotated links, and throughput.

1. Accuracy. On the synthetic large-motion embryo (``SynthConfig.large_motion``, 2D+t
   so that it trains on a CPU in about a minute per run; nuclei move ≈ 9 µm per frame,
   more than half their spacing, with reversing translation, rotation and divisions), a
   CPU-preset FlowUNet is trained from ``n`` approved links (``sample_annotations``) and
   used to predict every nucleus's parent position over all frames. The table gives the
   mean distance to the true parent with the flow and when assuming no motion.
2. Throughput of ``predict_flow`` (one frame pair, tiled) for the default and the CPU
   preset, and of ``displace``.

Usage: ``python benchmarks/bench_flow.py [--links 5 10 20 30] [--epochs 80]
[--volume 24 128 128] [--threads 2] [--three-d]``. Writes ``benchmarks/results/flow.json``
(``flow_3d.json`` with ``--three-d``, 3D data of the preset's own size).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, peak_rss_mb, print_table, timed, write_json

from celltrack.flow import (
    FlowConfig,
    FlowLossConfig,
    FlowTrainConfig,
    build_flow_model,
    displace,
    parent_errors,
    predict_flow,
    predict_parents,
    train_flow,
)
from celltrack.graph import TrackGraph
from celltrack.synth import SynthConfig, make_embryo, sample_annotations

#: The acceptance scenario (same as tests/flow/test_acceptance.py); 3D uses the preset's
#: own (24, 96, 96) volume of (2, 1, 1) µm voxels.
SYNTH_2D = {"shape": (1, 128, 128), "voxel_size": (1.0, 1.0, 1.0), "n_nuclei": 40, "max_nuclei": 80}
ANNOTATED_FRAMES = [2, 5, 8]


def flow_config(epochs: int, three_d: bool) -> FlowConfig:
    """CPU preset used for the accuracy runs (crops (1, 48, 48) in 2D, (8, 48, 48) in 3D)."""
    return FlowConfig.cpu(
        loss=FlowLossConfig(ssim_weight=0.2, smooth_weight=0.1),
        train=FlowTrainConfig(
            epochs=epochs,
            crops_per_frame=8,
            batch_size=4,
            crop_shape=(8 if three_d else 1, 48, 48),
            learning_rate=2e-3,
            final_lr_fraction=0.05,
        ),
    )


def accuracy(links_list: list[int], epochs: int, seed: int, three_d: bool) -> list[dict]:
    synth = {} if three_d else SYNTH_2D
    data = make_embryo(SynthConfig.large_motion(seed=seed, **synth))
    gt, vs = data.gt, data.voxel_size
    rows = []
    for n in links_list:
        ann = sample_annotations(gt, n_nuclei=0, frames=ANNOTATED_FRAMES, n_links=n, rng=seed)
        cfg = flow_config(epochs, three_d)
        start = time.perf_counter()
        result = train_flow(data.image, ann, vs, cfg)
        train_s = time.perf_counter() - start
        pred = predict_parents(result.model, data.image, gt, vs, cfg)
        summary = parent_errors(pred, gt).summary()
        rows.append(
            {
                "data": "3D" if three_d else "2D+t",
                "links": int(ann.num_edges),
                "gt_links": summary["n_links"],
                "err_flow_um": summary["mean_error_flow_um"],
                "err_no_motion_um": summary["mean_error_no_motion_um"],
                "ratio": summary["ratio"],
                "train_s": train_s,
            }
        )
        print_table(rows[-1:], f"{n} links")
    return rows


def throughput(volume: tuple[int, int, int], repeat: int) -> list[dict]:
    rng = np.random.default_rng(0)
    prev, cur = rng.random((2, *volume)).astype(np.float32)
    vs = (2.0, 1.0, 1.0)
    rows = []
    for name, cfg in [("default", FlowConfig()), ("cpu", FlowConfig.cpu())]:
        model = build_flow_model(cfg, vs).eval()
        predict_flow(model, prev[:, :32, :32], cur[:, :32, :32], cfg)  # warm-up
        seconds, flow = timed(lambda m=model, c=cfg: predict_flow(m, prev, cur, c), repeat)
        n_params = sum(p.numel() for p in model.parameters())
        rows.append(
            {
                "preset": name,
                "params": n_params,
                "volume_zyx": "x".join(map(str, volume)),
                "tile_zyx": "x".join(map(str, cfg.predict.tile_shape)),
                "seconds_per_pair": seconds,
                "mvoxel_per_s": float(np.prod(volume)) / seconds / 1e6,
            }
        )
    n_spots = 2000
    extent = np.asarray(volume) * np.asarray(vs)
    pos = rng.uniform(0, 1, (n_spots, 3)) * extent
    spots = TrackGraph.from_positions(np.ones(n_spots, int), pos)
    seconds, _ = timed(lambda: displace(spots, flow, vs), repeat)
    rows.append(
        {
            "preset": "displace",
            "params": 0,
            "volume_zyx": "x".join(map(str, volume)),
            "tile_zyx": f"{n_spots} spots r=3µm",
            "seconds_per_pair": seconds,
            "mvoxel_per_s": None,
        }
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--links", type=int, nargs="+", default=[5, 10, 20, 30])
    parser.add_argument("--epochs", type=int, default=80)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--volume", type=int, nargs=3, default=[24, 128, 128])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--three-d", action="store_true", help="3D accuracy runs (slow on CPU)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    tp = [] if args.skip_throughput else throughput(tuple(args.volume), args.repeat)
    if tp:
        print_table(tp, "predict_flow throughput (one frame pair, tiled)")
    acc = [] if args.skip_accuracy else accuracy(args.links, args.epochs, args.seed, args.three_d)
    if acc:
        print_table(acc, "parent error vs annotated links (large motion, all frames)")
    name = "flow_3d" if args.three_d else "flow"
    payload: dict = {}
    previous = RESULTS / f"{name}.json"
    if previous.is_file():  # keep the part of an earlier run that was skipped now
        payload = {k: v for k, v in json.loads(previous.read_text()).items() if k != "machine"}
    payload.update({"threads": args.threads, "peak_rss_mb": peak_rss_mb()})
    if tp:
        payload["throughput"] = tp
    if acc:
        payload.update(
            {
                "accuracy": acc,
                "epochs": args.epochs,
                "synth": {
                    **({} if args.three_d else SYNTH_2D),
                    "preset": "large_motion",
                    "seed": args.seed,
                },
            }
        )
    write_json(name, payload)


if __name__ == "__main__":
    main()
