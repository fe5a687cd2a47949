"""Configuration of a human-in-the-loop project: the stage configs it drives (no torch)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SerializeAsAny, field_validator

from celltrack.config.base import Config, config_from_dict
from celltrack.config.detection import DetectionConfig
from celltrack.config.flow import FlowConfig
from celltrack.config.pipeline import preset_sections
from celltrack.config.stages import RENAMED_KEYS, DetectionSection, MotionSection, StageSections
from celltrack.errors import ConfigError
from celltrack.graph.candidates import CandidateConfig
from celltrack.solve.base import linker_config
from celltrack.solve.flow_nn import FlowNNConfig

__all__ = ["ProjectConfig", "as_project_config", "renamed_sections"]


class ProjectConfig(StageSections):
    """Stage settings used by :class:`celltrack.project.Project`.

    The fields have the names and types of the matching fields of the pipeline config
    (``detection``, ``motion``, ``candidates``, ``linker``), so either can configure a
    project.
    """

    preset: Literal["auto", "default", "cpu"] = Field(
        "auto",
        description="Network sizes: 'auto' = the detection and motion sections as given (their "
        "defaults are the CPU presets, sized for interactive cycles, on any machine); 'cpu' = "
        "every detection/motion key not set explicitly takes the CPU presets' value; 'default' "
        "= every key not set takes the GPU-sized defaults (set the devices to 'cuda' too)",
    )
    detection: DetectionSection = Field(
        default_factory=DetectionConfig.cpu,
        description="Detection by kind: 'ellipsoid' (ELEPHANT's U-Net), 'classical' or "
        "'indicator' (Linajea's cell indicator) (default: the ellipsoid CPU preset, sized for "
        "interactive cycles)",
    )
    motion: MotionSection = Field(
        default_factory=FlowConfig.cpu,
        description="Motion model by kind: 'flow' (ELEPHANT's backward flow) or "
        "'movement_vectors' (Linajea's) (default: the flow CPU preset)",
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

    A pipeline config (any object with ``detection``, ``motion``, ``candidates`` and
    ``linker`` attributes) contributes those four stage configs (and its ``preset`` when it
    is 'cpu' or 'default'). ``preset: cpu`` / ``default`` fills the detection and motion keys
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
    names = ("detection", "motion", "candidates", "linker")
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


def renamed_sections(stored: Any) -> Any:
    """A project manifest's stored config with the old key names (``flow``) renamed.

    Configs a person writes get an error naming the new key
    (:func:`~celltrack.config.stages.renamed_keys`); a project saved before the rename is
    read as it was meant.
    """
    if not isinstance(stored, dict):
        return stored
    return {RENAMED_KEYS.get(key, key): value for key, value in stored.items()}
