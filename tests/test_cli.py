import subprocess
import sys
import textwrap

import numpy as np
import pytest

from celltrack.cli import main
from celltrack.config import config_from_dict, load_config, save_config
from celltrack.config.pipeline import DataConfig, OutputConfig, PipelineConfig
from celltrack.demo import demo_config
from celltrack.io import read_geff, read_tracks, write_annotations, write_geff
from celltrack.synth import SynthConfig, make_embryo, sample_annotations


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
    assert "format of 'out.xyz'" in capsys.readouterr().err


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


def test_config_init_does_not_import_torch(tmp_path):
    code = (
        "import sys\n"
        "from celltrack.cli import main\n"
        f"assert main(['config', 'init', {str(tmp_path / 'c.yaml')!r}, '--cpu']) == 0\n"
        "print(sorted(m for m in ('torch', 'celltrack.detect', 'celltrack.flow') "
        "if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert load_config(tmp_path / "c.yaml", PipelineConfig) == PipelineConfig.cpu()


def test_export_ctc_into_a_folder_with_files_needs_force(tmp_path, capsys):
    """Bug: 'export --format ctc DIR' deleted every file already in DIR."""
    gt = make_embryo(SynthConfig.tiny()).gt
    write_geff(gt, tmp_path / "gt.geff")
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("a person's file")
    args = ["export", str(tmp_path / "gt.geff"), str(folder), "--format", "ctc",
            "--shape", "6", "12", "48", "48", "--voxel-size", "2", "1", "1"]
    assert main(args) == 2
    assert "error:" in capsys.readouterr().err
    assert (folder / "notes.txt").read_text() == "a person's file"
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
    assert main([*args, "--force"]) == 0
    assert (folder / "res_track.txt").is_file()
    assert read_tracks(folder, voxel_size=(2, 1, 1)).num_nodes == gt.num_nodes


def _flat_movie(tmp_path):
    """A 2D+t TIFF (T, Y, X) of 4 frames of 32 × 32 pixels, annotations and a fast config."""
    import tifffile

    data = make_embryo(
        SynthConfig.tiny(shape=(1, 32, 32), n_frames=4, voxel_size=(1.0, 1.0, 1.0),
                         n_nuclei=4, min_spacing_um=7.0)
    )
    movie = tmp_path / "movie.tif"
    tifffile.imwrite(movie, np.asarray(data.image)[:, 0], photometric="minisblack")
    ann = write_annotations(
        sample_annotations(data.gt, n_nuclei=3, n_links=3, rng=0), tmp_path / "ann.csv"
    )
    out = tmp_path / "out"
    cfg = demo_config(out, quick=True).model_copy(
        update={
            "progress": False,
            "use_flow": "never",
            "data": DataConfig(
                image=str(movie), axes="TYX", voxel_size_um=(1.0, 1.0, 1.0),
                annotations=str(ann),
            ),
            "output": OutputConfig(directory=str(out), formats=("geff", "ctc"), figures=False),
        }
    )
    return cfg, out


def test_track_runs_a_2d_movie_from_a_tiff(tmp_path, capsys):
    cfg, out = _flat_movie(tmp_path)
    path = save_config(cfg, tmp_path / "c.yaml")
    assert main(["track", str(path)]) == 0
    assert "status" in capsys.readouterr().out
    tracks = read_geff(out / "tracks.geff")
    assert tracks.num_edges > 0 and np.all(tracks.nodes["z"] == 0)
    assert (out / "ctc" / "01_RES" / "res_track.txt").is_file()


PLUGIN = """
    from typing import Literal

    from pydantic import Field

    from celltrack.config import Config
    from celltrack.solve import GreedyConfig, Linker, make_linker, register_linker


    class ClosestConfig(Config):
        kind: Literal["cli_test_closest"] = Field("cli_test_closest", description="kind")


    class ClosestLinker(Linker):
        config_class = ClosestConfig

        def _link(self, candidates):
            return make_linker(GreedyConfig()).link(candidates)


    register_linker("cli_test_closest", ClosestConfig, ClosestLinker)
"""


def test_track_with_a_users_linker_from_a_plugin_module(tmp_path, capsys, monkeypatch):
    (tmp_path / "cli_test_plugin.py").write_text(textwrap.dedent(PLUGIN))
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg, out = _flat_movie(tmp_path)
    path = tmp_path / "c.yaml"
    text = save_config(cfg, path).read_text()
    start = text.index("linker:")
    end = text.index("\nblockwise:")
    path.write_text(text[:start] + "linker:\n  kind: cli_test_closest" + text[end:])
    assert main(["track", str(path)]) == 2  # the kind is unknown until the plugin is loaded
    assert "cli_test_closest" in capsys.readouterr().err
    assert main(["track", str(path), "--plugin", "cli_test_plugin"]) == 0
    assert read_geff(out / "tracks.geff").num_edges > 0
    loaded = config_from_dict(load_config(path, PipelineConfig).model_dump(), PipelineConfig)
    assert loaded.linker.kind == "cli_test_closest"
    assert main(["track", str(path), "--plugin", "no_such_module_xyz"]) == 2
    assert "no_such_module_xyz" in capsys.readouterr().err
