"""Typed configuration: the :class:`Config` base, file I/O, and every stage's config model.

Nothing here imports torch: ``celltrack config init`` and a user who only edits configs
never pay for the deep-learning stack. Stage configs live one module per stage
(:mod:`~celltrack.config.nn`, :mod:`~celltrack.config.detection`, :mod:`~celltrack.config.flow`,
:mod:`~celltrack.config.indicator` and :mod:`~celltrack.config.movement` (Linajea's models),
:mod:`~celltrack.config.stages` (the detection and motion unions, chosen by ``kind``),
:mod:`~celltrack.config.pipeline`, :mod:`~celltrack.config.project`); the linking configs
stay beside their linkers in :mod:`celltrack.solve` and :mod:`celltrack.graph`. Every one of
them is importable from here, loaded on first use.
"""

from importlib import import_module
from typing import Any

from celltrack.config.base import Config, config_from_dict, load_config, save_config

_LAZY = {
    "AugmentConfig": "celltrack.config.nn",
    "TilingConfig": "celltrack.config.nn",
    "NormalizeConfig": "celltrack.config.nn",
    "ClassicalConfig": "celltrack.config.classical",
    "DetectionConfig": "celltrack.config.detection",
    "LabelConfig": "celltrack.config.detection",
    "ModelConfig": "celltrack.config.detection",
    "LossConfig": "celltrack.config.detection",
    "TrainConfig": "celltrack.config.detection",
    "PredictConfig": "celltrack.config.detection",
    "SpotConfig": "celltrack.config.detection",
    "FlowConfig": "celltrack.config.flow",
    "FlowLabelConfig": "celltrack.config.flow",
    "FlowModelConfig": "celltrack.config.flow",
    "FlowLossConfig": "celltrack.config.flow",
    "FlowTrainConfig": "celltrack.config.flow",
    "FlowPredictConfig": "celltrack.config.flow",
    "IndicatorConfig": "celltrack.config.indicator",
    "IndicatorTargetConfig": "celltrack.config.indicator",
    "IndicatorLossConfig": "celltrack.config.indicator",
    "IndicatorNMSConfig": "celltrack.config.indicator",
    "MovementConfig": "celltrack.config.movement",
    "MovementTargetConfig": "celltrack.config.movement",
    "MovementLossConfig": "celltrack.config.movement",
    "MovementTrainConfig": "celltrack.config.movement",
    "MovementPredictConfig": "celltrack.config.movement",
    "DataConfig": "celltrack.config.pipeline",
    "OutputConfig": "celltrack.config.pipeline",
    "EvaluationConfig": "celltrack.config.pipeline",
    "PipelineConfig": "celltrack.config.pipeline",
    "ProjectConfig": "celltrack.config.project",
    "as_project_config": "celltrack.config.project",
    "CandidateConfig": "celltrack.graph.candidates",
    "GreedyConfig": "celltrack.solve.greedy",
    "FlowNNConfig": "celltrack.solve.flow_nn",
    "ILPConfig": "celltrack.solve.ilp.config",
    "BlockwiseConfig": "celltrack.solve.blockwise.api",
}

__all__ = ["Config", "config_from_dict", "load_config", "save_config", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'celltrack.config' has no attribute '{name}'")
