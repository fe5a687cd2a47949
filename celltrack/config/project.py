"""Configuration of a human-in-the-loop project: the stage configs it drives (no torch)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SerializeAsAny, field_validator

from celltrack.config.base import Config, config_from_dict
from celltrack.config.detection import DetectionConfig
from celltrack.config.flow import FlowConfig
from celltrack.config.pipeline import preset_sections
from celltrack.errors import ConfigError
from celltrack.graph.candidates import CandidateConfig
from celltrack.solve.base import linker_config
from celltrack.solve.flow_nn import FlowNNConfig

__all__ = ["ProjectConfig", "as_project_config"]


class ProjectConfig(Config):
    """Stage settings used by :class:`celltrack.project.Project`.

    The fields have the names and types of the matching fields of the pipeline config
    (``detection``, ``flow``, ``candidates``, ``linker``), so either can configure a
    project.
    """

    preset: Literal["auto", "default", "cpu"] = Field(
        "auto",
        description="Network sizes: 'auto' = the detection and flow sections as given (their "
        "defaults are the CPU presets, sized for interactive cycles, on any machine); 'cpu' = "
        "every detection/flow key not set explicitly takes the CPU presets' value; 'default' "
        "= every key not set takes the GPU-sized defaults (set the devices to 'cuda' too)",
    )
    detection: DetectionConfig = Field(
        default_factory=DetectionConfig.cpu,
        description="Detection U-Net, training, prediction and spot settings (default: the "
        "CPU preset, sized for interactive cycles)",
    )
    flow: FlowConfig = Field(
        default_factory=FlowConfig.cpu, description="Backward-flow U-Net settings (CPU preset)"
    )
    candidates: CandidateConfig = Field(
        default_factory=CandidateConfig, description="Candidate graph for the greedy/ILP linkers"
    )
    linker: SerializeAsAny[Config] = Field(
        default_factory=FlowNNConfig,
        description="Linker used by Project.link (kind greedy, flow_nn, ilp or any registered "
        "kind)",
    )
    prior: bool = Field(
        True,
        description="Initialise a new detection model by self-supervised prior training "
        "before its first supervised update",
    )

    @field_validator("linker", mode="before")
    @classmethod
    def _check_linker(cls, value: Any) -> Config:
        return linker_config(value)


def _with_preset(config: ProjectConfig) -> ProjectConfig:
    """``config`` with ``preset: cpu`` / ``default`` applied to the keys not set."""
    if config.preset == "auto":
        return config
    sections = preset_sections(config, config.preset)
    if all(sections[n] == getattr(config, n) for n in sections):
        return config
    return config.model_copy(update=sections)


def as_project_config(config: Any) -> ProjectConfig:
    """Turn ``None``, a mapping, a :class:`ProjectConfig` or a pipeline config into one.

    A pipeline config (any object with ``detection``, ``flow``, ``candidates`` and
    ``linker`` attributes) contributes those four stage configs (and its ``preset`` when it
    is 'cpu' or 'default'). ``preset: cpu`` / ``default`` fills the detection and flow keys
    not set explicitly (:func:`celltrack.config.pipeline.preset_sections`).

    Raises
    ------
    ConfigError
        For any other value, or a mapping with unknown keys or bad values.
    """
    if config is None:
        return ProjectConfig()
    if isinstance(config, ProjectConfig):
        return _with_preset(config)
    if isinstance(config, dict):
        return _with_preset(config_from_dict(config, ProjectConfig))
    names = ("detection", "flow", "candidates", "linker")
    if all(hasattr(config, n) for n in names):
        values = {n: getattr(config, n) for n in names}
        preset = getattr(config, "preset", "auto")
        if preset in ("cpu", "default"):
            values["preset"] = preset
        return _with_preset(ProjectConfig(**values))
    raise ConfigError(
        f"config must be a ProjectConfig, a pipeline config or a mapping of their fields, got "
        f"{type(config).__name__}"
    )
