import json
import subprocess
import sys

import pytest
from pydantic import Field

from celltrack.config import Config, load_config, save_config
from celltrack.config.pipeline import PipelineConfig
from celltrack.errors import ConfigError


class Inner(Config):
    radius_um: float = Field(3.0, description="Nucleus radius (µm).")
    shape: tuple[int, int, int] = Field((8, 32, 32), description="Crop shape (z, y, x) voxels.")


class Outer(Config):
    name: str = Field("demo", description="Run name.")
    threshold: float | None = Field(None, description="Optional threshold (probability).")
    inner: Inner = Field(default_factory=Inner, description="Nested settings.")
    weights: list[float] = Field(default_factory=lambda: [1.0, 10.0, 10.0], description="Weights.")


@pytest.mark.parametrize("suffix", [".yaml", ".toml", ".json"])
def test_round_trip_exact(tmp_path, suffix):
    cfg = Outer(name="x", inner=Inner(radius_um=2.5, shape=(4, 16, 16)), weights=[0.5, 2.0])
    path = save_config(cfg, tmp_path / f"c{suffix}")
    assert load_config(path, Outer) == cfg
    default = Outer()
    assert load_config(save_config(default, tmp_path / f"d{suffix}"), Outer) == default


def test_unknown_key_names_key_and_allowed(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"inner": {"radius": 2.0}}))
    with pytest.raises(ConfigError, match=r"unknown key 'inner.radius'.*radius_um, shape"):
        load_config(path, Outer)
    path.write_text(json.dumps({"nam": "x"}))
    with pytest.raises(ConfigError, match=r"'nam'.*allowed keys: inner, name, threshold, weights"):
        load_config(path, Outer)


def test_mistyped_value_and_bad_files(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("inner:\n  radius_um: big\n")
    with pytest.raises(ConfigError, match=r"inner.radius_um"):
        load_config(path, Outer)
    path.write_text("inner: [unclosed\n")
    with pytest.raises(ConfigError, match="cannot parse"):
        load_config(path, Outer)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml", Outer)
    with pytest.raises(ConfigError, match="suffix"):
        load_config(tmp_path / "c.ini", Outer)


def test_frozen_and_forbid():
    cfg = Outer()
    with pytest.raises(ValueError):
        cfg.name = "y"  # type: ignore[misc]
    with pytest.raises(ValueError):
        Outer(unknown=1)  # type: ignore[call-arg]


def test_toml_refuses_none_over_non_none_default(tmp_path):
    class WithDefault(Config):
        value: float | None = Field(1.0, description="A value.")

    with pytest.raises(ConfigError, match="TOML"):
        save_config(WithDefault(value=None), tmp_path / "c.toml")


def test_import_celltrack_does_not_import_torch():
    code = (
        "import sys, celltrack, celltrack.graph, celltrack.io.atomic; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_direct_construction_raises_config_error():
    with pytest.raises(ConfigError, match=r"unknown key 'radius'.*radius_um"):
        Inner(radius=1.0)  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match="radius_um"):
        Inner(radius_um="big")  # type: ignore[arg-type]


def test_a_number_as_a_linker_key_is_named_not_a_crash(tmp_path):
    """Found by benchmarks/fuzz_readers.py: YAML reads a key ``-1`` as an int."""
    path = tmp_path / "c.yaml"
    path.write_text("linker:\n  kind: greedy\n  -1: 3\n  appear_cost: 1.0\n")
    with pytest.raises(ConfigError, match="of no linker only: -1"):
        load_config(path, PipelineConfig)
