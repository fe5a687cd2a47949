"""Fixtures shared across test folders."""

from __future__ import annotations

import os

import pytest

# Figures are written to files, never shown: with napari's Qt installed matplotlib would
# pick its Qt backend and fail whenever the virtual display (pytest-xvfb) is not up yet.
os.environ.setdefault("MPLBACKEND", "Agg")


def fast_config(*, incremental_steps: int = 2, **overrides):
    """A ProjectConfig: the CPU presets cut down to a few optimisation steps on small crops.

    ``incremental_steps`` sets the detector's steps per incremental update; ``overrides``
    go to :class:`~celltrack.project.ProjectConfig`.
    """
    from celltrack.config.detection import PredictConfig
    from celltrack.config.flow import FlowPredictConfig, FlowTrainConfig
    from celltrack.detect import DetectionConfig
    from celltrack.flow import FlowConfig
    from celltrack.project import ProjectConfig

    det = DetectionConfig.cpu()
    det = det.model_copy(
        update={
            "train": det.train.model_copy(
                update={
                    "incremental_steps": incremental_steps,
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
