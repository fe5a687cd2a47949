import numpy as np
import pytest

from celltrack.cli import main
from celltrack.config import load_config
from celltrack.io import read_geff, write_annotations, write_geff
from celltrack.pipeline import PipelineConfig
from celltrack.synth import SynthConfig, make_embryo


def test_config_init_writes_commented_config_that_loads_back(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    assert main(["config", "init", str(path), "--cpu"]) == 0
    text = path.read_text()
    assert "# Voxel size (z, y, x) in µm" in text
    assert load_config(path, PipelineConfig) == PipelineConfig.cpu()
    assert main(["config", "init", str(path)]) == 2
    assert "exists" in capsys.readouterr().err


def test_evaluate_and_export(tmp_path, capsys):
    gt = make_embryo(SynthConfig.tiny()).gt
    write_geff(gt, tmp_path / "gt.geff")
    assert main(["evaluate", str(tmp_path / "gt.geff"), str(tmp_path / "gt.geff")]) == 0
    out = capsys.readouterr().out
    assert "TRA" in out and "1.000000" in out
    assert main(["export", str(tmp_path / "gt.geff"), str(tmp_path / "gt.csv")]) == 0
    assert main(["export", str(tmp_path / "gt.csv"), str(tmp_path / "back.geff")]) == 0
    back = read_geff(tmp_path / "back.geff")
    assert back.num_nodes == gt.num_nodes and back.num_edges == gt.num_edges
    np.testing.assert_allclose(back.sorted().positions, gt.sorted().positions, atol=1e-6)
    shape = ["6", "12", "48", "48"]
    args = ["export", str(tmp_path / "gt.geff"), str(tmp_path / "ctc"), "--format", "ctc"]
    assert main([*args, "--shape", *shape, "--voxel-size", "2", "1", "1"]) == 0
    assert (tmp_path / "ctc" / "res_track.txt").is_file()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["track", "missing.yaml"], "does not exist"),
        (["evaluate", "nope.geff", "nope.geff"], "does not exist"),
        (["export", "nope.csv", "x.geff"], "does not exist"),
    ],
)
def test_bad_input_exits_2_with_message(tmp_path, capsys, argv, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_bad_config_and_bad_export_target(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("linker:\n  kind: ilq\n")
    assert main(["track", str(bad)]) == 2
    assert "kind" in capsys.readouterr().err
    gt = make_embryo(SynthConfig.tiny()).gt
    write_annotations(gt, tmp_path / "g.csv")
    assert main(["export", str(tmp_path / "g.csv"), str(tmp_path / "out.xyz")]) == 2
    assert "output format" in capsys.readouterr().err


def test_demo_quick_prints_side_by_side_table_and_writes_outputs(tmp_path, capsys):
    assert main(["demo", "--quick", "--quiet", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0].split()
    assert header == ["greedy", "flow_nn", "ilp"]
    for row in ("DET", "TRA", "LNK", "division F1", "error-free tracks (L=5)", "time per stage"):
        assert row in out
    for name in ("tracks.geff", "tracks.csv", "ctc/01_RES/res_track.txt", "demo_scores.json"):
        assert (tmp_path / name).exists(), name
    for fig in ("tracks", "lineages", "losses", "error_free_tracks", "errors"):
        assert (tmp_path / "figures" / f"{fig}.png").stat().st_size > 1000
