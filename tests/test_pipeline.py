import json

import numpy as np
import pytest

from celltrack.demo import demo_config
from celltrack.errors import ConfigError, InvalidInputError
from celltrack.io import read_geff, write_image
from celltrack.pipeline import DataConfig, OutputConfig, Pipeline, PipelineConfig
from celltrack.solve import GreedyConfig
from celltrack.synth import SynthConfig, make_embryo, sample_annotations


@pytest.fixture(scope="module")
def tiny():
    data = make_embryo(SynthConfig.tiny())
    annotations = sample_annotations(data.gt, n_nuclei=5, n_links=6, rng=0)
    return data, annotations


def quick_config(tmp_path, **overrides) -> PipelineConfig:
    cfg = demo_config(tmp_path, quick=True)
    return cfg.model_copy(update={"progress": False, "linker": GreedyConfig(), **overrides})


def test_run_writes_outputs_provenance_and_reuses_stages(tmp_path, tiny):
    data, annotations = tiny
    cfg = quick_config(tmp_path)
    first = Pipeline(cfg, tmp_path).run(
        data.image, annotations, voxel_size=data.voxel_size, ground_truth=data.gt
    )
    assert first.tracks.num_nodes > 0 and first.tracks.num_edges > 0
    first.tracks.validate(forest=True)
    assert {"parent_z", "parent_y", "parent_x"} <= set(first.spots.node_columns)  # flow ran
    assert first.scores is not None and 0 <= first.scores.det <= 1
    for key in ("geff", "csv", "ctc", "figure_tracks", "figure_lineages", "figure_losses"):
        assert first.outputs[key].exists(), key
    prov = json.loads((tmp_path / "provenance.json").read_text())
    assert prov["config"]["linker"]["kind"] == "greedy"
    assert not any(stage["reused"] for name, stage in prov["stages"].items() if name != "link")
    assert read_geff(tmp_path / "tracks.geff").num_edges == first.tracks.num_edges

    second = Pipeline(cfg, tmp_path).run(
        data.image, annotations, voxel_size=data.voxel_size, ground_truth=data.gt
    )
    prov = json.loads((tmp_path / "provenance.json").read_text())
    reused = [name for name, stage in prov["stages"].items() if stage.get("reused")]
    assert {"train_detection", "detect", "train_flow", "predict_flow", "candidates"} <= set(reused)
    assert second.tracks.equals(first.tracks)

    # a changed candidate config redoes the candidates but reuses the networks
    changed = cfg.model_copy(
        update={"candidates": cfg.candidates.model_copy(update={"max_distance_um": 12.0})}
    )
    Pipeline(changed, tmp_path).run(data.image, annotations, voxel_size=data.voxel_size)
    prov = json.loads((tmp_path / "provenance.json").read_text())["stages"]
    assert prov["train_detection"]["reused"] and not prov["candidates"]["reused"]


def test_run_from_files_named_in_config(tmp_path, tiny):
    data, annotations = tiny
    from celltrack.io import write_annotations

    image = write_image(data.image, tmp_path / "movie.zarr", voxel_size=data.voxel_size)
    ann = write_annotations(annotations, tmp_path / "ann.csv")
    cfg = quick_config(
        tmp_path / "out",
        data=DataConfig(image=str(image), annotations=str(ann)),
        use_flow="never",
        output=OutputConfig(directory=str(tmp_path / "out"), formats=("geff",), figures=False),
    )
    result = Pipeline(cfg).run()
    assert (tmp_path / "out" / "tracks.geff").exists()
    assert "parent_z" not in result.spots.node_columns


def test_bad_input(tmp_path, tiny):
    data, _ = tiny
    cfg = quick_config(tmp_path)
    with pytest.raises(InvalidInputError, match=r"config\.data\.image"):
        Pipeline(cfg).run()
    with pytest.raises(InvalidInputError, match="voxel_size"):
        Pipeline(cfg, tmp_path).run(data.image)
    with pytest.raises(InvalidInputError, match="T, Z, Y, X"):
        Pipeline(cfg, tmp_path).run(np.zeros((4, 4)), voxel_size=(1, 1, 1))
    with pytest.raises(ConfigError, match="nearest"):
        PipelineConfig(linker={"kind": "nearest"})
    with pytest.raises(InvalidInputError, match="approved links"):
        Pipeline(cfg.model_copy(update={"use_flow": "always"}), tmp_path).train_flow(
            data.image, data.voxel_size, None
        )
