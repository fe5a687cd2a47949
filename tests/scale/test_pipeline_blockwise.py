"""``blockwise:`` runs detection, flow, spots and candidates block by block in the Pipeline."""

from __future__ import annotations

import numpy as np
import pytest

from celltrack.config.nn import BlockwisePredictConfig
from celltrack.config.pipeline import PipelineBlockwiseConfig
from celltrack.demo import demo_config
from celltrack.pipeline import Pipeline
from celltrack.solve import GreedyConfig
from celltrack.synth import SynthConfig, make_embryo, sample_annotations


@pytest.fixture(scope="module")
def tiny():
    data = make_embryo(SynthConfig.tiny())
    return data, sample_annotations(data.gt, n_nuclei=5, n_links=6, rng=0)


def _config(workdir, blockwise=None):
    cfg = demo_config(workdir, quick=True)
    return cfg.model_copy(
        update={"progress": False, "linker": GreedyConfig(), "blockwise": blockwise}
    )


def _blockwise(block=(16, 48, 24), group_norm="frame"):
    return PipelineBlockwiseConfig(
        block_size=(3, None, None, None),
        context=(1, None, None, None),
        executor="serial",
        progress=False,
        predict=BlockwisePredictConfig(block_shape=block, group_norm=group_norm),
    )


def test_blockwise_stages_give_the_whole_frame_spots_and_parents(tiny, tmp_path):
    data, ann = tiny
    whole = Pipeline(_config(tmp_path), tmp_path).run(data.image, ann, voxel_size=data.voxel_size)
    pipeline = Pipeline(_config(tmp_path, _blockwise()), tmp_path)
    for artifact in ("spots.geff", "spots_motion.geff", "candidates.geff"):
        pipeline._invalidate(artifact)  # the trained models are reused, the rest recomputed
    blocks = pipeline.run(data.image, ann, voxel_size=data.voxel_size)
    assert blocks.spots.attrs["blockwise"]["prediction"]["blocks"] > 1  # it ran block-wise
    a, b = whole.spots.sorted(), blocks.spots.sorted()
    assert a.num_nodes == b.num_nodes > 0
    np.testing.assert_allclose(b.positions, a.positions, atol=1e-4)
    for column in ("parent_z", "parent_y", "parent_x"):  # flow predicted block-wise
        np.testing.assert_allclose(b.nodes[column], a.nodes[column], atol=1e-3)
    assert not list((tmp_path / "blocks").glob("detect-*/prediction.zarr"))  # cleaned up
    assert blocks.link.ok and blocks.tracks.num_edges > 0


def test_an_interrupted_blockwise_detection_resumes_from_its_store(tiny, tmp_path, monkeypatch):
    import celltrack.scale.spots as spots_module

    data, ann = tiny
    cfg = _config(tmp_path, _blockwise(group_norm="block")).model_copy(
        update={"use_motion": "never"}
    )

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # as if the run was stopped after the prediction

    original = spots_module.extract_spots_blockwise
    monkeypatch.setattr(spots_module, "extract_spots_blockwise", killed)
    with pytest.raises(KeyboardInterrupt):
        Pipeline(cfg, tmp_path).run(data.image, ann, voxel_size=data.voxel_size)
    monkeypatch.setattr(spots_module, "extract_spots_blockwise", original)
    again = Pipeline(cfg, tmp_path).run(data.image, ann, voxel_size=data.voxel_size)
    stats = again.spots.attrs["blockwise"]["prediction"]
    assert stats["done_before"] == stats["blocks"] and stats["predicted"] == 0
    assert again.spots.num_nodes > 0


def _linajea_config(workdir, blockwise=None, joint=False):
    cfg = demo_config(workdir, quick=True, method="linajea")
    motion = cfg.motion.model_copy(update={"joint": joint})
    return cfg.model_copy(
        update={"progress": False, "linker": GreedyConfig(), "blockwise": blockwise,
                "motion": motion}
    )


@pytest.mark.parametrize("joint", [False, True], ids=["separate", "joint"])
def test_linajea_models_run_blockwise_to_the_whole_frame_spots_and_parents(
    tiny, tmp_path, joint
):
    data, ann = tiny
    whole = Pipeline(_linajea_config(tmp_path, joint=joint), tmp_path).run(
        data.image, ann, voxel_size=data.voxel_size
    )
    pipeline = Pipeline(_linajea_config(tmp_path, _blockwise(), joint=joint), tmp_path)
    for artifact in ("spots.geff", "spots_motion.geff", "candidates.geff"):
        pipeline._invalidate(artifact)  # the trained models are reused, the rest recomputed
    blocks = pipeline.run(data.image, ann, voxel_size=data.voxel_size)
    stats = blocks.spots.attrs["blockwise"]["prediction"]
    assert stats["blocks"] > 1 and stats["predicted"] == stats["blocks"]  # it ran block-wise
    a, b = whole.spots.sorted(), blocks.spots.sorted()
    assert a.num_nodes == b.num_nodes > 0
    np.testing.assert_allclose(b.positions, a.positions, atol=1e-4)
    np.testing.assert_allclose(b.nodes["score"], a.nodes["score"], atol=1e-4)
    assert blocks.spots.attrs["calibration"] == whole.spots.attrs["calibration"]
    moved = 0.0
    for column in ("parent_z", "parent_y", "parent_x"):  # movement vectors block-wise
        np.testing.assert_allclose(b.nodes[column], a.nodes[column], atol=1e-3)
        moved = max(moved, np.abs(b.nodes[column] - b.nodes[column[-1]]).max())
    assert moved > 0.1  # the vectors moved the parents
    assert blocks.link.ok and blocks.tracks.num_edges > 0
