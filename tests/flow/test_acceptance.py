"""Acceptance, small version (issue #5): a flow model trained from 20 links halves the
parent error on large motion.

Synthetic 2D+t embryo with large coherent motion (``SynthConfig.large_motion``: the tissue
translates several µm per frame, reversing direction, and rotates 3°/frame, so nuclei move
more than half their spacing). A CPU-preset FlowUNet is trained from 20 approved links in
two frames; every ground-truth nucleus of every frame then gets a predicted parent position,
and the mean distance to the true parent must be at most half the distance when no motion
is assumed. The full-size version (128 × 128, 12 frames, 30 links, 80 epochs) is
``benchmarks/bench_acceptance.py``; this one (96 × 96, 6 frames) takes ≈ 17 s of CPU.
"""

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

from celltrack.flow import (
    FlowConfig,
    FlowLossConfig,
    FlowTrainConfig,
    parent_errors,
    predict_parents,
    train_flow,
)
from celltrack.synth import SynthConfig, make_embryo, sample_annotations


@pytest.mark.slow
def test_flow_from_20_links_halves_parent_error_on_large_motion():
    torch.set_num_threads(1)
    data = make_embryo(
        SynthConfig.large_motion(
            shape=(1, 96, 96), voxel_size=(1.0, 1.0, 1.0), n_nuclei=20, max_nuclei=40, n_frames=6
        )
    )
    gt, vs = data.gt, data.voxel_size
    assert gt.divisions().size > 0
    # the motion really is large: more than half the nearest-neighbour spacing
    src, tgt = gt.edge_index()
    pos = gt.positions
    motion = np.linalg.norm(pos[tgt] - pos[src], axis=1).mean()
    spacing = np.median(
        np.concatenate(
            [cKDTree(pos[gt.t == t]).query(pos[gt.t == t], k=2)[0][:, 1] for t in gt.frames]
        )
    )
    assert motion > 0.5 * spacing

    links = sample_annotations(gt, n_nuclei=0, frames=[2, 5], n_links=20, rng=0)
    assert 0 < links.num_edges <= 20
    cfg = FlowConfig.cpu(
        loss=FlowLossConfig(ssim_weight=0.2, smooth_weight=0.1),
        train=FlowTrainConfig(
            epochs=60,
            crops_per_frame=8,
            batch_size=4,
            crop_shape=(1, 48, 48),
            learning_rate=2e-3,
            final_lr_fraction=0.05,
        ),
    )
    model = train_flow(data.image, links, vs, cfg, progress=False).model
    predicted = predict_parents(model, data.image, gt, vs, cfg, progress=False)
    errors = parent_errors(predicted, gt)
    assert errors.t.size == gt.num_edges  # every link of every frame is scored
    assert errors.flow.mean() <= 0.5 * errors.no_motion.mean(), errors.summary()
