"""Acceptance (issue #5): a flow model trained from ≤ 30 links halves the parent error.

Synthetic 2D+t embryo with large coherent motion (``SynthConfig.large_motion``: the
tissue translates ≈ 7 µm/frame, reversing every 3 frames, and rotates 3°/frame, so
nuclei move more than half their spacing) and divisions. A CPU-preset FlowUNet is
trained from 30 approved links in three frames, then every ground-truth nucleus of every
frame gets a predicted parent position; the mean distance to the true parent must be at
most half the distance when no motion is assumed.
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
def test_flow_from_30_links_halves_parent_error_on_large_motion():
    torch.set_num_threads(2)
    data = make_embryo(
        SynthConfig.large_motion(
            shape=(1, 128, 128), voxel_size=(1.0, 1.0, 1.0), n_nuclei=40, max_nuclei=80
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

    links = sample_annotations(gt, n_nuclei=0, frames=[2, 5, 8], n_links=30, rng=0)
    assert 0 < links.num_edges <= 30
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
    model = train_flow(data.image, links, vs, cfg).model
    predicted = predict_parents(model, data.image, gt, vs, cfg)
    errors = parent_errors(predicted, gt)
    assert errors.t.size == gt.num_edges  # every link of every frame is scored
    assert errors.flow.mean() <= 0.5 * errors.no_motion.mean(), errors.summary()
