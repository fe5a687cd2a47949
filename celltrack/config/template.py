"""Commented YAML for configs: every key preceded by its field description (with units).

:func:`commented_yaml` writes every key (``celltrack config init --full``);
:func:`short_yaml` writes the keys a first run changes plus whatever differs from the
defaults (``celltrack config init``), and loads back to the same config. Sections a
preset fills (a pipeline config's ``detection`` and ``motion`` under ``preset``) can be
written commented out, so that every key is shown but none is set.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import yaml
from pydantic import BaseModel

__all__ = ["SHORT_KEYS", "commented_yaml", "short_yaml"]

#: The keys of a pipeline config most first runs set (dotted paths), in the short config.
SHORT_KEYS = (
    "preset",
    "data.image",
    "data.axes",
    "data.voxel_size_um",
    "data.annotations",
    "data.annotation_units",
    "data.ground_truth",
    "use_motion",
    "motion.kind",
    "detection.kind",
    "detection.train.epochs",
    "detection.train.device",
    "linker.kind",
    "output.directory",
    "output.formats",
)


def _scalar(value: Any) -> str:
    """One-line YAML for a JSON-compatible value (flow style for lists and dicts)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def _default_of(model: BaseModel) -> BaseModel | None:
    """A default-constructed instance of ``model``'s class (None if it has required fields)."""
    try:
        return type(model)()
    except (TypeError, ValueError):  # a config with required fields has no default
        return None


def _lines(
    model: BaseModel,
    indent: int,
    keys: set[str] | None = None,
    prefix: str = "",
    default: BaseModel | None = None,
) -> list[str]:
    """YAML lines of ``model``; with ``keys``, only those keys and values unlike ``default``."""
    pad = " " * indent
    out: list[str] = []
    data = model.model_dump(mode="json")
    for name, field in type(model).model_fields.items():
        path = f"{prefix}{name}"
        value = getattr(model, name)
        if keys is not None:
            wanted = path in keys or any(k.startswith(path + ".") for k in keys)
            base = getattr(default, name, None) if default is not None else None
            differs = default is None or (type(base) is not type(value) or base != value)
            if not (wanted or differs):
                continue
        if isinstance(value, BaseModel):
            sub_default = None
            if keys is not None and default is not None:
                base = getattr(default, name, None)
                sub_default = base if type(base) is type(value) else None
                if sub_default is None:  # another class (e.g. linker kind): all of it
                    inner = _lines(value, indent + 2)
                else:
                    inner = _lines(value, indent + 2, keys, path + ".", sub_default)
            else:
                inner = (
                    _lines(value, indent + 2, keys, path + ".", None)
                    if keys
                    else (_lines(value, indent + 2))
                )
            if not inner:
                continue
            if field.description:
                out.append(f"{pad}# {field.description}")
            out.append(f"{pad}{name}:")
            out.extend(inner)
        else:
            if field.description:
                out.append(f"{pad}# {field.description}")
            out.append(f"{pad}{name}: {_scalar(json.loads(json.dumps(data[name])))}")
    return out


#: Said above the sections :func:`commented_yaml` writes commented out.
PRESET_NOTE = (
    "# ---- {names}: every key is commented out, so that 'preset' chooses its value; the\n"
    "# ---- values shown are those of preset {preset}. Uncomment (remove one '# ') the keys\n"
    "# ---- you change, with their section lines: keys you set always win."
)


def commented_yaml(
    model: BaseModel,
    commented: Mapping[str, BaseModel] | None = None,
    *,
    preset: str = "",
) -> str:
    """YAML text of ``model`` with each field's description as a comment above it.

    Loading the text back with :func:`celltrack.config.load_config` gives ``model`` again.

    Parameters
    ----------
    model : BaseModel
        The config.
    commented : mapping of str to BaseModel, optional
        Top-level sections written commented out (every line behind ``# ``), showing the
        given values instead of ``model``'s: they stay unset when the text is loaded (e.g.
        a pipeline config's ``detection`` and ``motion``, which ``preset`` fills).
    preset : str
        Named in the note above the commented sections.
    """
    header = f"# celltrack {type(model).__name__}: edit the values; comments explain each key."
    commented = dict(commented or {})
    if not commented:
        return "\n".join([header, *_lines(model, 0)]) + "\n"
    out = [header]
    fields = type(model).model_fields
    for name in fields:
        if name in commented:
            continue
        out.extend(_field_lines(model, name))
    if commented:
        out.append(PRESET_NOTE.format(names=", ".join(commented), preset=preset or "?"))
        for name, section in commented.items():
            description = fields[name].description
            lines = ([f"# {description}"] if description else []) + [f"{name}:"]
            lines += _lines(section, 2)
            out.extend(f"# {line}" for line in lines)
    return "\n".join(out) + "\n"


def _field_lines(model: BaseModel, name: str) -> list[str]:
    """The commented YAML lines of one top-level field of ``model``."""
    field = type(model).model_fields[name]
    value = getattr(model, name)
    lines = [f"# {field.description}"] if field.description else []
    if isinstance(value, BaseModel):
        return [*lines, f"{name}:", *_lines(value, 2)]
    data = model.model_dump(mode="json", include={name})
    return [*lines, f"{name}: {_scalar(json.loads(json.dumps(data[name])))}"]


def short_yaml(model: BaseModel, keys: Iterable[str] = SHORT_KEYS) -> str:
    """Commented YAML with only ``keys`` (dotted paths) and the values unlike the defaults.

    Every other key keeps its default, so loading the text back with
    :func:`celltrack.config.load_config` gives ``model`` again.

    Parameters
    ----------
    model : BaseModel
        The config (its class must be constructible without arguments).
    keys : iterable of str
        Dotted keys always written (default :data:`SHORT_KEYS`).
    """
    header = (
        f"# celltrack {type(model).__name__}, short form: the keys a first run sets. Every "
        "key not\n# listed keeps its default; 'celltrack config init --full' writes them all."
    )
    default = _default_of(model)
    return "\n".join([header, *_lines(model, 0, set(keys), "", default)]) + "\n"
