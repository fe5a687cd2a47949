import numpy as np
import pytest
import torch
from flow_data import moving_blobs

import celltrack.nn.training as nn_training
from celltrack.config.nn import AugmentConfig
from celltrack.errors import CheckpointError, GraphError, InvalidInputError, ShapeError
from celltrack.flow import FlowConfig, FlowTrainConfig, load_flow_model, train_flow, warp
from celltrack.flow.labels import render_flow_labels
from celltrack.flow.training import flow_crop
from celltrack.graph import TrackGraph
from celltrack.nn import TrainRecord
from celltrack.nn.normalize import normalize_frame


def small_cfg(epochs=1, **augment):
    return FlowConfig.cpu(
        train=FlowTrainConfig(
            epochs=epochs,
            crops_per_frame=2,
            batch_size=2,
            crop_shape=(4, 16, 16),
            augment=AugmentConfig(**augment),
            seed=3,
        )
    )


@pytest.mark.parametrize("angle", [0.0, 90.0, 180.0])
def test_augmented_crops_keep_vectors_consistent_with_images(angle):
    # frame t = frame t−1 moved by (0, 3, −2) µm; after any flip/rotation/zoom the
    # augmented flow must still map the augmented frame t onto the augmented frame t−1
    vs = np.array([2.0, 1.0, 1.0])
    images, graph = moving_blobs((0.0, 3.0, -2.0), n_frames=2, shape=(6, 40, 40))
    cfg = small_cfg(flip=True, rotation_deg=angle, scale=0.1)
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"crop_shape": (6, 24, 24)})})
    max_um = cfg.label.max_displacement_um
    labels = render_flow_labels(graph, images.shape, vs, cfg.label)[1]
    centres = graph.positions[graph.t == 1] / vs
    prev, cur = normalize_frame(images[0]), normalize_frame(images[1])
    rng = np.random.default_rng(0)
    for _ in range(6):
        image, target = flow_crop(rng, prev, cur, labels, centres, cfg, vs, max_um)
        assert image.shape == (2, 6, 24, 24) and target.shape == (4, 6, 24, 24)
        mask = target[3] > 0
        assert mask.sum() > 10
        flow_vox = target[:3] * (np.asarray(max_um) / vs)[:, None, None, None]
        warped = warp(torch.from_numpy(image[None, :1]), torch.from_numpy(flow_vox[None]))
        err = np.abs(warped[0, 0].numpy() - image[1])[mask]
        assert np.median(err) < 0.05
        lengths = np.linalg.norm((flow_vox * vs[:, None, None, None])[:, mask], axis=0)
        np.testing.assert_allclose(lengths, np.hypot(3.0, 2.0), rtol=0.12)


class _Killed(Exception):
    pass


def test_training_checkpoints_and_a_resumed_run_equals_the_uninterrupted_one(
    tmp_path, monkeypatch
):
    images, graph = moving_blobs((0.0, 2.0, 1.0), n_frames=3, shape=(1, 32, 32),
                                 voxel_size=(1.0, 1.0, 1.0))
    vs = (1.0, 1.0, 1.0)
    cfg = small_cfg(epochs=4)
    full = train_flow(images[:, 0], graph, vs, cfg, checkpoint=tmp_path / "a.pt")  # (T, Y, X)
    assert [h.epoch for h in full.history] == [1, 2, 3, 4]
    assert isinstance(full.history[0], TrainRecord) and set(full.history[0].parts) == {
        "instance", "ssim", "smooth"
    }
    assert full.n_links == 10 and full.model.two_d
    loaded = load_flow_model(tmp_path / "a.pt")
    for p, q in zip(loaded.parameters(), full.model.parameters()):
        assert torch.equal(p, q)
    # killed in the middle of epoch 3 (2 steps per epoch), then resumed
    real, calls = nn_training.optimisation_step, {"n": 0}

    def step(*args):
        calls["n"] += 1
        if calls["n"] > 5:
            raise _Killed
        return real(*args)

    monkeypatch.setattr(nn_training, "optimisation_step", step)
    with pytest.raises(_Killed):
        train_flow(images, graph, vs, cfg, checkpoint=tmp_path / "b.pt")
    monkeypatch.setattr(nn_training, "optimisation_step", real)
    resumed = train_flow(images, graph, vs, cfg, checkpoint=tmp_path / "b.pt", resume=True)
    assert resumed.history["loss"] == full.history["loss"]
    for p, q in zip(resumed.model.parameters(), full.model.parameters()):
        assert torch.equal(p, q)
    # a checkpoint of another training config is refused, not silently continued
    other = cfg.model_copy(update={"train": cfg.train.model_copy(update={"learning_rate": 0.1})})
    with pytest.raises(CheckpointError, match="another training config"):
        train_flow(images, graph, vs, other, checkpoint=tmp_path / "b.pt", resume=True)


def test_flow_training_leaves_global_random_state_alone():
    images, graph = moving_blobs((0.0, 2.0, 1.0), n_frames=2, shape=(1, 16, 16),
                                 voxel_size=(1.0, 1.0, 1.0))
    torch_state = torch.random.get_rng_state()
    numpy_state = np.random.get_state()[1].copy()  # noqa: NPY002 (the legacy global)
    train_flow(images, graph, (1.0, 1.0, 1.0), small_cfg())
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    np.testing.assert_array_equal(np.random.get_state()[1], numpy_state)  # noqa: NPY002


def test_training_bad_inputs():
    images, graph = moving_blobs((0.0, 2.0, 1.0), n_frames=3, shape=(1, 16, 16))
    vs = (1.0, 1.0, 1.0)
    frames = [images[0], images[1][:, :15], images[2]]
    with pytest.raises(InvalidInputError):  # frames of different shapes
        train_flow(frames, graph, vs, small_cfg())
    unapproved = graph.copy()
    unapproved.set_edge_column("approved", np.zeros(graph.num_edges, bool))
    with pytest.raises(InvalidInputError, match="no annotated link"):
        train_flow(images, unapproved, vs, small_cfg())
    gap = TrackGraph(
        {"id": [1, 2], "t": [0, 2], "z": [0, 0], "y": [5, 6], "x": [5, 5]},
        {"source": [1], "target": [2]},
    )
    with pytest.raises(GraphError, match="consecutive"):
        train_flow(images, gap, vs, small_cfg())
    with pytest.raises(ShapeError):
        train_flow(images[:, 0, 0], graph, vs, small_cfg())  # (T, X): not a movie


def test_cosine_learning_rate_schedule():
    from celltrack.flow.training import epoch_learning_rate

    cfg = FlowTrainConfig(epochs=5, learning_rate=1e-2, final_lr_fraction=0.1)
    rates = [epoch_learning_rate(cfg, e) for e in range(5)]
    assert rates[0] == pytest.approx(1e-2) and rates[-1] == pytest.approx(1e-3)
    assert np.all(np.diff(rates) < 0)
    constant = FlowTrainConfig(epochs=5, final_lr_fraction=1.0)
    assert epoch_learning_rate(constant, 3) == pytest.approx(1e-3)


def test_training_normalises_frames_as_configured(monkeypatch):
    import celltrack.flow.training as ft
    from celltrack.config.nn import NormalizeConfig

    seen = []
    real = ft.normalize_frame

    def spy(frame, cfg=None, **kw):
        seen.append(cfg)
        return real(frame, cfg, **kw)

    monkeypatch.setattr(ft, "normalize_frame", spy)
    images, graph = moving_blobs((0.0, 2.0, 0.0), n_frames=2, shape=(4, 24, 24))
    minmax = NormalizeConfig(mode="minmax")
    cfg = small_cfg().model_copy(update={"normalize": minmax})
    train_flow(images, graph, (2.0, 1.0, 1.0), cfg)
    assert seen and all(c == minmax for c in seen)
