"""Full-size acceptance checks (moved out of the test suite, which runs smaller versions).

Run ``python benchmarks/bench_acceptance.py [--only detect|flow|movement]``. Prints one table and
writes ``benchmarks/results/acceptance.json``:

- **detect**: ≤ 10 annotated nuclei in one frame of the 20-frame synthetic default, CPU
  preset, prior training + 4 incremental updates, one torch thread: DET over all frames
  must reach 0.90 with training within 120 s of CPU. The test suite's version is
  ``tests/detect/test_acceptance.py`` (tiny embryo, 5 nuclei, one update).
- **flow**: a flow model trained from 30 approved links on 2D+t large motion (128 × 128,
  12 frames, 80 epochs) must halve the mean parent-position error of assuming no motion.
  The test suite's version is ``tests/flow/test_acceptance.py`` (96 × 96, 6 frames).
- **movement**: Linajea's movement vectors from 20 approved links on the same 2D+t large
  motion (seed 1; settings chosen on seed 0) must halve the no-motion error too. The test
  suite's version is the slow-marked test in ``tests/flow/test_movement_training.py``.

The exit status is 1 when a check fails, so the script can gate a release.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch
from _common import print_table, write_json

from celltrack.synth import SynthConfig, make_embryo, sample_annotations


def detect_check() -> dict:
    """The full detection acceptance recipe; returns one table row."""
    from celltrack.detect import DetectionConfig, DetectionTrainer, build_model, detect
    from celltrack.eval import evaluate

    torch.set_num_threads(1)
    wall = time.perf_counter()
    data = make_embryo(SynthConfig())
    ann = sample_annotations(data.gt, n_nuclei=10, rng=0)
    cfg = DetectionConfig.cpu()
    cfg = cfg.model_copy(
        update={"labels": cfg.labels.model_copy(update={"background_threshold": 0.15})}
    )
    model = build_model(cfg.model, data.voxel_size, seed=0)
    trainer = DetectionTrainer(model, cfg)
    start = time.process_time()
    trainer.prior(data.image)
    for _ in range(4):
        trainer.incremental(data.image, ann, frame=int(ann.t[0]))
    cpu = time.process_time() - start
    pred = detect(model, data.image, cfg=cfg, progress=False)
    det = float(evaluate(data.gt, pred, max_distance=float(data.config.radius_um)).aogm.det)
    return {
        "check": "detect: 10 nuclei -> DET >= 0.90, training <= 120 s CPU",
        "value": round(det, 4),
        "train_cpu_s": round(cpu, 1),
        "wall_s": round(time.perf_counter() - wall, 1),
        "passed": bool(det >= 0.90 and cpu <= 120),
    }


def flow_check() -> dict:
    """The full flow acceptance recipe; returns one table row."""
    from celltrack.flow import (
        FlowConfig,
        FlowLossConfig,
        FlowTrainConfig,
        parent_errors,
        predict_parents,
        train_flow,
    )

    torch.set_num_threads(2)
    wall = time.perf_counter()
    data = make_embryo(
        SynthConfig.large_motion(
            shape=(1, 128, 128), voxel_size=(1.0, 1.0, 1.0), n_nuclei=40, max_nuclei=80
        )
    )
    links = sample_annotations(data.gt, n_nuclei=0, frames=[2, 5, 8], n_links=30, rng=0)
    start = time.process_time()
    cfg = FlowConfig.cpu(
        loss=FlowLossConfig(ssim_weight=0.2, smooth_weight=0.1),
        train=FlowTrainConfig(
            epochs=80,
            crops_per_frame=8,
            batch_size=4,
            crop_shape=(1, 48, 48),
            learning_rate=2e-3,
            final_lr_fraction=0.05,
        ),
    )
    model = train_flow(data.image, links, data.voxel_size, cfg, progress=False).model
    cpu = time.process_time() - start
    predicted = predict_parents(model, data.image, data.gt, data.voxel_size, cfg, progress=False)
    errors = parent_errors(predicted, data.gt)
    ratio = float(errors.flow.mean() / errors.no_motion.mean())
    return {
        "check": "flow: 30 links -> parent error <= 0.5 x no-motion",
        "value": round(ratio, 4),
        "train_cpu_s": round(cpu, 1),
        "wall_s": round(time.perf_counter() - wall, 1),
        "passed": bool(ratio <= 0.5),
    }


def movement_check() -> dict:
    """Movement vectors on the flow check's 2D+t large motion; returns one table row."""
    from celltrack.config.movement import MovementConfig, MovementTargetConfig
    from celltrack.config.nn import AugmentConfig
    from celltrack.flow import parent_errors, predict_parents_movement, train_movement

    torch.set_num_threads(2)
    wall = time.perf_counter()
    data = make_embryo(
        SynthConfig.large_motion(
            seed=1, shape=(1, 128, 128), voxel_size=(1.0, 1.0, 1.0), n_nuclei=40, max_nuclei=80
        )
    )
    links = sample_annotations(data.gt, n_nuclei=0, frames=[2, 5, 8], n_links=20, rng=1)
    base = MovementConfig.cpu()
    cfg = MovementConfig.cpu(
        target=MovementTargetConfig(radius_um=8.0),
        augment=AugmentConfig(flip=True),
        train=base.train.model_copy(update={"epochs": 150, "crop_shape": (1, 48, 48)}),
    )
    start = time.process_time()
    model = train_movement(data.image, links, data.voxel_size, cfg).model
    cpu = time.process_time() - start
    predicted = predict_parents_movement(model, data.image, data.gt, data.voxel_size, cfg)
    ratio = parent_errors(predicted, data.gt).ratio
    return {
        "check": "movement vectors: 20 links -> parent error <= 0.5 x no-motion",
        "value": round(ratio, 4),
        "train_cpu_s": round(cpu, 1),
        "wall_s": round(time.perf_counter() - wall, 1),
        "passed": bool(ratio <= 0.5),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["detect", "flow", "movement"], default=None)
    args = parser.parse_args()
    checks = {"detect": detect_check, "flow": flow_check, "movement": movement_check}
    rows = [fn() for name, fn in checks.items() if args.only in (None, name)]
    print_table(rows, "Full-size acceptance checks")
    write_json(
        "acceptance",
        {
            "torch": torch.__version__,
            "cpus": os.cpu_count(),
            "load_average_1min": round(os.getloadavg()[0], 2),
            "note": "wall times depend on what else runs on the machine (see load_average)",
            "checks": rows,
        },
    )
    return 0 if all(r["passed"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
