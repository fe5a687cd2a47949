"""Length units found in image and track metadata, as micrometres."""

from __future__ import annotations

from typing import Any

__all__ = ["unit_scale"]

#: length units → µm
_UNITS = {
    "micrometer": 1.0, "micrometre": 1.0, "micron": 1.0, "microns": 1.0, "um": 1.0,
    "µm": 1.0, "μm": 1.0, "\\u00b5m": 1.0, "nanometer": 1e-3, "nanometre": 1e-3, "nm": 1e-3,
    "millimeter": 1e3, "millimetre": 1e3, "mm": 1e3, "centimeter": 1e4, "cm": 1e4,
    "meter": 1e6, "metre": 1e6, "m": 1e6, "angstrom": 1e-4, "å": 1e-4,
}


def unit_scale(unit: Any) -> float | None:
    """Micrometres per ``unit`` (a length unit name such as ``"nm"``), None when unknown."""
    if unit is None:
        return None
    return _UNITS.get(str(unit).strip().lower())
