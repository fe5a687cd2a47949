"""examples/generate_synthetic.py writes a movie, a GEFF ground truth and a config."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from celltrack.config import load_config
from celltrack.io.geff_io import read_geff
from celltrack.io.images import read_image
from celltrack.synth import SynthConfig, make_embryo

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "generate_synthetic.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("generate_synthetic", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_script_writes_readable_outputs(tmp_path, capsys):
    script = _load_script()
    out = tmp_path / "out"
    assert script.main(["--out", str(out), "--frames", "3", "--seed", "2", "--preset", "tiny"]) == 0
    printed = capsys.readouterr().out
    assert "divisions" in printed and "image.zarr" in printed

    cfg = load_config(out / "synth_config.yaml", SynthConfig)
    assert cfg == SynthConfig.tiny(n_frames=3, seed=2)
    expected = make_embryo(cfg)
    movie = read_image(out / "image.zarr")
    np.testing.assert_array_equal(np.asarray(movie), expected.image)
    np.testing.assert_allclose(movie.voxel_size, expected.voxel_size)
    gt = read_geff(out / "gt.geff")
    assert gt.sorted().equals(expected.gt.sorted(), columns=False)
    np.testing.assert_allclose(
        gt.sorted().nodes["covariance"], expected.gt.sorted().nodes["covariance"]
    )
