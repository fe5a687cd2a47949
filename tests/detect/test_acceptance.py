"""Acceptance, small version: annotating 5 nuclei in one frame turns a prior-only model
that misses most nuclei into one that finds ≥ 90 % of them in every frame.

The full-size recipe (≤ 10 annotated nuclei on the 20-frame synthetic default, DET ≥ 0.90
in all frames within 120 s of CPU) is ``benchmarks/bench_acceptance.py``; this version keeps
the behaviour (learning from a handful of annotations beats no training from annotations)
on the 6-frame tiny embryo in ≈ 15 s of CPU.
"""

import time

import numpy as np
import pytest
import torch

from celltrack.detect import DetectionConfig, DetectionTrainer, build_model, detect
from celltrack.eval import evaluate
from celltrack.synth import SynthConfig, make_embryo, sample_annotations

#: optimisation steps of the one incremental update (the CPU preset's default is 40)
STEPS = 30


def small_config() -> DetectionConfig:
    """The CPU preset with the intensity-threshold background and a short prior."""
    cfg = DetectionConfig.cpu()
    return cfg.model_copy(
        update={
            "labels": cfg.labels.model_copy(update={"background_threshold": 0.15}),
            "train": cfg.train.model_copy(update={"prior_crops": 4}),
        }
    )


@pytest.mark.slow
def test_five_annotated_nuclei_beat_prior_only_in_all_frames():
    torch.set_num_threads(1)  # CPU seconds are the budget: no spin-waiting
    data = make_embryo(SynthConfig.tiny(seed=0))
    ann = sample_annotations(data.gt, n_nuclei=5, rng=0)
    assert ann.num_nodes <= 5 and np.unique(ann.t).size == 1
    cfg = small_config()
    radius = float(data.config.radius_um)
    model = build_model(cfg.model, data.voxel_size, seed=0)
    trainer = DetectionTrainer(model, cfg)
    start = time.process_time()
    trainer.prior(data.image)
    # detection as the pipeline runs it: the annotations calibrate the centre threshold
    # (without them, 0.5 passes a few dozen faint blobs at 0.50-0.54 whose count swings
    # with the CPU's float kernels: DET 0.89 on one machine, above 0.9 on another)
    prior_only = evaluate(
        data.gt,
        detect(model, data.image, cfg=cfg, annotations=ann, progress=False),
        max_distance=radius,
    ).aogm
    trainer.incremental(data.image, ann, frame=int(ann.t[0]), steps=STEPS)
    cpu_seconds = time.process_time() - start
    assert cpu_seconds <= 60, f"training took {cpu_seconds:.0f} s of CPU"
    pred = detect(model, data.image, cfg=cfg, annotations=ann, progress=False)
    assert set(np.unique(pred.t)) == set(range(data.image.shape[0]))
    trained = evaluate(data.gt, pred, max_distance=radius).aogm
    assert trained.det >= 0.90, trained
    assert trained.det >= prior_only.det + 0.3, (prior_only, trained)
