"""Typed configuration: the base model every component config derives from, and file I/O.

Each component takes one pydantic v2 model derived from :class:`Config`: unknown keys
are rejected, instances are frozen, every field carries a description (with its unit).
:func:`load_config` / :func:`save_config` read and write YAML, TOML and JSON with an
exact round trip (``load_config(save_config(cfg)) == cfg``).
"""

from __future__ import annotations

import json
import sys
import typing
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from celltrack.errors import ConfigError

__all__ = ["Config", "config_from_dict", "load_config", "save_config"]

C = TypeVar("C", bound="Config")

_SUFFIXES = {".yaml": "yaml", ".yml": "yaml", ".toml": "toml", ".json": "json"}


class Config(BaseModel):
    """Base of every celltrack configuration model.

    Forbids unknown keys, is immutable (use ``cfg.model_copy(update={...})`` to derive a
    variant) and validates defaults.
    """

    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_default=True, use_attribute_docstrings=False
    )

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigError(_explain(exc, type(self))) from None

    # nested models are validated by pydantic's core without calling __init__ (so error
    # locations stay complete); tell pydantic this __init__ adds no behaviour of its own
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """Walk a validation-error location down nested models; ``None`` if it leaves them."""
    current: Any = model
    for key in loc:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(key) if isinstance(key, str) else None
        if field is None:
            # a discriminator tag (e.g. 'ilp') names the union member
            return None if not isinstance(key, str) else current
        annotation = field.annotation
        candidates = [annotation, *typing.get_args(annotation)]
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not nested:
            return None
        current = nested[0]
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _explain(error: ValidationError, model: type[BaseModel]) -> str:
    lines = []
    for item in error.errors():
        loc = tuple(item["loc"])
        where = ".".join(str(part) for part in loc) or "<root>"
        if item["type"] == "extra_forbidden":
            owner = _model_at(model, loc[:-1])
            allowed = sorted(owner.model_fields) if owner is not None else []
            hint = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
            lines.append(f"unknown key '{where}'{hint}")
        else:
            lines.append(f"'{where}': {item['msg']} (got {item.get('input')!r})")
    return f"invalid {model.__name__}: " + "; ".join(lines)


def config_from_dict(data: Any, model: type[C]) -> C:
    """Validate a plain mapping into ``model``, raising :class:`ConfigError` on any problem.

    Parameters
    ----------
    data : mapping
        Keys and values as they appear in a config file.
    model : type
        The :class:`Config` subclass to build.
    """
    if not isinstance(data, dict):
        raise ConfigError(
            f"a {model.__name__} must be a mapping of keys to values, got {type(data).__name__}"
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, model)) from None


def _format_of(path: Path) -> str:
    fmt = _SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(
            f"cannot tell the config format of '{path}': expected a suffix among "
            f"{', '.join(sorted(_SUFFIXES))}, got '{path.suffix or '(none)'}'"
        )
    return fmt


def load_config(path: str | Path, model: type[C]) -> C:
    """Read a YAML, TOML or JSON file into a config model.

    Parameters
    ----------
    path : str or Path
        File whose suffix (``.yaml``/``.yml``, ``.toml``, ``.json``) selects the format.
    model : type
        The :class:`Config` subclass to build.

    Returns
    -------
    Config
        The validated, frozen configuration.

    Raises
    ------
    ConfigError
        If the file is missing or unparsable, or a key is unknown or has a wrong type
        (the message names the key and the allowed ones).
    """
    path = Path(path)
    fmt = _format_of(path)
    if not path.is_file():
        raise ConfigError(f"config file '{path}' does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        data = _parse(text, fmt)
    except ValueError as exc:  # YAMLError is not one: _parse converts it
        raise ConfigError(f"cannot parse {fmt.upper()} config '{path}': {exc}") from None
    return config_from_dict(data, model)


def _parse(text: str, fmt: str) -> Any:
    """Parse config text; parse errors come out as ValueError (the parsers load lazily)."""
    if fmt == "yaml":
        import yaml

        try:
            return yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ValueError(str(exc)) from None
    if fmt == "toml":
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover
            import tomli as tomllib
        return tomllib.loads(text)  # TOMLDecodeError is a ValueError
    return json.loads(text)  # JSONDecodeError is a ValueError


def _drop_none(value: Any, where: str) -> Any:
    """TOML has no null: drop ``None`` entries (they reload as their ``None`` default)."""
    if isinstance(value, dict):
        return {k: _drop_none(v, f"{where}.{k}") for k, v in value.items() if v is not None}
    if isinstance(value, list):
        if any(v is None for v in value):
            raise ConfigError(f"TOML cannot store a null inside the list '{where}'; use YAML/JSON")
        return [_drop_none(v, where) for v in value]
    return value


def _check_none_defaults(cfg: BaseModel, where: str = "") -> None:
    for name, field in type(cfg).model_fields.items():
        value = getattr(cfg, name)
        key = f"{where}{name}"
        if value is None and field.default is not None:
            raise ConfigError(
                f"'{key}' is None but its default is not: TOML cannot store null, "
                "save this config as YAML or JSON"
            )
        if isinstance(value, BaseModel):
            _check_none_defaults(value, f"{key}.")


def config_to_text(cfg: Config, fmt: str) -> str:
    """Serialise a config to YAML, TOML or JSON text (``fmt`` in {'yaml', 'toml', 'json'})."""
    data = cfg.model_dump(mode="json")
    if fmt == "yaml":
        import yaml

        return yaml.safe_dump(data, sort_keys=False)
    if fmt == "toml":
        import tomli_w

        _check_none_defaults(cfg)
        return tomli_w.dumps(_drop_none(data, ""))
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    raise ConfigError(f"unknown config format '{fmt}': expected yaml, toml or json")


def save_config(cfg: Config, path: str | Path) -> Path:
    """Write a config to YAML, TOML or JSON (chosen by suffix), atomically.

    Parameters
    ----------
    cfg : Config
        The configuration to save.
    path : str or Path
        Destination; its suffix selects the format.

    Returns
    -------
    Path
        The written path.
    """
    from celltrack.io.atomic import atomic_write_text

    path = Path(path)
    if not isinstance(cfg, BaseModel):
        raise ConfigError(f"save_config expects a Config instance, got {type(cfg).__name__}")
    atomic_write_text(path, config_to_text(cfg, _format_of(path)))
    return path
