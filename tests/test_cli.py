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
    assert main(["config", "init", str(path), "--cpu"]) == 0  # --cpu: an alias of --preset cpu
    text = path.read_text()
    assert "# Voxel size (z, y, x) in µm" in text and "\npreset: cpu\n" in text
    assert load_config(path, PipelineConfig) == PipelineConfig(preset="cpu")
    assert main(["config", "init", str(path)]) == 2
    assert "exists" in capsys.readouterr().err


def test_config_init_writes_preset_auto_and_full_leaves_the_networks_to_it(tmp_path, capsys):
    from celltrack.pipeline import Pipeline

    short, full = tmp_path / "short.yaml", tmp_path / "full.yaml"
    assert main(["config", "init", str(short)]) == 0
    assert "\npreset: auto\n" in short.read_text()
    assert main(["config", "init", str(full), "--full", "--preset", "default"]) == 0
    text = full.read_text()
    assert "\npreset: default\n" in text and "\n# detection:\n" in text and "\n# motion:\n" in text
    loaded = load_config(full, PipelineConfig)
    assert loaded == PipelineConfig(preset="default")
    assert not {"detection", "motion"} & loaded.model_fields_set  # commented out: the preset's
    # uncommenting one key sets that key only
    path = tmp_path / "edited.yaml"
    path.write_text(
        text.replace("\npreset: default\n", "\npreset: cpu\n")
        .replace("\n# detection:\n", "\ndetection:\n")
        .replace("\n#   train:\n", "\n  train:\n", 1)
        .replace("\n#     epochs: 10\n", "\n    epochs: 3\n", 1)
    )
    fitted = Pipeline(load_config(path, PipelineConfig), tmp_path / "w").config
    assert fitted.detection.train.epochs == 3 and fitted.detection.train.crop_shape == (8, 64, 64)


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
    assert "--quick is a smoke test" in out
    assert (tmp_path / "tracks.csv").read_text().startswith("track_id,t,z,y,x,parent_track_id")
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
    assert load_config(tmp_path / "c.yaml", PipelineConfig) == PipelineConfig(preset="cpu")


def test_export_ctc_into_a_folder_with_files_needs_force(tmp_path, capsys):
    """Bug: 'export --format ctc DIR' deleted every file already in DIR."""
    gt = make_embryo(SynthConfig.tiny()).gt
    write_geff(gt, tmp_path / "gt.geff")
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("a person's file")
    args = [
        "export",
        str(tmp_path / "gt.geff"),
        str(folder),
        "--format",
        "ctc",
        "--shape",
        "6",
        "12",
        "48",
        "48",
        "--voxel-size",
        "2",
        "1",
        "1",
    ]
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
        SynthConfig.tiny(
            shape=(1, 32, 32),
            n_frames=4,
            voxel_size=(1.0, 1.0, 1.0),
            n_nuclei=4,
            min_spacing_um=7.0,
        )
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
            "use_motion": "never",
            "data": DataConfig(
                image=str(movie),
                axes="TYX",
                voxel_size_um=(1.0, 1.0, 1.0),
                annotations=str(ann),
            ),
            "output": OutputConfig(directory=str(out), formats=("geff", "ctc"), figures=False),
        }
    )
    return cfg, out


def test_track_flags_override_the_movies_and_train_on_another(tmp_path, capsys, caplog):
    import json

    import tifffile

    cfg, out = _flat_movie(tmp_path)
    other = make_embryo(
        SynthConfig.tiny(
            shape=(1, 32, 32), n_frames=3, voxel_size=(1.0, 1.0, 1.0), n_nuclei=4, seed=5
        )
    )
    tracked = tmp_path / "other.tif"
    tifffile.imwrite(tracked, np.asarray(other.image)[:, 0], photometric="minisblack")
    path = save_config(cfg, tmp_path / "c.yaml")
    caplog.set_level("INFO", logger="celltrack.pipeline")
    argv = ["track", str(path), "--image", str(tracked), "--train-image", cfg.data.image]
    assert main(argv) == 0
    tracks = read_geff(out / "tracks.geff")
    assert set(np.unique(tracks.t).tolist()) <= {0, 1, 2}  # the 3 frames of the tracked movie
    data = json.loads((out / "provenance.json").read_text())["config"]["data"]
    assert data["image"] == str(tracked) and data["train_image"] == cfg.data.image
    assert "training on another movie" in caplog.text
    assert main(["track", str(path), "--image", str(tmp_path / "nope.tif")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --image") and "does not exist" in err
    assert main(["track", str(path), "--axes", "QYX"]) == 2
    assert "axes" in capsys.readouterr().err


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


def test_version(capsys):
    from celltrack import __version__

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"celltrack {__version__}"


def test_config_init_short_by_default_full_on_request(tmp_path, capsys):
    short, full = tmp_path / "short.yaml", tmp_path / "full.yaml"
    assert main(["config", "init", str(short)]) == 0
    assert "short form" in capsys.readouterr().out
    assert main(["config", "init", str(full), "--full"]) == 0
    short_text, full_text = short.read_text(), full.read_text()
    keys = [s for s in map(str.strip, short_text.splitlines()) if s and not s.startswith("#")]
    assert len(keys) <= 25, short_text  # the keys that matter (with their section headers)
    for key in ("image:", "axes:", "voxel_size_um:", "annotations:", "kind: ilp", "formats:"):
        assert key in short_text
    assert len(full_text.splitlines()) > 3 * len(short_text.splitlines())
    assert load_config(short, PipelineConfig) == PipelineConfig()
    assert load_config(full, PipelineConfig) == PipelineConfig()


def test_greedy_on_an_ilp_config_names_the_ilp_keys(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    assert main(["config", "init", str(path), "--full"]) == 0
    path.write_text(path.read_text().replace("  kind: ilp", "  kind: greedy"))
    assert main(["track", str(path)]) == 2
    err = capsys.readouterr().err
    assert "linker.kind is 'greedy'" in err and "of ilp only: appear_cost" in err
    assert "linker: {kind: greedy}" in err
    assert err.count("Extra inputs are not permitted") == 0
    assert len(err) < 2000


@pytest.mark.parametrize("value", ["2.0", "[2.0, 0.5]", "[1, 0, 1]", "abc"])
def test_voxel_size_error_says_three_numbers(tmp_path, capsys, value):
    path = tmp_path / "c.yaml"
    path.write_text(f"data:\n  voxel_size_um: {value}\n")
    assert main(["track", str(path)]) == 2
    assert "three" in (err := capsys.readouterr().err) and "[z, y, x] in µm" in err


def test_cli_messages_name_flags_and_config_keys(tmp_path, capsys):
    from celltrack.cli import _CONFIG_WORDS, _FLAG_WORDS, cli_message

    exists = "x exists (a file); nothing was written. Pass overwrite=True (CLI: --force) to replace"
    assert "Pass --force" in cli_message(exists, _FLAG_WORDS)
    assert "overwrite=True" not in cli_message(exists, _CONFIG_WORDS)
    axes = "pass axes= (e.g. axes='TZYX') with one letter per dimension"
    assert cli_message(axes, _CONFIG_WORDS).startswith("set data.axes")
    vs = "the voxel size is not in the file's metadata; pass voxel_size=(z, y, x) µm"
    assert "data.voxel_size_um: [z, y, x]" in cli_message(vs, _CONFIG_WORDS)
    assert "--voxel-size Z Y X" in cli_message(vs, _FLAG_WORDS)
    # end to end: export refuses to replace a file and names the flag
    gt = make_embryo(SynthConfig.tiny()).gt
    write_geff(gt, tmp_path / "gt.geff")
    (tmp_path / "out.csv").write_text("x\n")
    assert main(["export", str(tmp_path / "gt.geff"), str(tmp_path / "out.csv")]) == 2
    err = capsys.readouterr().err
    assert "--force" in err and "overwrite=True" not in err
    # a config-driven run without an image names the config key
    path = tmp_path / "c.yaml"
    path.write_text("output:\n  directory: out\n")
    assert main(["track", str(path), "--out", str(tmp_path / "never")]) == 2
    err = capsys.readouterr().err
    assert "data.image" in err and "run()" not in err.split("from Python")[0]


def test_failed_run_leaves_no_empty_output_folder(tmp_path, capsys, monkeypatch):
    from celltrack.errors import InvalidInputError
    from celltrack.pipeline import Pipeline

    def failing_run(self, *args, **kwargs):
        (self.workdir / "models").mkdir(parents=True)
        raise InvalidInputError("bad movie")

    monkeypatch.setattr(Pipeline, "run", failing_run)
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  image: movie.tif\n")
    out = tmp_path / "out"
    assert main(["track", str(path), "--out", str(out)]) == 2
    assert "bad movie" in capsys.readouterr().err
    assert not out.exists()
    # a folder that existed before, or holds a file, is left alone
    out.mkdir()
    assert main(["track", str(path), "--out", str(out)]) == 2
    assert out.is_dir()


def test_gitignore_ignores_demo_output():
    from pathlib import Path

    ignored = (Path(__file__).resolve().parents[1] / ".gitignore").read_text().splitlines()
    assert "/demo-out/" in ignored or "demo-out/" in ignored


def test_ground_truth_exported_in_the_gt_layout_evaluates_as_ground_truth(tmp_path, capsys):
    """Bug: exported GT was written result-style (res_track.txt, maskTTT.tif), so CTC
    evaluation could not read it as the reference without renaming files."""
    gt = make_embryo(SynthConfig.tiny()).gt
    write_geff(gt, tmp_path / "gt.geff")
    common = ["--format", "ctc", "--shape", "6", "12", "48", "48", "--voxel-size", "2", "1", "1"]
    gt_dir, res_dir = tmp_path / "01_GT" / "TRA", tmp_path / "01_RES"
    gt_layout = [*common, "--ctc-layout", "gt"]
    assert main(["export", str(tmp_path / "gt.geff"), str(gt_dir), *gt_layout]) == 0
    assert main(["export", str(tmp_path / "gt.geff"), str(res_dir), *common]) == 0
    assert (gt_dir / "man_track.txt").is_file() and (gt_dir / "man_track000.tif").is_file()
    capsys.readouterr()
    assert main(["evaluate", "--ctc", str(tmp_path / "01_GT"), str(res_dir)]) == 0
    tra = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("TRA"))
    assert tra.split()[-1] == "1.000000"


def test_export_offers_every_written_format():
    from celltrack.cli import build_parser
    from celltrack.io.tracks import WRITE_FORMATS

    parser = build_parser()
    export = parser._subparsers._group_actions[0].choices["export"]
    choices = next(a.choices for a in export._actions if a.dest == "format")
    assert sorted(choices) == sorted(WRITE_FORMATS)
