"""Commented YAML for configs: every key preceded by its field description (with units)."""

from __future__ import annotations

import json
from typing import Any

import yaml
from pydantic import BaseModel

__all__ = ["commented_yaml"]


def _scalar(value: Any) -> str:
    """One-line YAML for a JSON-compatible value (flow style for lists and dicts)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def _lines(model: BaseModel, indent: int) -> list[str]:
    pad = " " * indent
    out: list[str] = []
    data = model.model_dump(mode="json")
    for name, field in type(model).model_fields.items():
        if field.description:
            out.append(f"{pad}# {field.description}")
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            out.append(f"{pad}{name}:")
            out.extend(_lines(value, indent + 2))
        else:
            out.append(f"{pad}{name}: {_scalar(json.loads(json.dumps(data[name])))}")
    return out


def commented_yaml(model: BaseModel) -> str:
    """YAML text of ``model`` with each field's description as a comment above it.

    Loading the text back with :func:`celltrack.config.load_config` gives ``model`` again.
    """
    header = f"# celltrack {type(model).__name__}: edit the values; comments explain each key."
    return "\n".join([header, *_lines(model, 0)]) + "\n"
