"""The detection and motion sections of pipeline and project configs: one union per stage.

``detection`` is chosen by ``kind`` (ELEPHANT's ``ellipsoid`` U-Net, the ``classical``
detector, both :class:`~celltrack.config.detection.DetectionConfig`, or Linajea's cell
``indicator``, :class:`~celltrack.config.indicator.IndicatorConfig`); ``motion`` by
``kind`` (ELEPHANT's backward ``flow``, :class:`~celltrack.config.flow.FlowConfig`, or
Linajea's ``movement_vectors``, :class:`~celltrack.config.movement.MovementConfig`). A
section without ``kind`` is the first kind. These are pydantic discriminated unions, so a
YAML file validates against the chosen kind's fields only. Nothing here imports torch.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Discriminator, Tag, field_validator, model_validator

from celltrack.config.base import Config
from celltrack.config.detection import DetectionConfig
from celltrack.config.flow import FlowConfig
from celltrack.config.indicator import IndicatorConfig
from celltrack.config.movement import MovementConfig

__all__ = [
    "DETECTION_KINDS",
    "MOTION_KINDS",
    "RENAMED_KEYS",
    "AnyDetectionConfig",
    "AnyMotionConfig",
    "DetectionSection",
    "MotionSection",
    "StageSections",
    "check_joint",
    "check_kind",
    "renamed_keys",
]

#: Detection kinds and the config class of each.
DETECTION_KINDS: dict[str, type] = {
    "ellipsoid": DetectionConfig,
    "classical": DetectionConfig,
    "indicator": IndicatorConfig,
}
#: Motion kinds and the config class of each.
MOTION_KINDS: dict[str, type] = {"flow": FlowConfig, "movement_vectors": MovementConfig}

AnyDetectionConfig = DetectionConfig | IndicatorConfig
AnyMotionConfig = FlowConfig | MovementConfig


def _kind_of(value: Any, default: str) -> str:
    if isinstance(value, dict):
        return str(value.get("kind", default))
    return str(getattr(value, "kind", default))


def _detection_tag(value: Any) -> str:
    return "indicator" if _kind_of(value, "ellipsoid") == "indicator" else "elephant"


def _motion_tag(value: Any) -> str:
    return "movement_vectors" if _kind_of(value, "flow") == "movement_vectors" else "flow"


DetectionSection = Annotated[
    Annotated[DetectionConfig, Tag("elephant")] | Annotated[IndicatorConfig, Tag("indicator")],
    Discriminator(_detection_tag),
]
MotionSection = Annotated[
    Annotated[FlowConfig, Tag("flow")] | Annotated[MovementConfig, Tag("movement_vectors")],
    Discriminator(_motion_tag),
]


def check_kind(section: str, value: Any, kinds: dict[str, type]) -> Any:
    """Refuse an unknown ``kind`` with the list of known ones (before validation).

    Raises
    ------
    ValueError
        When ``value`` is a mapping whose ``kind`` is not in ``kinds``.
    """
    if isinstance(value, dict) and "kind" in value and value["kind"] not in kinds:
        raise ValueError(
            f"{section}.kind {value['kind']!r} is not a {section} kind; use one of "
            f"{', '.join(kinds)}"
        )
    return value


def check_joint(detection: Any, motion: Any) -> None:
    """A joint movement model needs the indicator detector (it trains both heads).

    Raises
    ------
    ValueError
        When ``motion.joint`` is set with another detection kind.
    """
    if getattr(motion, "joint", False) and getattr(detection, "kind", None) != "indicator":
        raise ValueError(
            "motion.joint: true trains one network with a cell-indicator head and a "
            "movement head, so it needs detection.kind: indicator; set detection.kind: "
            f"indicator or motion.joint: false (detection.kind is {detection.kind!r})"
        )


#: Keys renamed when the motion stage got a second kind: old name → new name.
RENAMED_KEYS: dict[str, str] = {
    "flow": "motion",
    "use_flow": "use_motion",
    "min_flow_links": "min_motion_links",
}


def renamed_keys(value: Any) -> Any:
    """Refuse the old key names of :data:`RENAMED_KEYS` with the new name (before validation).

    Raises
    ------
    ValueError
        When a mapping holds ``flow``, ``use_flow`` or ``min_flow_links``.
    """
    if isinstance(value, dict):
        for old, new in RENAMED_KEYS.items():
            if old in value:
                raise ValueError(
                    f"the key '{old}' is now '{new}' (the motion stage is ELEPHANT's flow or "
                    f"Linajea's movement vectors, chosen by motion.kind): rename '{old}' to "
                    f"'{new}'"
                )
    return value


class StageSections(Config):
    """The checks of a config with ``detection`` and ``motion`` sections (pipeline, project).

    Old key names are refused with the new one, unknown kinds with the known ones, and
    ``motion.joint`` needs ``detection.kind: indicator``. Subclasses declare the two fields.
    """

    @model_validator(mode="before")
    @classmethod
    def _renamed_keys(cls, value: Any) -> Any:
        return renamed_keys(value)

    @field_validator("detection", mode="before", check_fields=False)
    @classmethod
    def _check_detection_kind(cls, value: Any) -> Any:
        return check_kind("detection", value, DETECTION_KINDS)

    @field_validator("motion", mode="before", check_fields=False)
    @classmethod
    def _check_motion_kind(cls, value: Any) -> Any:
        return check_kind("motion", value, MOTION_KINDS)

    @model_validator(mode="after")
    def _joint_needs_indicator(self) -> StageSections:
        check_joint(self.detection, self.motion)  # type: ignore[attr-defined]
        return self
