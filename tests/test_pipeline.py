import json
from typing import Literal

import numpy as np
import pytest
from pydantic import Field

from celltrack.config import Config, config_from_dict, load_config, save_config
from celltrack.demo import demo_config
from celltrack.errors import ConfigError, InvalidInputError
from celltrack.io import read_geff, write_image
from celltrack.io.track_table import TRACK_TABLE_COLUMNS
from celltrack.pipeline import DataConfig, OutputConfig, Pipeline, PipelineConfig
from celltrack.solve import (
    BlockwiseConfig,
    GreedyConfig,
    ILPConfig,
    Linker,
    make_linker,
    register_linker,
)
from celltrack.synth import SynthConfig, make_embryo, sample_annotations


@pytest.fixture(scope="module")
def tiny():
    data = make_embryo(SynthConfig.tiny())
    annotations = sample_annotations(data.gt, n_nuclei=5, n_links=6, rng=0)
    return data, annotations


def quick_config(tmp_path, **overrides) -> PipelineConfig:
    cfg = demo_config(tmp_path, quick=True)
    return cfg.model_copy(update={"progress": False, "linker": GreedyConfig(), **overrides})


def test_run_writes_outputs_provenance_and_reuses_stages(tmp_path, tiny, caplog):
    caplog.set_level("INFO", logger="celltrack.pipeline")
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
    # tracks.csv is the napari / TrackMate track table and reads back as the same forest
    header = first.outputs["csv"].read_text().splitlines()[0].split(",")
    assert header[:9] == list(TRACK_TABLE_COLUMNS)  # track_id, t, z, y, x, parent_track_id, …
    from celltrack.io import read_tracks

    assert read_tracks(first.outputs["csv"]).num_edges == first.tracks.num_edges
    prov = json.loads((tmp_path / "provenance.json").read_text())
    assert prov["config"]["linker"]["kind"] == "greedy"
    assert not any(stage["reused"] for name, stage in prov["stages"].items() if name != "link")
    assert read_geff(tmp_path / "tracks.geff").num_edges == first.tracks.num_edges

    second = Pipeline(cfg, tmp_path).run(
        data.image, annotations, voxel_size=data.voxel_size, ground_truth=data.gt
    )
    prov = json.loads((tmp_path / "provenance.json").read_text())
    reused = [name for name, stage in prov["stages"].items() if stage.get("reused")]
    stages = {"train_detection", "detect", "train_motion", "predict_motion", "candidates"}
    assert stages <= set(reused)
    said = caplog.text
    assert "== train_detection" in said and "torch CPU thread" in said
    assert "train_detection: reused from the cache" in said
    assert second.tracks.equals(first.tracks)

    # a changed candidate config redoes the candidates but reuses the networks
    changed = cfg.model_copy(
        update={"candidates": cfg.candidates.model_copy(update={"max_distance_um": 12.0})}
    )
    Pipeline(changed, tmp_path).run(data.image, annotations, voxel_size=data.voxel_size)
    prov = json.loads((tmp_path / "provenance.json").read_text())["stages"]
    assert prov["train_detection"]["reused"] and not prov["candidates"]["reused"]

    # changed read-out settings (tiles, spot threshold) redo the prediction, not the training
    det, flow = cfg.detection, cfg.motion
    readout = cfg.model_copy(
        update={
            "detection": det.model_copy(
                update={"spots": det.spots.model_copy(update={"threshold": 0.4})}
            ),
            "motion": flow.model_copy(
                update={"predict": flow.predict.model_copy(update={"overlap": (1, 4, 4)})}
            ),
        }
    )
    Pipeline(readout, tmp_path).run(data.image, annotations, voxel_size=data.voxel_size)
    prov = json.loads((tmp_path / "provenance.json").read_text())["stages"]
    assert prov["train_detection"]["reused"] and prov["train_motion"]["reused"]
    assert not prov["detect"]["reused"] and not prov["predict_motion"]["reused"]


def test_run_from_files_named_in_config(tmp_path, tiny):
    data, annotations = tiny
    from celltrack.io import write_annotations

    image = write_image(data.image, tmp_path / "movie.zarr", voxel_size=data.voxel_size)
    ann = write_annotations(annotations, tmp_path / "ann.csv")
    cfg = quick_config(
        tmp_path / "out",
        data=DataConfig(image=str(image), annotations=str(ann)),
        use_motion="never",
        output=OutputConfig(directory=str(tmp_path / "out"), formats=("geff",), figures=False),
    )
    result = Pipeline(cfg).run()
    assert (tmp_path / "out" / "tracks.geff").exists()
    assert "parent_z" not in result.spots.node_columns


def test_annotations_in_voxels_are_converted(tmp_path, tiny):
    from celltrack.io import write_annotations

    data, annotations = tiny
    image = write_image(data.image, tmp_path / "movie.zarr", voxel_size=data.voxel_size)
    from celltrack import TrackGraph

    nodes = dict(annotations.nodes)
    for axis, size in zip("zyx", data.voxel_size):
        nodes[axis] = annotations.nodes[axis] / size
    if "covariance" in nodes:
        scale = 1.0 / np.asarray(data.voxel_size)
        nodes["covariance"] = annotations.nodes["covariance"] * np.outer(scale, scale)
    in_voxels = TrackGraph(nodes, dict(annotations.edges))
    ann = write_annotations(in_voxels, tmp_path / "ann_px.csv")
    cfg = quick_config(
        tmp_path, data=DataConfig(image=str(image), annotations=str(ann), annotation_units="voxel")
    )
    _, _, loaded, _ = Pipeline(cfg, tmp_path).load_inputs()
    rows = loaded.index_of(annotations.ids)
    np.testing.assert_allclose(loaded.positions[rows], annotations.positions, atol=1e-6)
    geff = tmp_path / "ann.geff"
    from celltrack.io import write_geff

    write_geff(annotations, geff)
    bad = quick_config(
        tmp_path, data=DataConfig(image=str(image), annotations=str(geff), annotation_units="voxel")
    )
    with pytest.raises(InvalidInputError, match="annotation_units: voxel applies to CSV/JSON"):
        Pipeline(bad, tmp_path).load_inputs()


def test_bad_input(tmp_path, tiny):
    data, _ = tiny
    cfg = quick_config(tmp_path)
    with pytest.raises(InvalidInputError, match=r"data\.image is not set in the config"):
        Pipeline(cfg).run()
    with pytest.raises(
        InvalidInputError, match=r"data\.voxel_size_um to three numbers \[z, y, x\]"
    ):
        Pipeline(cfg, tmp_path).run(data.image)
    with pytest.raises(InvalidInputError, match="T, Z, Y, X"):
        Pipeline(cfg, tmp_path).run(np.zeros((4, 4)), voxel_size=(1, 1, 1))
    with pytest.raises(ConfigError, match="nearest"):
        PipelineConfig(linker={"kind": "nearest"})
    with pytest.raises(InvalidInputError, match="approved links"):
        Pipeline(cfg.model_copy(update={"use_motion": "always"}), tmp_path).train_motion(
            data.image, data.voxel_size, None
        )


# ---------------------------------------------------------------------- 2D+t, fast
@pytest.fixture(scope="module")
def flat():
    """A 2D+t movie (T, Y, X) of 4 frames of 32 × 32 pixels, and its ground truth."""
    cfg = SynthConfig.tiny(
        shape=(1, 32, 32),
        n_frames=4,
        voxel_size=(1.0, 1.0, 1.0),
        n_nuclei=4,
        min_spacing_um=7.0,
    )
    return make_embryo(cfg)


def flat_config(workdir, **overrides) -> PipelineConfig:
    output = OutputConfig(directory=str(workdir), formats=("geff",), figures=False)
    return quick_config(workdir, **{"use_motion": "never", "output": output, **overrides})


def overriding_annotations(gt):
    """All GT nuclei of frames 0–1 (tp) and ONE approved link that is not the true one:
    a frame-1 nucleus C gets the frame-0 nucleus farthest from its true parent P."""
    frames = gt.subgraph(nodes=gt.t <= 1)
    src, tgt = frames.edges["source"], frames.edges["target"]
    child, parent = int(tgt[0]), int(src[0])
    others = frames.ids[(frames.t == 0) & (frames.ids != parent)]
    dist = np.linalg.norm(
        frames.positions[frames.index_of(others)] - frames.positions[frames.index_of([child])],
        axis=1,
    )
    wrong = int(others[np.argmax(dist)])
    ann = frames.subgraph(edges=np.zeros(frames.num_edges, bool))
    ann.set_node_column("tag", np.full(ann.num_nodes, "tp"))
    ann = ann.add_edges(
        {"source": np.array([wrong]), "target": np.array([child]), "approved": np.array([True])}
    )
    return ann, (wrong, child), (parent, child)


def _pairs(graph) -> set[tuple[int, int]]:
    return set(zip(graph.edges["source"].tolist(), graph.edges["target"].tolist()))


@pytest.fixture(scope="module")
def flat_workdir(tmp_path_factory):
    """One work folder for the 2D+t runs: detection is trained once, then reused."""
    return tmp_path_factory.mktemp("flat")


def test_pipeline_keeps_a_persons_approved_link(flat, flat_workdir):
    """Bug: build_candidates dropped the approved links, so the linker overrode them."""
    ann, approved, true_link = overriding_annotations(flat.gt)
    result = Pipeline(flat_config(flat_workdir), flat_workdir).run(
        flat.image[:, 0], ann, voxel_size=flat.voxel_size
    )
    assert result.link.ok
    links = _pairs(result.tracks)
    assert approved in links and true_link not in links
    cand = read_geff(flat_workdir / "candidates.geff")
    pinned = cand.edges["pin"] == 1
    pinned_links = zip(cand.edges["source"][pinned].tolist(), cand.edges["target"][pinned].tolist())
    assert set(pinned_links) == {approved}


def test_pipeline_runs_blockwise_end_to_end(flat, flat_workdir):
    """Bug: the BlockwiseConfig went positionally into solve_blockwise's block_size."""
    ann, approved, _ = overriding_annotations(flat.gt)
    whole = Pipeline(flat_config(flat_workdir), flat_workdir).run(
        flat.image[:, 0], ann, voxel_size=flat.voxel_size
    )
    bw = BlockwiseConfig(
        block_size=(2, None, None, None),
        context=(2, None, None, None),
        executor="serial",
        progress=False,
    )
    cfg = PipelineConfig.model_validate(flat_config(flat_workdir, blockwise=bw).model_dump())
    assert load_config(save_config(cfg, flat_workdir / "bw.yaml"), PipelineConfig) == cfg
    blocks = Pipeline(cfg, flat_workdir).run(flat.image[:, 0], ann, voxel_size=flat.voxel_size)
    assert blocks.link.ok and blocks.link.stats  # the block-wise solver's statistics
    assert approved in _pairs(blocks.tracks)
    assert blocks.tracks.equals(whole.tracks, columns=False)
    assert any((flat_workdir / "blocks").glob("*/manifest.json"))
    prov = json.loads((flat_workdir / "provenance.json").read_text())
    assert prov["stages"]["train_detection"]["reused"]


def test_editing_a_middle_frame_invalidates_detection(flat, tmp_path):
    """Bug: the movie's fingerprint hashed only the first and last frames."""
    movie = np.array(flat.image[:, 0])
    cfg = flat_config(tmp_path)
    Pipeline(cfg, tmp_path).run(movie, voxel_size=flat.voxel_size)
    movie[1, 5:9, 5:9] = movie.max()
    Pipeline(cfg, tmp_path).run(movie, voxel_size=flat.voxel_size)
    stages = json.loads((tmp_path / "provenance.json").read_text())["stages"]
    assert not stages["train_detection"]["reused"] and not stages["detect"]["reused"]


class Killed(Exception):
    """Stands in for a kill after the flow model's checkpoint was written."""


@pytest.mark.parametrize("stage", ["detection", "motion"])
def test_a_killed_training_never_hands_its_weights_to_another_config_and_resumes(
    flat, tmp_path, monkeypatch, stage
):
    """Bugs: a run of config B killed mid-training left its model under the path config A's
    stamp pointed to (a rerun of A 'reused' B's weights); the flow stage restarted from
    epoch 1 although train_flow can resume."""
    import celltrack.detect
    import celltrack.flow

    module, name = {
        "detection": (celltrack.detect, "train_detection"),
        "motion": (celltrack.flow, "train_flow"),
    }[stage]
    ann = sample_annotations(flat.gt, n_nuclei=3, n_links=3, rng=0)
    cfg_a = flat_config(tmp_path, use_motion="always")
    section = getattr(cfg_a, stage)
    changed = section.model_copy(update={"train": section.train.model_copy(update={"seed": 7})})
    cfg_b = cfg_a.model_copy(update={stage: changed})

    def run(cfg):
        return Pipeline(cfg, tmp_path).run(flat.image[:, 0], ann, voxel_size=flat.voxel_size)

    run(cfg_a)
    real = getattr(module, name)
    calls = []

    def killed_after_checkpoint(*args, **kwargs):
        calls.append(kwargs)
        real(*args, **kwargs)
        raise Killed

    monkeypatch.setattr(module, name, killed_after_checkpoint)
    with pytest.raises(Killed):
        run(cfg_b)
    monkeypatch.setattr(module, name, lambda *a, **k: calls.append(k) or real(*a, **k))
    run(cfg_a)
    stages = json.loads((tmp_path / "provenance.json").read_text())["stages"]
    assert not stages[f"train_{stage}"]["reused"]  # A's stamp no longer vouches for the file
    assert calls[-1]["checkpoint"] != calls[0]["checkpoint"]  # A never starts from B's file
    run(cfg_b)  # B again: resumes from the checkpoint its killed run left
    assert calls[-1]["checkpoint"] == calls[0]["checkpoint"] and calls[-1]["resume"] is True


class UserNearestConfig(Config):
    """A user's own linker config (registered by the test below)."""

    kind: Literal["test_user_nearest"] = Field("test_user_nearest", description="linker kind")
    max_cost_um: float = Field(6.0, gt=0, description="longest link (µm)")


class UserNearestLinker(Linker):
    """A user's own linker: greedy nearest parent within ``max_cost_um``."""

    config_class = UserNearestConfig

    def _link(self, candidates):
        return make_linker(GreedyConfig(max_cost=self.config.max_cost_um)).link(candidates)


def test_a_registered_user_linker_runs_through_the_pipeline(flat, flat_workdir):
    register_linker("test_user_nearest", UserNearestConfig, UserNearestLinker)
    data = {**flat_config(flat_workdir).model_dump(), "linker": {"kind": "test_user_nearest"}}
    cfg = config_from_dict(data, PipelineConfig)
    assert isinstance(cfg.linker, UserNearestConfig)
    path = save_config(cfg, flat_workdir / "user.yaml")
    assert load_config(path, PipelineConfig) == cfg
    ann, approved, _ = overriding_annotations(flat.gt)  # detection is reused from above
    result = Pipeline(path, flat_workdir).run(flat.image[:, 0], ann, voxel_size=flat.voxel_size)
    assert result.link.ok and approved in _pairs(result.tracks)
    prov = json.loads((flat_workdir / "provenance.json").read_text())
    assert prov["config"]["linker"] == {"kind": "test_user_nearest", "max_cost_um": 6.0}


def test_linker_learn_fits_ilp_costs_from_approved_links_and_caches_them(flat, flat_workdir):
    frames = flat.gt.subgraph(nodes=flat.gt.t <= 1)
    ann = frames.copy()
    ann.set_node_column("tag", np.full(ann.num_nodes, "tp"))
    ann.set_edge_column("approved", np.ones(ann.num_edges, bool))
    cfg = flat_config(flat_workdir, linker=ILPConfig(learn=True))
    result = Pipeline(cfg, flat_workdir).run(flat.image[:, 0], ann, voxel_size=flat.voxel_size)
    assert result.link.ok
    learned = load_config(flat_workdir / "linker_learned.yaml", ILPConfig)
    assert not learned.learn and learned != ILPConfig()
    assert result.link.parameters["config"] == learned.model_dump(mode="json")
    prov = json.loads((flat_workdir / "provenance.json").read_text())
    assert prov["stages"]["learn_costs"]["loss"] and not prov["stages"]["learn_costs"]["reused"]
    again = Pipeline(cfg, flat_workdir).run(flat.image[:, 0], ann, voxel_size=flat.voxel_size)
    prov = json.loads((flat_workdir / "provenance.json").read_text())
    assert prov["stages"]["learn_costs"]["reused"] and again.tracks.equals(result.tracks)


def test_a_long_stage_says_how_long_it_has_left(tmp_path, monkeypatch, caplog):
    import itertools

    import celltrack.progress as progress

    caplog.set_level("INFO", logger="celltrack.pipeline")
    clock = itertools.count(0.0, 10.0)  # 10 s between progress events
    monkeypatch.setattr(progress, "_now", lambda: next(clock))
    pipeline = Pipeline(quick_config(tmp_path), tmp_path)
    pipeline._begin("train_detection", "a slow stage")
    for epoch in range(3):
        progress.report("batch", epoch, 30, loss=1.0)
    pipeline._end_listening()  # what recording the finished stage does
    progress.report("batch", 5, 30)  # after the stage: nobody listens
    said = [r.getMessage() for r in caplog.records if "left" in r.getMessage()]
    assert said == ["   train_detection: batch 1/30 after 10 s; about 5 min left"]
