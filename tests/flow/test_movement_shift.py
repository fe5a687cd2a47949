"""Issue #14: the shift augmentation and the per-epoch crop budget of movement training."""

import numpy as np
import pytest

from celltrack.config.movement import MovementConfig, MovementTargetConfig, MovementTrainConfig
from celltrack.config.nn import AugmentConfig
from celltrack.errors import ConfigError, ShapeError
from celltrack.flow.movement_targets import movement_training_target
from celltrack.flow.movement_training import (
    MovementFrame,
    epoch_frames,
    movement_crop,
    window_shift,
)
from celltrack.graph import TrackGraph
from celltrack.nn.crops import sample_crop


def _frame(shape, vs, parent_vox, move_vox, window=(1, 0)):
    """One link parent → child and a window whose frame t−1 holds a marker at the parent."""
    vs = np.asarray(vs, float)
    parent_vox = np.asarray(parent_vox)
    child = (parent_vox + np.asarray(move_vox)) * vs
    g = TrackGraph(
        {"id": [0, 1], "t": [0, 1], "z": [parent_vox[0] * vs[0], child[0]],
         "y": [parent_vox[1] * vs[1], child[1]], "x": [parent_vox[2] * vs[2], child[2]]},
        {"source": [0], "target": [1]},
    )
    vectors, mask = movement_training_target(shape, g, 1, vs, MovementTargetConfig(radius_um=3.0))
    image = np.zeros((window[0] + 1 + window[1], *shape), np.float32)
    image[window[0] - 1][tuple(parent_vox)] = 1.0  # the channel of frame t−1
    return MovementFrame(1, image, vectors, mask, (child / vs)[None]), vs


def test_window_shift_moves_earlier_frames_by_multiples_and_reports_the_offset():
    rng = np.random.default_rng(3)
    seen = set()
    for _ in range(200):
        shift, off = window_shift(rng, (0.0, 4.0, 2.0), (2.0, 1.0, 0.5), (2, 1))
        d = shift[1]  # frame t−1
        np.testing.assert_array_equal(shift, [2 * d, d, 0 * d, -d])  # t−2, t−1, t, t+1
        np.testing.assert_allclose(off, d * np.array([2.0, 1.0, 0.5]))
        assert d[0] == 0 and abs(d[1]) <= 4 and abs(d[2]) <= 4  # 2 µm / 0.5 µm = 4 voxels
        seen.add((int(d[1]), int(d[2])))
    assert len(seen) > 40  # covers most of the 9 × 9 voxel shifts
    shift, _ = window_shift(rng, (5.0, 5.0, 5.0), (1, 1, 1), (1, 0), two_d=True)
    assert shift[:, 0].tolist() == [0, 0]


def test_sample_crop_channel_shift_moves_one_channel_and_offsets_labelled_vectors():
    image = np.zeros((2, 1, 12, 12), np.float32)
    image[0, 0, 5, 5] = 1.0
    image[1, 0, 5, 5] = 2.0
    labels = np.zeros((1, 12, 12), np.uint8)
    labels[0, 5, 5] = 1
    vectors = np.zeros((3, 1, 12, 12), np.float32)
    crop = sample_crop(
        np.random.default_rng(0), image, (1, 12, 12), labels=labels, vectors=vectors,
        channel_shift=[[0, 2, -3], [0, 0, 0]], vector_offset=(0.0, 2.0, -3.0),
    )
    assert np.argwhere(crop.image[0] == 1.0).tolist() == [[0, 7, 2]]  # moved by (2, −3)
    assert np.argwhere(crop.image[1] == 2.0).tolist() == [[0, 5, 5]]  # frame t untouched
    assert crop.vectors[:, 0, 5, 5].tolist() == [0.0, 2.0, -3.0]
    assert not crop.vectors[:, labels == 0].any()  # unlabelled voxels stay 0
    with pytest.raises(ShapeError, match="channel_shift"):
        sample_crop(np.random.default_rng(0), image, (1, 12, 12), channel_shift=[[0, 1, 1]])
    with pytest.raises(ShapeError, match="channel_shift"):
        sample_crop(np.random.default_rng(0), image, (1, 12, 12),
                    channel_shift=[[0, 0.5, 1], [0, 0, 0]])
    with pytest.raises(ShapeError, match="vector_offset"):
        sample_crop(np.random.default_rng(0), image, (1, 12, 12), vector_offset=(1.0, 2.0))


@pytest.mark.parametrize(
    "shape,vs,window",
    [((1, 32, 32), (1.0, 1.0, 1.0), (1, 0)), ((6, 32, 32), (2.0, 1.0, 0.5), (1, 0)),
     ((1, 32, 32), (1.0, 1.0, 1.0), (1, 1))],
)
def test_shifted_crops_keep_target_equal_parent_minus_voxel(shape, vs, window):
    """With shifts, flips and rotations every trained voxel + its vector is where the
    (moved) parent marker of frame t−1 is, and the shifts really change the vectors."""
    parent = (3 if shape[0] > 1 else 0, 12, 14)
    frame, vs = _frame(shape, vs, parent, (1 if shape[0] > 1 else 0, 4, -3),
                       window=window)
    axes = [0, 1, 2] if shape[0] > 1 else [1, 2]
    ch = window[0] - 1  # the channel of frame t−1
    cfg = MovementConfig(
        window=window,
        augment=AugmentConfig(flip=True, rotation_deg=180.0 if shape[0] == 1 else 0.0),
        train=MovementTrainConfig(crop_shape=shape, shift_um=(2.0, 5.0, 5.0)),
    )
    means = []
    for seed in range(10):
        img, vec, m = movement_crop(np.random.default_rng(seed), frame, cfg, vs, axes,
                                    window=window)
        idx = np.argwhere(m > 0)
        assert len(idx) > 0
        marker = np.unravel_index(np.argmax(img[ch]), img[ch].shape) * vs
        pointed = idx[:, axes] * vs[axes] + vec[:, idx[:, 0], idx[:, 1], idx[:, 2]].T
        tol = 1e-4 if cfg.augment.rotation_deg == 0 else 1.5 * vs.max()
        assert np.abs(pointed - marker[axes]).max() <= tol, seed
        means.append(np.linalg.norm(vec[:, idx[:, 0], idx[:, 1], idx[:, 2]].mean(axis=1)))
    assert np.ptp(means) > 1.0  # the displacement's length varies from crop to crop


def test_shift_off_draws_nothing_and_keeps_seeded_crops():
    frame, vs = _frame((1, 32, 32), (1, 1, 1), (0, 12, 14), (0, 4, -3))
    cfg = MovementConfig(window=(1, 0), augment=AugmentConfig(flip=True),
                         train=MovementTrainConfig(crop_shape=(1, 24, 24)))
    a = movement_crop(np.random.default_rng(1), frame, cfg, vs, [1, 2])
    b = movement_crop(np.random.default_rng(1), frame, cfg, vs, [1, 2], window=(1, 0))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_epoch_frames_budget():
    rng = np.random.default_rng(0)
    items = epoch_frames(rng, [2, 5, 9], 4)
    assert sorted(items.tolist()) == [2] * 4 + [5] * 4 + [9] * 4
    items = epoch_frames(rng, [2, 5, 9], 4, crops_per_epoch=8)
    counts = np.bincount(items, minlength=10)[[2, 5, 9]]
    assert items.size == 8 and counts.min() == 2 and counts.max() == 3
    assert epoch_frames(rng, [4], 4, crops_per_epoch=32).tolist() == [4] * 32


def test_shift_and_budget_configs_are_validated():
    with pytest.raises(ConfigError):
        MovementTrainConfig(shift_um=(0.0, -1.0, 0.0))
    with pytest.raises(ConfigError):
        MovementTrainConfig(crops_per_epoch=0)


def test_train_movement_crops_per_epoch_and_shift(monkeypatch):
    from flow_data import moving_blobs

    from celltrack.config.detection import ModelConfig
    from celltrack.flow.movement_training import train_movement
    from celltrack.nn import training as nn_training

    images, graph = moving_blobs((0.0, 3.0, -2.0), n_frames=4, shape=(1, 32, 32),
                                 voxel_size=(1.0, 1.0, 1.0))
    cfg = MovementConfig(
        window=(1, 0),
        model=ModelConfig(widths=(8, 16)),
        target=MovementTargetConfig(radius_um=3.0, max_displacement_um=(10.0, 10.0, 10.0)),
        train=MovementTrainConfig(epochs=2, crops_per_frame=50, crops_per_epoch=4, batch_size=2,
                                  crop_shape=(1, 32, 32), shift_um=(0.0, 3.0, 3.0),
                                  num_threads=1),
    )
    real, calls = nn_training.optimisation_step, {"n": 0}

    def step(*args):
        calls["n"] += 1
        return real(*args)

    monkeypatch.setattr(nn_training, "optimisation_step", step)
    result = train_movement(images, graph, (1, 1, 1), cfg)
    assert calls["n"] == 2 * 2  # crops_per_epoch wins over crops_per_frame × 3 link frames
    assert np.isfinite(result.history["loss"]).all()
