"""Typed configuration: the base model every component config derives from, and file I/O.

Each component takes one pydantic v2 model derived from :class:`Config`: unknown keys
are rejected, instances are frozen, every field carries a description (with its unit).
:func:`load_config` / :func:`save_config` read and write YAML, TOML and JSON with an
exact round trip (``load_config(save_config(cfg)) == cfg``).
"""

from __future__ import annotations

import json
import reprlib
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
    variant), validates defaults and refuses NaN and infinite floats in every field
    (``.nan`` / ``.inf`` in a file are errors; a field that means "no limit" uses None).
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        validate_default=True,
        use_attribute_docstrings=False,
        allow_inf_nan=False,
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


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict, _REPR.maxtuple = 3, 6, 6, 6
_REPR.maxstring, _REPR.maxother, _REPR.maxlong = 60, 60, 40

#: most values (mapping entries, list items, scalars) a config file may expand to
MAX_CONFIG_VALUES = 100_000
#: deepest nesting a config file may have
MAX_CONFIG_DEPTH = 64


def _shown(value: Any) -> str:
    """A short repr whose cost is bounded (a YAML alias bomb must not hang the message)."""
    try:
        return _REPR.repr(value)
    except Exception:  # a repr that fails must not hide the real error
        return f"<{type(value).__name__}>"


def _check_size(data: Any, path: Path) -> None:
    """Refuse config data that expands to too many values or nests too deeply.

    YAML aliases make a few hundred bytes expand to billions of values (an "alias
    bomb"); walking with a budget stops after :data:`MAX_CONFIG_VALUES`.
    """
    budget = MAX_CONFIG_VALUES
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        budget -= 1
        if budget < 0:
            raise ConfigError(
                f"config file '{path}' expands to more than {MAX_CONFIG_VALUES} values (YAML "
                "aliases repeated?); a celltrack config is a small mapping: remove the aliases"
            )
        if depth > MAX_CONFIG_DEPTH:
            raise ConfigError(
                f"config file '{path}' nests deeper than {MAX_CONFIG_DEPTH} levels; a celltrack "
                "config nests a few sections: flatten it"
            )
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
            stack.extend((k, depth + 1) for k in value)
        elif isinstance(value, (list, tuple)):
            stack.extend((v, depth + 1) for v in value)


def _explain(error: ValidationError, model: type[BaseModel]) -> str:
    lines = []
    for item in error.errors(include_url=False, include_input=True):
        loc = tuple(item["loc"])
        where = ".".join(str(part) for part in loc) or "<root>"
        if item["type"] == "extra_forbidden":
            owner = _model_at(model, loc[:-1])
            allowed = sorted(owner.model_fields) if owner is not None else []
            hint = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
            lines.append(f"unknown key '{where}'{hint}")
        else:
            lines.append(f"'{where}': {item['msg']} (got {_shown(item.get('input'))})")
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
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config file '{path}': {exc}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"config file '{path}' has {len(raw)} bytes, more than the {MAX_CONFIG_BYTES} a "
            "config may have; is this the right file?"
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config file '{path}' is not UTF-8 text (byte {exc.start}: {exc.reason}); save it "
            "as UTF-8"
        ) from None
    try:
        data = _parse(text, fmt)
    except ValueError as exc:  # YAMLError is not one: _parse converts it
        raise ConfigError(f"cannot parse {fmt.upper()} config '{path}': {_short(exc)}") from None
    except RecursionError:
        raise ConfigError(
            f"cannot parse {fmt.upper()} config '{path}': nested too deeply; a celltrack config "
            "nests a few sections: flatten it"
        ) from None
    _check_size(data, path)
    try:
        return config_from_dict(data, model)
    except ConfigError as exc:
        raise ConfigError(f"config file '{path}': {exc}") from None


#: largest config file read (bytes)
MAX_CONFIG_BYTES = 10_000_000


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 400 else text[:397] + "..."


def _parse(text: str, fmt: str) -> Any:
    """Parse config text; parse errors come out as ValueError (the parsers load lazily)."""
    if fmt == "yaml":
        import yaml

        try:
            return yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ValueError(str(exc)) from None
        except (TypeError, AttributeError) as exc:  # e.g. an unhashable (list) mapping key
            raise ValueError(f"invalid YAML structure ({exc})") from None
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
