"""SynthConfig: descriptions, presets, validation and file round trip."""

from __future__ import annotations

import pytest

from celltrack.config import config_from_dict, load_config, save_config
from celltrack.errors import ConfigError
from celltrack.synth import SynthConfig, make_embryo


def test_every_field_is_described_with_a_unit_or_meaning():
    for name, field in SynthConfig.model_fields.items():
        assert field.description and len(field.description) > 15, name


def test_presets_respect_their_size_budgets():
    default, tiny, large = SynthConfig(), SynthConfig.tiny(), SynthConfig.large_motion()
    assert default.n_frames >= 15
    assert all(s <= c for s, c in zip(default.shape, (32, 128, 128)))
    assert tiny.n_frames <= 6
    assert all(s <= c for s, c in zip(tiny.shape, (16, 48, 48)))
    # nuclei are 6-10 voxels across in y/x
    assert 6 <= 2 * default.radius_um / default.voxel_size[2] <= 10
    assert default.voxel_size[0] > default.voxel_size[2]  # anisotropic voxels
    assert default.blur_sigma_um[0] > default.blur_sigma_um[2]  # PSF longer in z
    assert large.division_rate > 0
    # overrides reach the preset
    assert SynthConfig.tiny(seed=7).seed == 7
    assert SynthConfig.large_motion(n_frames=4).n_frames == 4


@pytest.mark.parametrize("suffix", [".yaml", ".toml", ".json"])
def test_config_round_trips_through_files(tmp_path, suffix):
    cfg = SynthConfig.large_motion(seed=5)
    assert load_config(save_config(cfg, tmp_path / f"c{suffix}"), SynthConfig) == cfg


@pytest.mark.parametrize(
    "bad",
    [
        {"n_frames": 0},
        {"shape": [0, 10, 10]},
        {"shape": [4, 10]},
        {"voxel_size": [1.0, -1.0, 1.0]},
        {"n_nuclei": 50, "max_nuclei": 10},
        {"radius_um": 2.0, "radius_std_um": 2.5},
        {"division_rate": 1.5},
        {"anisotropy": 0.5},
        {"texture_strength": -0.1},
        {"drift_rotation_axis": [0.0, 0.0, 0.0]},
        {"jitter_um": float("nan")},
        {"nuclei": 3},  # unknown key
    ],
)
def test_bad_values_raise_config_error(bad):
    with pytest.raises(ConfigError):
        config_from_dict(bad, SynthConfig)
    with pytest.raises(ConfigError):
        make_embryo(bad)
    with pytest.raises(ValueError):  # direct construction: pydantic's ValidationError
        SynthConfig(**bad)


def test_config_is_frozen():
    cfg = SynthConfig.tiny()
    with pytest.raises(ValueError):
        cfg.seed = 3  # type: ignore[misc]


def test_make_embryo_rejects_non_configs():
    with pytest.raises(ConfigError, match="SynthConfig"):
        make_embryo("default")  # type: ignore[arg-type]


def test_impossible_packing_is_a_config_error():
    cfg = SynthConfig.tiny(n_nuclei=200, max_nuclei=200, min_spacing_um=10.0)
    with pytest.raises(ConfigError, match="min_spacing_um"):
        make_embryo(cfg)
