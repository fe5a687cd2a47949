"""Backward flow: every spot gets a predicted parent position in the previous frame.

Pipeline: annotated links → :func:`render_flow_labels` → :func:`train_flow` (a
:class:`FlowUNet` on frame pairs (t−1, t)) → :func:`predict_flow` (tiled, µm) →
:func:`displace` (node columns ``parent_z, parent_y, parent_x`` in µm), or
:func:`predict_parents` for a whole movie. Importing this package imports torch. Movies
go through :func:`celltrack.io.as_movie`; the configs live in :mod:`celltrack.config.flow`
(importable without torch) and are re-exported here. Nothing here imports
:mod:`celltrack.detect`: the shared parts are :mod:`celltrack.nn`'s.

Linajea's movement vectors (per voxel near a child, the offset to its parent's centre,
from a window of frames): :func:`movement_training_target` → :func:`train_movement` →
:func:`predict_parents_movement` (the same ``parent_*`` columns). The joint indicator +
movement model is :mod:`celltrack.joint` (it needs detection's indicator too).
"""

from celltrack.config.flow import (
    FlowConfig,
    FlowLabelConfig,
    FlowLossConfig,
    FlowModelConfig,
    FlowPredictConfig,
    FlowTrainConfig,
)
from celltrack.config.movement import MovementConfig
from celltrack.flow.displace import PARENT_COLUMNS, displace, predict_parents
from celltrack.flow.evaluate import ParentErrors, parent_errors
from celltrack.flow.labels import FlowLinks, flow_links, render_flow_labels
from celltrack.flow.losses import FlowLoss, masked_l1, smoothness, ssim3d, warp
from celltrack.flow.model import FlowUNet, build_flow_model, load_flow_model, save_flow_model
from celltrack.flow.movement_model import build_movement_model
from celltrack.flow.movement_predict import (
    parents_from_vectors,
    predict_movement,
    predict_parents_movement,
)
from celltrack.flow.movement_targets import movement_training_target
from celltrack.flow.movement_training import MovementTrainResult, masked_mse, train_movement
from celltrack.flow.predict import predict_flow
from celltrack.flow.training import FlowTrainResult, train_flow

__all__ = [
    "PARENT_COLUMNS",
    "FlowConfig",
    "FlowLabelConfig",
    "FlowLinks",
    "FlowLoss",
    "FlowLossConfig",
    "FlowModelConfig",
    "FlowPredictConfig",
    "FlowTrainConfig",
    "FlowTrainResult",
    "FlowUNet",
    "MovementConfig",
    "MovementTrainResult",
    "ParentErrors",
    "build_flow_model",
    "build_movement_model",
    "displace",
    "flow_links",
    "load_flow_model",
    "masked_l1",
    "masked_mse",
    "movement_training_target",
    "parent_errors",
    "parents_from_vectors",
    "predict_flow",
    "predict_movement",
    "predict_parents",
    "predict_parents_movement",
    "render_flow_labels",
    "save_flow_model",
    "smoothness",
    "ssim3d",
    "train_flow",
    "train_movement",
    "warp",
]
