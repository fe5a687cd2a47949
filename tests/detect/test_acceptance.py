"""Acceptance: sparse annotations of ≤ 10 nuclei in one frame → DET ≥ 0.90 in all frames."""

import time

import numpy as np
import pytest
import torch

from celltrack.detect import DetectionConfig, DetectionTrainer, build_model, detect
from celltrack.eval import evaluate
from celltrack.synth import SynthConfig, make_embryo, sample_annotations

#: same recipe as benchmarks/bench_detect.py: CPU preset + intensity-threshold background
ROUNDS = 4


def acceptance_config() -> DetectionConfig:
    cfg = DetectionConfig.cpu()
    return cfg.model_copy(
        update={"labels": cfg.labels.model_copy(update={"background_threshold": 0.15})}
    )


@pytest.mark.slow
def test_ten_annotated_nuclei_detect_all_frames():
    torch.set_num_threads(1)  # CPU seconds are the budget: no spin-waiting
    data = make_embryo(SynthConfig())
    ann = sample_annotations(data.gt, n_nuclei=10, rng=0)
    assert ann.num_nodes <= 10 and np.unique(ann.t).size == 1
    cfg = acceptance_config()
    model = build_model(cfg.model, data.voxel_size, seed=0)
    trainer = DetectionTrainer(model, cfg)
    start = time.process_time()
    trainer.prior(data.image)
    for _ in range(ROUNDS):
        trainer.incremental(data.image, ann, frame=int(ann.t[0]))
    cpu_seconds = time.process_time() - start
    assert cpu_seconds <= 120, f"training took {cpu_seconds:.0f} s of CPU"
    pred = detect(model, data.image, cfg=cfg)
    assert set(np.unique(pred.t)) == set(range(data.image.shape[0]))
    scores = evaluate(data.gt, pred, max_distance=float(data.config.radius_um))
    assert scores.aogm.det >= 0.90, scores.aogm
