"""Detection benchmark: accuracy vs annotation effort, prediction throughput, update latency.

Run ``python benchmarks/bench_detect.py [--quick]``. Prints three tables and writes
``benchmarks/results/detect.json``:

1. DET (point matching within the nucleus radius, every frame of the synthetic default
   movie) of a CPU-preset model started from prior training and trained incrementally
   on the annotations ``sample_annotations`` draws for 1, 3, 10 and 30 nuclei of one
   frame (same prior, same number of steps for every count), with the CPU seconds the
   training took.
2. Tiled prediction throughput (voxels/s) of the default and CPU presets, next to the
   raw throughput of one 16→16 3×3×3 Conv3d measured in the same run (torch's speed
   limit on this machine for the network's dominant layer), the model's multiply-adds
   per voxel and the fraction of the raw conv FLOP rate the predictor reaches.
3. One incremental update's latency: render labels + train steps + re-predict a frame.
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch
from _common import print_table, write_json

from celltrack.detect import (
    DetectionConfig,
    DetectionTrainer,
    ModelConfig,
    build_model,
    detect,
    predict_probabilities,
    render_labels,
)
from celltrack.eval import evaluate
from celltrack.synth import SynthConfig, make_embryo, sample_annotations

THREADS = 1


#: incremental updates (of ``incremental_steps`` each) in the acceptance recipe
ACCEPTANCE_ROUNDS = 4


def acceptance_config() -> DetectionConfig:
    """The CPU recipe of the acceptance test: CPU preset + intensity-threshold background."""
    cfg = DetectionConfig.cpu()
    return cfg.model_copy(
        update={"labels": cfg.labels.model_copy(update={"background_threshold": 0.15})}
    )


def _macs_per_voxel(model: torch.nn.Module, shape: tuple[int, int, int]) -> float:
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        k = int(np.prod(module.kernel_size))
        total += output.numel() * module.in_channels * k

    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv3d)]
    handles = [m.register_forward_hook(hook) for m in convs]
    with torch.inference_mode():
        model.eval()(torch.zeros(1, 1, *shape))
    for h in handles:
        h.remove()
    return total / float(np.prod(shape))


def accuracy(data, counts, rounds, quick):
    cfg = acceptance_config()
    base = build_model(cfg.model, data.voxel_size)
    trainer = DetectionTrainer(base, cfg)
    c0 = time.process_time()
    trainer.prior(data.image)
    prior_cpu = time.process_time() - c0
    radius = float(data.config.radius_um)
    rows = []
    for n in counts:
        ann = sample_annotations(data.gt, n_nuclei=n, rng=0)
        model = copy.deepcopy(base)
        tr = DetectionTrainer(model, cfg)
        c0 = time.process_time()
        for _ in range(rounds):
            tr.incremental(data.image, ann, frame=int(ann.t[0]))
        train_cpu = time.process_time() - c0
        frames = [0, 10, 19] if quick else None
        pred = detect(model, data.image, frames=frames, cfg=cfg)
        gt = data.gt if frames is None else data.gt.subgraph(nodes=np.isin(data.gt.t, frames))
        det = evaluate(gt, pred, max_distance=radius).aogm
        rows.append(
            {
                "annotated": n,
                "DET": round(float(det.det), 4),
                "FN": int(det.fn_nodes),
                "FP": int(det.fp_nodes),
                "prior_cpu_s": round(prior_cpu, 1),
                "train_cpu_s": round(train_cpu, 1),
                "steps": rounds * cfg.train.incremental_steps,
            }
        )
        print(rows[-1], flush=True)
    return rows


def throughput(data, threads):
    torch.set_num_threads(threads)
    frame = np.asarray(data.image[0])
    rows = []
    conv = torch.nn.Conv3d(16, 16, 3, padding=1)
    x = torch.rand(1, 16, *frame.shape)
    with torch.inference_mode():
        conv(x)
        start = time.perf_counter()
        for _ in range(3):
            conv(x)
        dt = (time.perf_counter() - start) / 3
    raw_gflops = 2 * 27 * 16 * 16 * frame.size / dt / 1e9
    rows.append(
        {
            "what": "raw Conv3d 16->16 3^3",
            "threads": threads,
            "voxels_per_s": round(frame.size / dt),
            "GFLOP_per_s": round(raw_gflops, 2),
            "MACs_per_voxel": 27 * 16 * 16,
            "fraction_of_raw": 1.0,
        }
    )
    for preset in ("default", "cpu"):
        cfg = DetectionConfig.cpu() if preset == "cpu" else DetectionConfig()
        model = build_model(ModelConfig(preset=preset), data.voxel_size)
        macs = _macs_per_voxel(model, (16, 64, 64))
        predict_probabilities(model, frame, cfg.predict)  # warm-up
        start = time.perf_counter()
        for _ in range(2):
            predict_probabilities(model, frame, cfg.predict)
        dt = (time.perf_counter() - start) / 2
        gflops = 2 * macs * frame.size / dt / 1e9
        rows.append(
            {
                "what": f"predict_probabilities ({preset})",
                "threads": threads,
                "voxels_per_s": round(frame.size / dt),
                "GFLOP_per_s": round(gflops, 2),
                "MACs_per_voxel": round(macs),
                "fraction_of_raw": round(gflops / raw_gflops, 3),
            }
        )
    return rows


def latency(data):
    cfg = acceptance_config()
    model = build_model(cfg.model, data.voxel_size)
    trainer = DetectionTrainer(model, cfg)
    ann = sample_annotations(data.gt, n_nuclei=10, rng=0)
    t = int(ann.t[0])
    frame = np.asarray(data.image[t])
    trainer.incremental(data.image, ann, frame=t, steps=2)  # warm-up
    rows = []
    start = time.perf_counter()
    c0 = time.process_time()
    render_labels(ann, frame.shape, data.voxel_size, cfg.labels, image=frame, frame=t)
    t_render = time.perf_counter() - start
    trainer.incremental(data.image, ann, frame=t)
    t_train = time.perf_counter() - start - t_render
    predict_probabilities(model, frame, cfg.predict)
    total = time.perf_counter() - start
    rows.append(
        {
            "render_s": round(t_render, 3),
            "train_s": round(t_train, 2),
            "steps": cfg.train.incremental_steps,
            "predict_s": round(total - t_render - t_train, 2),
            "total_wall_s": round(total, 2),
            "total_cpu_s": round(time.process_time() - c0, 2),
        }
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="DET on 3 frames, not all 20")
    args = parser.parse_args()
    data = make_embryo(SynthConfig())
    perf = throughput(data, 1) + throughput(data, 2)
    print_table(perf, f"Prediction throughput, one {data.image.shape[1:]} frame")
    torch.set_num_threads(THREADS)
    lat = latency(data)
    print_table(lat, "One incremental update (render + train + re-predict one frame)")
    acc = accuracy(data, (1, 3, 10, 30), rounds=ACCEPTANCE_ROUNDS, quick=args.quick)
    print_table(acc, "DET vs number of annotated nuclei (one frame, synthetic default)")
    write_json(
        "detect",
        {
            "threads": THREADS,
            "torch": torch.__version__,
            "note": "2 shared cores; wall times are noisy when other jobs run",
            "throughput": perf,
            "incremental_latency": lat,
            "det_vs_annotations": acc,
        },
    )


if __name__ == "__main__":
    main()
