"""Shared tiny data and a tiny, fast project configuration."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from celltrack.config.detection import PredictConfig
from celltrack.config.flow import FlowPredictConfig, FlowTrainConfig
from celltrack.detect import DetectionConfig
from celltrack.flow import FlowConfig
from celltrack.project import ProjectConfig
from celltrack.synth import SynthConfig, make_embryo


@pytest.fixture(scope="session")
def tiny_data():
    torch.set_num_threads(1)
    return make_embryo(SynthConfig.tiny(n_frames=4))


def fast_config(**overrides) -> ProjectConfig:
    """The CPU presets cut down to a few optimisation steps on small crops."""
    det = DetectionConfig.cpu()
    det = det.model_copy(
        update={
            "train": det.train.model_copy(
                update={
                    "incremental_steps": 2,
                    "prior_learning_rates": (1e-2,),
                    "prior_crops": 1,
                    "crop_shape": (8, 32, 32),
                    "epochs": 1,
                    "crops_per_frame": 1,
                }
            ),
            "predict": PredictConfig(tile_shape=(12, 48, 48), overlap=(0, 0, 0)),
        }
    )
    flow = FlowConfig.cpu(
        train=FlowTrainConfig(epochs=1, crops_per_frame=1, batch_size=1, crop_shape=(8, 32, 32)),
        predict=FlowPredictConfig(tile_shape=(12, 48, 48), overlap=(0, 0, 0)),
    )
    return ProjectConfig(detection=det, motion=flow, **overrides)


@pytest.fixture(name="fast_config")
def _fast_config_fixture():
    return fast_config


@pytest.fixture(name="gt_frame")
def _gt_frame_fixture():
    return gt_frame


@pytest.fixture
def project(tmp_path, tiny_data):
    from celltrack.project import Project

    return Project.create(
        tmp_path / "p", tiny_data.image, voxel_size=tiny_data.voxel_size, config=fast_config()
    )


def gt_frame(data, t: int):
    """Positions (N, 3) µm and covariances (N, 3, 3) of the ground truth at frame t."""
    gt = data.gt.subgraph(nodes=data.gt.t == t)
    return gt.positions, np.asarray(gt.nodes["covariance"]), gt.ids
