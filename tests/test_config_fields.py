"""Every configuration model of celltrack follows the design rules: forbid unknown keys,
frozen, and every field described."""

import importlib
import pkgutil

import celltrack
from celltrack.config import Config


def _all_config_models() -> list[type[Config]]:
    for module in pkgutil.walk_packages(celltrack.__path__, "celltrack."):
        importlib.import_module(module.name)
    seen, stack = [], list(Config.__subclasses__())
    while stack:
        cls = stack.pop()
        if cls.__module__.startswith("celltrack.") and cls not in seen:
            seen.append(cls)
        stack.extend(cls.__subclasses__())
    return seen


def test_every_config_field_is_described_and_models_are_strict():
    models = _all_config_models()
    assert len(models) >= 5
    undocumented = [
        f"{m.__module__}.{m.__name__}.{name}"
        for m in models
        for name, field in m.model_fields.items()
        if not (field.description and field.description.strip())
    ]
    assert undocumented == []
    for m in models:
        assert m.model_config.get("extra") == "forbid", m
        assert m.model_config.get("frozen") is True, m


def test_every_config_default_round_trips_through_yaml(tmp_path):
    from celltrack.config import load_config, save_config

    for m in _all_config_models():
        try:
            default = m()
        except Exception:  # models with required fields have no default instance
            continue
        path = save_config(default, tmp_path / f"{m.__name__}.yaml")
        assert load_config(path, m) == default, m
