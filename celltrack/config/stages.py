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

from pydantic import Discriminator, Tag

from celltrack.config.detection import DetectionConfig
from celltrack.config.flow import FlowConfig
from celltrack.config.indicator import IndicatorConfig
from celltrack.config.movement import MovementConfig

__all__ = [
    "DETECTION_KINDS",
    "MOTION_KINDS",
    "AnyDetectionConfig",
    "AnyMotionConfig",
    "DetectionSection",
    "MotionSection",
    "check_joint",
    "check_kind",
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
