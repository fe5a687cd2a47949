"""Configuration of the whole pipeline: inputs, stages, outputs, scoring (no torch).

:class:`PipelineConfig` nests one config per stage; ``celltrack config init`` writes it
and ``celltrack track`` reads it, and neither imports the deep-learning stack. Its
``linker`` accepts every registered linker kind (:func:`celltrack.solve.register_linker`),
a user's own included (validated by :func:`celltrack.solve.base.linker_config`), and
saves with the concrete kind's fields.

``preset`` sizes the networks for the machine: :meth:`PipelineConfig.with_preset` lays
every detection/motion key the user set explicitly over the CPU presets
(:meth:`DetectionConfig.cpu`, :meth:`FlowConfig.cpu`) or the defaults. Whether the machine
has CUDA is decided by the caller (:class:`celltrack.pipeline.Pipeline`): this module never
imports torch.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    Field,
    SerializeAsAny,
    ValidationError,
    field_validator,
    model_validator,
)

from celltrack.config.base import Config
from celltrack.config.detection import DetectionConfig
from celltrack.config.flow import FlowConfig
from celltrack.config.nn import BlockwisePredictConfig
from celltrack.config.stages import DetectionSection, MotionSection, StageSections
from celltrack.errors import ConfigError
from celltrack.graph.candidates import CandidateConfig
from celltrack.solve.base import linker_config
from celltrack.solve.blockwise.api import BlockwiseConfig
from celltrack.solve.ilp.config import ILPConfig

__all__ = [
    "PRESET_SECTIONS",
    "DataConfig",
    "EvaluationConfig",
    "OutputConfig",
    "PipelineBlockwiseConfig",
    "PipelineConfig",
    "overlay_explicit",
    "preset_sections",
]

#: Network sections a preset sizes (each section's own class has ``cpu()`` and defaults).
PRESET_SECTIONS: tuple[str, ...] = ("detection", "motion")

#: The values of ``preset``.
Preset = Literal["auto", "default", "cpu"]


def overlay_explicit(base: BaseModel, user: BaseModel) -> BaseModel:
    """``base`` with every field the user set explicitly in ``user`` (recursively).

    A field counts as set when it is in pydantic's ``model_fields_set`` (given to the
    constructor or in the loaded file); nested configs of the same class are overlaid key
    by key, so ``detection: {train: {epochs: 3}}`` keeps the rest of ``base.train``.

    Parameters
    ----------
    base, user : pydantic model
        Configs of the same class.

    Returns
    -------
    pydantic model
        A validated config of ``base``'s class.
    """
    values: dict[str, Any] = {name: getattr(base, name) for name in type(base).model_fields}
    for name in user.model_fields_set:
        mine, theirs = getattr(user, name), getattr(base, name)
        if isinstance(mine, BaseModel) and type(mine) is type(theirs):
            values[name] = overlay_explicit(theirs, mine)
        else:
            values[name] = mine
    return type(base).model_validate(
        {k: v.model_dump() if isinstance(v, BaseModel) else v for k, v in values.items()}
    )


def preset_sections(config: BaseModel, preset: str) -> dict[str, Config]:
    """The ``detection`` and ``motion`` sections of ``config`` under ``preset`` ('cpu'/'default').

    Each section's class (its kind's: e.g. :class:`~celltrack.config.indicator.IndicatorConfig`
    for ``detection.kind: indicator``) gives the preset's values.

    Keys the user set explicitly stay; every other key takes the preset's value.

    Raises
    ------
    ConfigError
        When the explicit keys do not fit the preset (e.g. ``labels.centre_ratio`` set
        without the matching ``spots.centre_ratio``).
    """
    out: dict[str, Config] = {}
    for name in PRESET_SECTIONS:
        cls = type(getattr(config, name))  # the section's kind decides its class
        base = cls.cpu() if preset == "cpu" else cls()  # type: ignore[attr-defined]
        if name not in config.model_fields_set:  # the section's default: all the preset's
            out[name] = base
            continue
        try:
            out[name] = overlay_explicit(base, getattr(config, name))  # type: ignore[assignment]
        except ValidationError as exc:
            raise ConfigError(
                f"the {name} keys you set do not fit the {preset!r} preset's other values: "
                f"{exc.errors()[0]['msg']}; set the matching keys too, or set preset: "
                f"{'default' if preset == 'cpu' else 'cpu'}"
            ) from None
    return out


class DataConfig(Config):
    """Where the inputs are (every path optional: arrays can be passed to ``Pipeline.run``)."""

    image: str | None = Field(
        None,
        description="Movie: multi-page/ImageJ TIFF, folder of per-frame TIFFs, Zarr or OME-Zarr. "
        "Detection and linking run on it; the networks train on it unless train_image is set.",
    )
    train_image: str | None = Field(
        None,
        description="The movie the annotations are on (same formats and axes as image), when "
        "the networks should train on another movie than the one tracked: detection and flow "
        "train on it with the annotations, then prediction and linking run on image; None = "
        "image.",
    )
    axes: str | None = Field(
        None,
        description="Axes of the movie file, one letter of T Z C Y X per dimension (e.g. 'TYX' "
        "for 2D+t, 'TZYX'); None = the file's own metadata.",
    )
    voxel_size_um: tuple[float, float, float] | None = Field(
        None,
        description="Voxel size (z, y, x) in µm; overrides the image metadata (2D+t: (1, y, x)).",
    )
    annotations: str | None = Field(
        None, description="Sparse annotations: CSV, JSON, TrackMate/MaMuT XML or GEFF (µm)."
    )
    annotation_units: Literal["um", "voxel"] = Field(
        "um",
        description="Units of the positions in a CSV/JSON annotation file: 'um' (µm), or "
        "'voxel' for pixel coordinates (e.g. exported from Fiji), converted with the voxel size.",
    )
    ground_truth: str | None = Field(
        None, description="Ground truth for scoring: GEFF, CTC folder, CSV or JSON (µm)."
    )

    @field_validator("voxel_size_um", mode="before")
    @classmethod
    def _check_voxel_size(cls, value: Any) -> Any:
        if value is None:
            return value
        hint = (
            "voxel_size_um must be three numbers [z, y, x] in µm, e.g. [2.0, 0.5, 0.5] "
            f"(2D+t: [1, y, x]); got {value!r}"
        )
        if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 3:
            raise ValueError(hint)
        try:
            numbers = tuple(float(v) for v in value)
        except (TypeError, ValueError):
            raise ValueError(hint) from None
        if not all(v > 0 for v in numbers):
            raise ValueError(hint.replace("three numbers", "three positive numbers"))
        return numbers

    @field_validator("axes")
    @classmethod
    def _check_axes(cls, value: str | None) -> str | None:
        if value is None:
            return value
        axes = value.upper()
        if not axes or set(axes) - set("TZCYX") or len(set(axes)) != len(axes):
            raise ValueError(
                f"axes must name each dimension once with letters of T Z C Y X, got {value!r}"
            )
        return axes


class OutputConfig(Config):
    """What the pipeline writes."""

    directory: str = Field("celltrack-out", description="Work and output folder.")
    formats: tuple[Literal["geff", "ctc", "csv"], ...] = Field(
        ("geff", "csv"), description="Formats of the final tracks: GEFF, CTC folder, CSV."
    )
    ctc_radius_um: float | None = Field(
        None,
        gt=0,
        description="Sphere radius (µm) painted in CTC masks; default: each spot's ellipsoid.",
    )
    figures: bool = Field(True, description="Write PNG figures (projection, lineages, losses).")


class EvaluationConfig(Config):
    """How tracks are scored against ground truth."""

    max_distance_um: float = Field(
        4.0, gt=0, description="Matching distance between GT and predicted nodes (µm)."
    )
    division_tolerance: int = Field(1, ge=0, description="Frames a division may be off by.")
    sparse_gt: bool = Field(False, description="Ground truth annotates only some cells.")


def _check_linker_keys(value: dict[str, Any]) -> None:
    """Name the keys of another linker kind (e.g. ILP costs left under ``kind: greedy``).

    Raises
    ------
    ValueError
        Listing each foreign key with the kinds it belongs to, instead of one validation
        error per key.
    """
    from celltrack.solve.base import linker_kinds

    if "kind" not in value:
        return  # linker_config explains a missing kind
    kind = value["kind"]
    kinds = linker_kinds()
    if not isinstance(kind, str) or kind not in kinds:
        return  # linker_config explains unknown kinds
    fields = {k: set(type(linker_config(k)).model_fields) for k in kinds}
    foreign = sorted({str(k) for k in value} - fields[kind] - {"kind"})  # YAML keys may be ints
    if not foreign:
        return
    groups: dict[str, list[str]] = {}
    for key in foreign:
        owner = "/".join(k for k in kinds if key in fields[k]) or "no linker"
        groups.setdefault(owner, []).append(key)
    listed = "; ".join(f"of {owner} only: {', '.join(keys)}" for owner, keys in groups.items())
    raise ValueError(
        f"linker.kind is {kind!r}, but the linker section also has {len(foreign)} keys that "
        f"{kind!r} does not take ({listed}). Replace the section by 'linker: {{kind: {kind}}}' "
        f"(then add any of {', '.join(sorted(fields[kind] - {'kind'}))}), or set linker.kind "
        "back"
    )


class PipelineBlockwiseConfig(BlockwiseConfig):
    """Every stage block by block: prediction, spots, candidates and the ILP.

    The solver's keys (``block_size``, ``context``, ...) are those of
    :class:`~celltrack.solve.blockwise.api.BlockwiseConfig`; ``predict`` sets the voxel
    blocks of each frame for detection and flow prediction and spot extraction. All of it
    runs on ``executor`` with ``n_workers``, and resumes from the work folder.
    """

    predict: BlockwisePredictConfig = Field(
        default_factory=BlockwisePredictConfig,
        description="Block-wise prediction of detection and flow, and spot extraction: core "
        "block (z, y, x) voxels, halo, GroupNorm handling, threads per worker",
    )

    @model_validator(mode="before")
    @classmethod
    def _from_solver_config(cls, value: Any) -> Any:
        if isinstance(value, BlockwiseConfig) and not isinstance(value, cls):
            return value.model_dump()
        return value


class PipelineConfig(StageSections):
    """Root configuration: one nested config per stage."""

    preset: Preset = Field(
        "auto",
        description="Network sizes for the machine: 'auto' = on a machine without CUDA the "
        "detection and motion keys you did not set take the CPU presets (small U-Nets, small "
        "crops and tiles), with CUDA the defaults; 'cpu' = the CPU presets everywhere; "
        "'default' = the GPU-sized defaults everywhere. Keys you set always win.",
    )
    data: DataConfig = Field(default_factory=DataConfig, description="Inputs.")
    detection: DetectionSection = Field(
        default_factory=DetectionConfig,
        description="Detection stage, chosen by kind: 'ellipsoid' (ELEPHANT's U-Net), "
        "'classical' (no training) or 'indicator' (Linajea's cell indicator from points).",
    )
    motion: MotionSection = Field(
        default_factory=FlowConfig,
        description="Motion stage (where each nucleus was one frame earlier), chosen by kind: "
        "'flow' (ELEPHANT's backward flow) or 'movement_vectors' (Linajea's).",
    )
    use_motion: Literal["auto", "always", "never"] = Field(
        "auto",
        description="Train and use the motion model: 'auto' when ≥ min_motion_links approved "
        "links.",
    )
    min_motion_links: int = Field(
        5, ge=1, description="Approved links needed for the motion model in 'auto'."
    )
    candidates: CandidateConfig = Field(
        default_factory=CandidateConfig, description="Candidate graph."
    )
    linker: SerializeAsAny[Config] = Field(
        default_factory=ILPConfig,
        description="Linker, chosen by 'kind': greedy, flow_nn, ilp or any registered kind.",
    )
    blockwise: PipelineBlockwiseConfig | None = Field(
        None,
        description="Run every stage block by block (movies and graphs larger than memory): "
        "prediction, spots, candidates, ILP; None runs each stage on whole frames and solves "
        "globally.",
    )
    output: OutputConfig = Field(default_factory=OutputConfig, description="Outputs.")
    evaluation: EvaluationConfig = Field(
        default_factory=EvaluationConfig, description="Scoring against ground truth."
    )
    progress: bool = Field(True, description="Show progress bars.")

    @field_validator("linker", mode="before")
    @classmethod
    def _check_linker(cls, value: Any) -> Config:
        if isinstance(value, dict):
            _check_linker_keys(value)
        return linker_config(value)

    @classmethod
    def cpu(cls, **overrides: Any) -> PipelineConfig:
        """Small networks and crops for a laptop CPU (the demo's settings)."""
        return cls(**{"detection": DetectionConfig.cpu(), "motion": FlowConfig.cpu(), **overrides})

    def preset_for(self, cuda: bool) -> Literal["default", "cpu"]:
        """The preset ``preset`` means on a machine with (``cuda``) or without CUDA."""
        if self.preset == "auto":
            return "default" if cuda else "cpu"
        return self.preset

    def with_preset(self, cuda: bool) -> PipelineConfig:
        """This config with the detection and motion keys not set explicitly from the preset.

        Parameters
        ----------
        cuda : bool
            Whether the machine has CUDA (``torch.cuda.is_available()``; the caller asks,
            so this module never imports torch).

        Returns
        -------
        PipelineConfig
            ``self`` when nothing changes; otherwise a copy whose ``detection`` and
            ``motion`` are the preset's values overlaid by the keys set explicitly.
        """
        preset = self.preset_for(cuda)
        if preset == "default":  # unset keys hold the defaults already
            return self
        sections = preset_sections(self, preset)
        if all(sections[n] == getattr(self, n) for n in sections):
            return self
        return self.model_copy(update=sections)
