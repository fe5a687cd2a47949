"""Shared tiny data (the fast project configuration is in tests/conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from celltrack.synth import SynthConfig, make_embryo


@pytest.fixture(scope="session")
def tiny_data():
    torch.set_num_threads(1)
    return make_embryo(SynthConfig.tiny(n_frames=4))


@pytest.fixture(name="gt_frame")
def _gt_frame_fixture():
    return gt_frame


@pytest.fixture
def project(tmp_path, tiny_data, fast_config):
    from celltrack.project import Project

    return Project.create(
        tmp_path / "p", tiny_data.image, voxel_size=tiny_data.voxel_size, config=fast_config()
    )


def gt_frame(data, t: int):
    """Positions (N, 3) µm and covariances (N, 3, 3) of the ground truth at frame t."""
    gt = data.gt.subgraph(nodes=data.gt.t == t)
    return gt.positions, np.asarray(gt.nodes["covariance"]), gt.ids
