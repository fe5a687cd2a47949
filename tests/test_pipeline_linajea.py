"""Linajea's models through the Pipeline and the Project, side by side with ELEPHANT's."""

import json

import numpy as np
import pytest

from celltrack.config.indicator import IndicatorConfig
from celltrack.config.movement import MovementConfig
from celltrack.config.project import ProjectConfig
from celltrack.demo import demo_config
from celltrack.errors import InvalidInputError
from celltrack.pipeline import Pipeline
from celltrack.project import Project
from celltrack.solve import GreedyConfig
from celltrack.synth import SynthConfig, make_embryo, sample_annotations


@pytest.fixture(scope="module")
def tiny():
    data = make_embryo(SynthConfig.tiny())
    return data, sample_annotations(data.gt, n_nuclei=5, n_links=6, rng=0)


def linajea_config(tmp_path, joint=False):
    cfg = demo_config(tmp_path, quick=True, method="linajea")
    motion = cfg.motion.model_copy(update={"joint": joint})
    return cfg.model_copy(
        update={"progress": False, "linker": GreedyConfig(), "motion": motion}
    )


def stages(tmp_path):
    return json.loads((tmp_path / "provenance.json").read_text())["stages"]


def test_indicator_and_movement_vectors_run_end_to_end_and_are_reused(tmp_path, tiny):
    data, ann = tiny
    cfg = linajea_config(tmp_path)
    assert isinstance(cfg.detection, IndicatorConfig)
    assert isinstance(cfg.motion, MovementConfig)
    first = Pipeline(cfg, tmp_path).run(
        data.image, ann, voxel_size=data.voxel_size, ground_truth=data.gt
    )
    first.tracks.validate(forest=True)
    assert "score" in first.spots.node_columns  # the indicator value at each maximum
    assert {"parent_z", "parent_y", "parent_x"} <= set(first.spots.node_columns)
    assert (tmp_path / "models" / "indicator.pt").is_file()
    assert (tmp_path / "models" / "movement.pt").is_file()
    ran = stages(tmp_path)
    assert {"train_detection", "detect", "train_motion", "predict_motion"} <= set(ran)
    Pipeline(cfg, tmp_path).run(data.image, ann, voxel_size=data.voxel_size)
    again = stages(tmp_path)
    assert all(again[s]["reused"] for s in ("train_detection", "train_motion", "detect"))


def test_the_joint_model_serves_detection_and_motion(tmp_path, tiny):
    data, ann = tiny
    result = Pipeline(linajea_config(tmp_path, joint=True), tmp_path).run(
        data.image, ann, voxel_size=data.voxel_size
    )
    ran = stages(tmp_path)
    assert "train_joint" in ran and "train_detection" not in ran and "train_motion" not in ran
    assert (tmp_path / "models" / "joint.pt").is_file()
    assert {"score", "parent_z"} <= set(result.spots.node_columns)


def test_the_indicator_cannot_train_without_annotations(tmp_path, tiny):
    data, _ = tiny
    cfg = linajea_config(tmp_path).model_copy(update={"use_motion": "never"})
    with pytest.raises(InvalidInputError, match="learns from annotated points"):
        Pipeline(cfg, tmp_path).run(data.image, None, voxel_size=data.voxel_size)


def test_a_project_annotates_trains_predicts_and_links_with_linajeas_models(tmp_path, tiny):
    data, ann = tiny
    quick = linajea_config(tmp_path)
    config = ProjectConfig(detection=quick.detection, motion=quick.motion, linker=GreedyConfig())
    project = Project.create(
        tmp_path / "p", data.image, voxel_size=data.voxel_size, config=config
    )
    project.add_annotations(ann)
    frame = int(np.bincount(ann.t).argmax())
    info = project.train_detection(incremental=True, frame=frame, steps=4)
    assert info["mode"] == "incremental" and info["steps"] == 4
    assert (tmp_path / "p" / "models" / "indicator.pt").is_file()
    predicted = project.predict(frame)
    assert predicted.num_nodes >= int(np.sum(ann.t == frame))
    project.train_motion(epochs=1)
    assert (tmp_path / "p" / "models" / "movement.pt").is_file()
    reopened = Project.open(tmp_path / "p")
    assert reopened.detection_model is not None and reopened.flow_model is not None
    tracks = reopened.link().graph
    assert tracks.num_edges > 0


def test_a_project_with_the_joint_model_trains_once_for_detection_and_motion(tmp_path, tiny):
    data, ann = tiny
    quick = linajea_config(tmp_path, joint=True)
    config = ProjectConfig(detection=quick.detection, motion=quick.motion, linker=GreedyConfig())
    project = Project.create(
        tmp_path / "p", data.image, voxel_size=data.voxel_size, config=config
    )
    project.add_annotations(ann)
    with pytest.raises(InvalidInputError, match="call train_motion"):
        project.train_detection(incremental=False)
    project.train_motion(epochs=1)
    assert (tmp_path / "p" / "models" / "joint.pt").is_file()
    assert project.detection_model is project.flow_model  # one network, both heads
    frame = int(np.bincount(ann.t).argmax())
    assert project.predict(frame).num_nodes >= int(np.sum(ann.t == frame))
