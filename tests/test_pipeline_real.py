"""Entry points on real users' movies (#15): presets for the machine, training on one movie
and tracking another, the classical detector, 2D+t and 3D+t with defaults."""

import importlib.util
import json
import logging

import numpy as np
import pytest

import celltrack.pipeline as pipeline_module
from celltrack.config import config_from_dict, load_config
from celltrack.config.detection import DetectionConfig
from celltrack.config.flow import FlowConfig
from celltrack.demo import demo_config
from celltrack.errors import ConfigError, InvalidInputError
from celltrack.pipeline import OutputConfig, Pipeline, PipelineConfig
from celltrack.solve import GreedyConfig, ILPConfig
from celltrack.synth import SynthConfig, make_embryo, sample_annotations

NO_GPU = "no GPU: detection and motion use the CPU presets (preset: auto"


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(pipeline_module, "cuda_available", lambda: False)


@pytest.fixture
def cuda(monkeypatch):
    monkeypatch.setattr(pipeline_module, "cuda_available", lambda: True)


# ---------------------------------------------------------------------- presets
def test_auto_preset_without_cuda_gives_unset_keys_the_cpu_presets(tmp_path, no_cuda, caplog):
    caplog.set_level(logging.INFO, logger="celltrack.pipeline")
    cfg = config_from_dict(
        {"progress": False, "detection": {"train": {"epochs": 3}, "kind": "classical"}},
        PipelineConfig,
    )
    fitted = Pipeline(cfg, tmp_path).config
    cpu_det, cpu_flow = DetectionConfig.cpu(), FlowConfig.cpu()
    # keys the user set win; every other detection/flow key is the CPU preset's
    assert fitted.detection.train.epochs == 3 and fitted.detection.kind == "classical"
    assert fitted.detection.train.crop_shape == cpu_det.train.crop_shape == (8, 64, 64)
    assert fitted.detection.model == cpu_det.model and fitted.detection.spots == cpu_det.spots
    assert fitted.motion == cpu_flow
    assert fitted.preset == "auto" and caplog.text.count(NO_GPU) == 1
    # nothing set: exactly the CPU presets
    assert Pipeline(PipelineConfig(progress=False), tmp_path).config == PipelineConfig.cpu(
        progress=False
    )


def test_auto_preset_with_cuda_and_explicit_presets_keep_the_config(tmp_path, cuda, caplog):
    caplog.set_level(logging.INFO, logger="celltrack.pipeline")
    cfg = PipelineConfig(progress=False)
    assert Pipeline(cfg, tmp_path).config is cfg  # GPU: the GPU-sized defaults
    assert NO_GPU not in caplog.text
    default = PipelineConfig(preset="default", progress=False)
    assert Pipeline(default, tmp_path).config.detection == DetectionConfig()
    cpu = Pipeline(PipelineConfig(preset="cpu", progress=False), tmp_path).config  # on a GPU
    assert cpu.detection == DetectionConfig.cpu() and cpu.motion == FlowConfig.cpu()
    explicit = PipelineConfig.cpu(progress=False)  # whole sections given: kept as they are
    assert Pipeline(explicit, tmp_path).config == explicit


def test_explicit_keys_that_do_not_fit_the_preset_name_the_fix(tmp_path, no_cuda):
    cfg = config_from_dict({"detection": {"labels": {"centre_ratio": 0.4}}}, PipelineConfig)
    with pytest.raises(ConfigError, match=r"cpu.*preset.*centre_ratio.*preset: default"):
        Pipeline(cfg, tmp_path)


def test_the_preset_round_trips_through_yaml(tmp_path, no_cuda):
    path = tmp_path / "c.yaml"
    path.write_text("preset: cpu\ndetection:\n  train:\n    epochs: 2\n")
    cfg = load_config(path, PipelineConfig)
    assert cfg.preset == "cpu" and cfg.detection.train.crop_shape == (16, 96, 96)  # as written
    fitted = Pipeline(cfg, tmp_path).config
    assert fitted.detection.train.epochs == 2 and fitted.detection.train.crop_shape == (8, 64, 64)
    with pytest.raises(ConfigError, match="preset"):
        config_from_dict({"preset": "gpu"}, PipelineConfig)


# ---------------------------------------------------------------------- movie A → movie B
def _flat(seed: int):
    cfg = SynthConfig.tiny(
        shape=(1, 32, 32),
        n_frames=4,
        voxel_size=(1.0, 1.0, 1.0),
        n_nuclei=4,
        min_spacing_um=7.0,
        seed=seed,
    )
    return make_embryo(cfg)


@pytest.fixture(scope="module")
def two_movies():
    return _flat(0), _flat(1)


def quick(workdir, **overrides) -> PipelineConfig:
    output = OutputConfig(directory=str(workdir), formats=("geff",), figures=False)
    cfg = demo_config(workdir, quick=True)
    return cfg.model_copy(
        update={"progress": False, "linker": GreedyConfig(), "output": output, **overrides}
    )


def _stages(workdir):
    return json.loads((workdir / "provenance.json").read_text())["stages"]


def test_train_on_one_movie_and_track_another(two_movies, tmp_path):
    a, b = two_movies
    ann = sample_annotations(a.gt, n_nuclei=4, n_links=6, rng=0)
    cfg = quick(tmp_path, use_motion="always")
    pipe = Pipeline(cfg, tmp_path)
    result = pipe.run(b.image[:, 0], ann, voxel_size=b.voxel_size, train_images=a.image[:, 0])
    assert pipe.separate_training and result.link.ok
    # the spots are B's detections: A's annotations are neither merged in nor pinned
    assert set(np.unique(result.spots.nodes["tag"]).tolist()) <= {"unlabeled"}
    assert {"parent_z", "parent_y", "parent_x"} <= set(result.spots.node_columns)
    assert result.tracks.num_nodes > 0
    first = _stages(tmp_path)

    # another tracked movie: the networks are reused, detection and flow prediction rerun
    moved = np.roll(np.asarray(b.image[:, 0]), 3, axis=-1)
    Pipeline(cfg, tmp_path).run(moved, ann, voxel_size=b.voxel_size, train_images=a.image[:, 0])
    second = _stages(tmp_path)
    assert second["train_detection"]["reused"] and second["train_motion"]["reused"]
    assert not second["detect"]["reused"] and not second["predict_motion"]["reused"]
    assert second["detect"]["fingerprint"] != first["detect"]["fingerprint"]

    # another training movie: the networks train again
    Pipeline(cfg, tmp_path).run(b.image[:, 0], ann, voxel_size=b.voxel_size, train_images=moved)
    third = _stages(tmp_path)
    assert not third["train_detection"]["reused"] and not third["train_motion"]["reused"]
    assert third["train_detection"]["fingerprint"] != first["train_detection"]["fingerprint"]

    # naming the tracked movie itself as the training movie is the usual run
    movie, _ = pipe.movie(b.image[:, 0], b.voxel_size)
    assert pipe.training_movie(movie, np.array(b.image[:, 0]))[2] is False
    assert pipe.training_movie(movie)[0] is movie


def test_train_image_must_be_of_the_same_kind_and_learned_costs_need_the_tracked_movie(
    two_movies, tmp_path
):
    a, b = two_movies
    ann = sample_annotations(a.gt, n_nuclei=3, n_links=3, rng=0)
    volume = np.repeat(np.asarray(a.image), 3, axis=1)  # a 3D+t movie
    with pytest.raises(InvalidInputError, match=r"data\.train_image.*2D\+t.*3D\+t|3D\+t.*2D\+t"):
        Pipeline(quick(tmp_path), tmp_path).run(
            b.image[:, 0], ann, voxel_size=b.voxel_size, train_images=volume
        )
    learn = quick(tmp_path, use_motion="never", linker=ILPConfig(learn=True))
    with pytest.raises(InvalidInputError, match=r"linker\.learn: false"):
        Pipeline(learn, tmp_path).run(
            b.image[:, 0], ann, voxel_size=b.voxel_size, train_images=a.image[:, 0]
        )


# ---------------------------------------------------------------------- classical kind
HAVE_CLASSICAL = importlib.util.find_spec("celltrack.detect.classical") is not None


@pytest.mark.skipif(
    not HAVE_CLASSICAL, reason="celltrack.detect.classical (detect_classical) is not there yet"
)
def test_classical_kind_detects_without_training(two_movies, tmp_path):
    a, _ = two_movies
    ann = sample_annotations(a.gt, n_nuclei=3, n_links=6, rng=0)
    det = DetectionConfig.cpu().model_copy(update={"kind": "classical"})
    cfg = quick(tmp_path, detection=det, use_motion="always")
    result = Pipeline(cfg, tmp_path).run(a.image[:, 0], ann, voxel_size=a.voxel_size)
    stages = _stages(tmp_path)
    assert "train_detection" not in stages and "train_motion" in stages  # flow still trains
    assert not (tmp_path / "models" / "detection.pt").exists()
    assert result.spots.num_nodes > 0 and result.link.ok
    again = Pipeline(cfg, tmp_path).run(a.image[:, 0], ann, voxel_size=a.voxel_size)
    assert _stages(tmp_path)["detect"]["reused"] and again.tracks.equals(result.tracks)


# ---------------------------------------------------------------------- defaults, end to end
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["2D+t", "3D+t"])
def test_track_runs_a_movie_with_a_config_of_nothing_but_data_paths(tmp_path, no_cuda, kind):
    """``celltrack track`` with every default (preset auto on a CPU machine): tens of seconds."""
    import tifffile

    from celltrack.cli import main
    from celltrack.io import read_geff, write_annotations

    flat = kind == "2D+t"
    if flat:
        synth = SynthConfig.tiny(
            shape=(1, 40, 40),
            n_frames=3,
            voxel_size=(1.0, 1.0, 1.0),
            n_nuclei=6,
            min_spacing_um=7.0,
        )
    else:
        synth = SynthConfig.tiny(n_frames=3)
    data = make_embryo(synth)
    movie = np.asarray(data.image)[:, 0] if flat else np.asarray(data.image)
    tifffile.imwrite(tmp_path / "movie.tif", movie, photometric="minisblack")
    ann = sample_annotations(data.gt, n_nuclei=4, n_links=6, rng=0)
    write_annotations(ann, tmp_path / "ann.csv")
    voxel = ", ".join(str(float(v)) for v in data.voxel_size)
    (tmp_path / "c.yaml").write_text(
        f"data:\n  image: {tmp_path / 'movie.tif'}\n  axes: {'TYX' if flat else 'TZYX'}\n"
        f"  voxel_size_um: [{voxel}]\n  annotations: {tmp_path / 'ann.csv'}\n"
    )
    out = tmp_path / "out"
    assert main(["track", str(tmp_path / "c.yaml"), "--out", str(out)]) == 0
    tracks = read_geff(out / "tracks.geff")
    assert tracks.num_nodes > 0 and tracks.num_edges > 0
    assert np.all(tracks.nodes["z"] == 0) if flat else np.ptp(tracks.nodes["z"]) > 0
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["config"]["detection"]["model"]["preset"] == "cpu"  # chosen for the machine
    assert prov["config"]["detection"]["train"]["crop_shape"] == [8, 64, 64]
    assert int(pipeline_module.approved_mask(ann).sum()) >= 5  # so flow trains (2D or 3D net)
    assert {"train_detection", "train_motion", "predict_motion"} <= set(prov["stages"])
