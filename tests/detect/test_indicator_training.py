import numpy as np
import pytest
import torch

import celltrack.nn.training as nn_training
from celltrack.config.detection import ModelConfig, TrainConfig
from celltrack.config.indicator import IndicatorConfig, IndicatorNMSConfig, IndicatorTargetConfig
from celltrack.config.nn import AugmentConfig
from celltrack.detect.indicator_model import build_indicator_model
from celltrack.detect.indicator_predict import detect_indicator, predict_indicator
from celltrack.detect.indicator_targets import indicator_training_target
from celltrack.detect.indicator_training import (
    IndicatorTrainer,
    _decode,
    _encode,
    indicator_loss,
    train_indicator,
)
from celltrack.errors import CheckpointError, InvalidInputError, ShapeError
from celltrack.graph import TrackGraph
from celltrack.nn.linajea_unet import LinajeaUNet, load_linajea_model

torch.set_num_threads(1)
VS = (2.0, 1.0, 1.0)
CENTRES = ((6.0, 8.0, 8.0), (6.0, 24.0, 22.0), (6.0, 10.0, 26.0))


def _movie(n_frames=3, shape=(6, 32, 32), centres=CENTRES, drift=1.0):
    """Bright Gaussian nuclei on a dark, noisy background, drifting 1 µm/frame in x."""
    rng = np.random.default_rng(1)
    zz, yy, xx = np.meshgrid(*[np.arange(s) * v for s, v in zip(shape, VS)], indexing="ij")
    img = np.zeros((n_frames, *shape), np.float32)
    for t in range(n_frames):
        img[t] = 100.0 + rng.normal(0, 2.0, shape)
        for c in centres:
            z = c[0] if shape[0] > 1 else 0.0
            d2 = (zz - z) ** 2 + (yy - c[1]) ** 2 + (xx - c[2] - drift * t) ** 2
            img[t] += 400 * np.exp(-d2 / (2 * 2.5**2))
    return img


def _annotations(rows=((0, 0), (0, 1)), tags=None, two_d=False):
    t = np.array([r[0] for r in rows])
    pos = np.array([CENTRES[r[1]] for r in rows], float) + np.c_[0 * t, 0 * t, t * 1.0]
    if two_d:
        pos[:, 0] = 0.0
    tag = np.array(tags if tags is not None else ["tp"] * len(rows))
    return TrackGraph.from_positions(t, pos, tag=tag)


def _cfg(**train):
    base = {"crop_shape": (6, 24, 24), "batch_size": 2, "learning_rate": 3e-3, "epochs": 2,
            "crops_per_frame": 4, "incremental_steps": 3, "seed": 0, "final_lr_fraction": 0.1}
    base.update(train)
    return IndicatorConfig(
        model=ModelConfig(widths=(4, 8)),
        train=TrainConfig(**base),
        augment=AugmentConfig(flip=True),
        target=IndicatorTargetConfig(sigma_um=(1.5, 1.5, 1.5), mask_radius_um=3.0),
        nms=IndicatorNMSConfig(window_um=(6.0, 6.0, 6.0), threshold=0.3, calibrate=False),
        predict={"tile_shape": (8, 32, 32), "overlap": (0, 0, 0)},
    )


def test_masked_mse_ignores_voxels_of_weight_zero():
    pred = torch.tensor([0.2, 0.9, 0.5], requires_grad=True)
    target = torch.tensor([0.0, 1.0, 1.0])
    weight = torch.tensor([1.0, 3.0, 0.0])
    loss = indicator_loss(pred, target, weight)
    assert loss.item() == pytest.approx((0.04 + 3 * 0.01) / 4)
    other = indicator_loss(torch.tensor([0.2, 0.9, -7.0]), target, weight)
    assert other.item() == pytest.approx(loss.item())  # the weight-0 voxel does not count
    loss.backward()
    assert pred.grad is not None and pred.grad[2] == 0.0
    empty = indicator_loss(pred, target, torch.zeros(3))
    assert empty.item() == 0.0 and empty.requires_grad
    with pytest.raises(InvalidInputError, match="one shape"):
        indicator_loss(pred, target[:2], weight)


def test_target_and_weight_survive_the_crop_encoding():
    rng = np.random.default_rng(0)
    target = rng.random((3, 5, 5)).astype(np.float32)
    weight = rng.choice(np.float32([0.0, 1.0, 10.0, 0.0123]), size=(3, 5, 5))
    code, levels = _encode(target, weight)
    t2, w2 = _decode(code, levels)
    np.testing.assert_array_equal(w2, weight)
    np.testing.assert_allclose(t2[weight > 0], target[weight > 0], atol=1e-6)
    assert np.all(t2[weight == 0] == 0)


def test_build_model_is_seeded_and_has_one_indicator_head():
    cfg = _cfg()
    a, b = build_indicator_model(cfg, VS, seed=3), build_indicator_model(cfg, VS, seed=3)
    assert isinstance(a, LinajeaUNet) and a.heads == ("indicator",) and a.window == (0, 0)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    windowed = build_indicator_model(cfg.model_copy(update={"window": (1, 1)}), VS)
    assert windowed.in_channels == 3
    assert build_indicator_model(cfg, VS, two_d=True).two_d


def _full_frame_loss(model, movie, ann, t, cfg):
    target, weight = indicator_training_target(movie[t], ann, t, VS, cfg)
    pred = predict_indicator(model, movie, t, cfg)
    return float(np.sum(weight * (pred - target) ** 2) / np.sum(weight))


def test_training_reduces_the_masked_loss_and_is_deterministic():
    movie, ann, cfg = _movie(), _annotations(), _cfg(epochs=12)
    model = build_indicator_model(cfg, VS)
    before = _full_frame_loss(model, movie, ann, 0, cfg)
    res = train_indicator(movie, ann, VS, cfg, model=model)
    after = _full_frame_loss(res.model, movie, ann, 0, cfg)
    assert after < 0.5 * before
    assert res.history["mode"] == ["batch"] * 24 and res.frames == [0]
    assert res.label_summary["nucleus"] > 0 and res.label_summary["background"] > 0
    again = train_indicator(movie, ann, VS, cfg)
    assert again.history["loss"] == res.history["loss"]


def test_detect_indicator_finds_the_nuclei_with_a_score_column():
    movie, cfg = _movie(), _cfg(epochs=12)
    ann = _annotations()  # two of the three nuclei, in frame 0
    model = train_indicator(movie, ann, VS, cfg).model
    spots = detect_indicator(model, movie, cfg=cfg, voxel_size=VS)
    assert {"score", "covariance", "tag"} <= set(spots.nodes)
    assert np.all(spots.nodes["tag"] == "unlabeled")
    for t in range(movie.shape[0]):
        found = spots.positions[spots.t == t]
        truth = np.array(CENTRES) + np.array([0.0, 0.0, 1.0 * t])
        dist = np.linalg.norm(found[:, None] - truth[None], axis=2)
        assert len(found) == 3, (t, found)
        assert np.all(dist.min(axis=0) < 2.5)  # the unannotated nucleus too
    assert np.all(spots.nodes["score"] > cfg.nms.threshold) and np.all(spots.nodes["score"] <= 1)
    np.testing.assert_allclose(spots.nodes["covariance"][0], np.eye(3) * 16.0)
    assert spots.attrs["voxel_size"] == list(VS) and spots.attrs["detection_config"]["kind"] == (
        "indicator"
    )
    # with the annotations: kept, tags re-checked, the duplicates of predictions dropped
    merged = detect_indicator(model, movie, frames=[0], cfg=cfg, voxel_size=VS, annotations=ann)
    assert merged.num_nodes == 3
    assert sorted(merged.nodes["tag"].tolist()) == ["tp", "tp", "unlabeled"]
    assert set(ann.ids.tolist()) <= set(merged.ids.tolist())
    calibrating = cfg.model_copy(update={"nms": cfg.nms.model_copy(update={"calibrate": True})})
    merged = detect_indicator(model, movie, frames=[0, 1], cfg=calibrating, voxel_size=VS,
                              annotations=ann)
    cal = merged.attrs["calibration"]  # too few nuclei to move anything
    assert cal["sizes_calibrated"] is False and cal["threshold_calibrated"] is False
    assert cal["threshold"] == cfg.nms.threshold and np.bincount(merged.t).tolist() == [3, 3]


def test_resumed_training_equals_the_uninterrupted_run(tmp_path, monkeypatch):
    movie, ann, cfg = _movie(), _annotations(), _cfg(epochs=2)
    full = train_indicator(movie, ann, VS, cfg, checkpoint=tmp_path / "a.pt")
    real = nn_training.optimisation_step
    calls = {"n": 0}

    def step(*args):
        calls["n"] += 1
        if calls["n"] > 3:  # killed in epoch 2 (2 steps per epoch)
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(nn_training, "optimisation_step", step)
    with pytest.raises(KeyboardInterrupt):
        train_indicator(movie, ann, VS, cfg, checkpoint=tmp_path / "b.pt")
    monkeypatch.setattr(nn_training, "optimisation_step", real)
    resumed = train_indicator(movie, ann, VS, cfg, checkpoint=tmp_path / "b.pt", resume=True)
    assert resumed.history["loss"] == full.history["loss"]
    for p, q in zip(resumed.model.parameters(), full.model.parameters()):
        assert torch.equal(p, q)
    final = load_linajea_model(tmp_path / "b.pt", heads=("indicator",))
    for p, q in zip(final.parameters(), full.model.parameters()):
        assert torch.equal(p, q)
    with pytest.raises(CheckpointError, match="another training config"):
        train_indicator(movie, ann, VS, _cfg(learning_rate=1e-4), checkpoint=tmp_path / "a.pt",
                        resume=True)


def test_incremental_updates_replay_other_frames():
    movie, cfg = _movie(), _cfg(incremental_replay=0.5)
    ann = _annotations(rows=((0, 0), (2, 1)))
    trainer = IndicatorTrainer(build_indicator_model(cfg, VS), cfg, voxel_size=VS)
    trainer.incremental(movie, ann, frame=2)
    trainer.incremental(movie, ann, frame=0, steps=2)
    assert trainer.history["mode"] == ["incremental"] * 5
    assert np.all(np.isfinite(trainer.history["loss"]))
    with pytest.raises(InvalidInputError, match="pass frame=t"):
        trainer.incremental(movie, ann)
    with pytest.raises(InvalidInputError, match="no annotations in frame 1"):
        trainer.incremental(movie, ann, frame=1)


def test_frames_with_only_rejected_marks_train_with_pooled_statistics():
    movie, cfg = _movie(), _cfg(epochs=1)
    ann = _annotations(rows=((0, 0), (1, 2)), tags=["tp", "fp"])
    res = train_indicator(movie, ann, VS, cfg)
    assert res.frames == [0, 1] and np.all(np.isfinite(res.history["loss"]))


def test_two_d_movies_train_and_detect():
    movie = _movie(shape=(1, 32, 32))
    ann = _annotations(two_d=True)
    cfg = _cfg(epochs=24)
    res = train_indicator(movie[:, 0], ann, VS, cfg)  # (T, Y, X) is 2D+t
    assert res.model.two_d
    spots = detect_indicator(res.model, movie, cfg=cfg, voxel_size=VS)
    assert np.all(spots.nodes["z"] == 0.0)
    found = spots.positions[spots.t == 0]
    truth = np.array(CENTRES) * [0.0, 1.0, 1.0]
    assert np.all(np.linalg.norm(found[:, None] - truth[None], axis=2).min(axis=0) < 2.5)


def test_clear_errors():
    movie, cfg = _movie(), _cfg()
    model3d = build_indicator_model(cfg, VS)
    with pytest.raises(InvalidInputError, match="TrackGraph"):
        train_indicator(movie, np.zeros((2, 3)), VS, cfg)
    with pytest.raises(InvalidInputError, match="no training annotations"):
        train_indicator(movie, _annotations(tags=["unlabeled", "unlabeled"]), VS, cfg)
    with pytest.raises(InvalidInputError, match="movie has 3 frames"):
        train_indicator(movie, _annotations(rows=((5, 0),)), VS, cfg)
    with pytest.raises(ShapeError, match="two_d=True"):
        pooled_z = build_indicator_model(cfg.model_copy(update={"model": ModelConfig(
            widths=(4, 8, 8, 8))}), (1.0, 1.0, 1.0))
        predict_indicator(pooled_z, _movie(shape=(1, 32, 32)), 0, cfg)
    with pytest.raises(ShapeError, match="two_d"):
        predict_indicator(build_indicator_model(cfg, VS, two_d=True), movie, 0, cfg)
    with pytest.raises(InvalidInputError, match="voxel_size"):
        detect_indicator(model3d, movie, cfg=cfg)
    with pytest.raises(InvalidInputError, match="'indicator' head"):
        detect_indicator(torch.nn.Conv3d(1, 1, 1), movie, cfg=cfg, voxel_size=VS)
    with pytest.raises(InvalidInputError, match="outside the movie"):
        predict_indicator(model3d, movie, 7, cfg)
    with pytest.raises(InvalidInputError, match="outside the movie"):
        detect_indicator(model3d, movie, frames=[9], cfg=cfg, voxel_size=VS)
    movement = LinajeaUNet((0, 0), ("movement",), (4, 8), [(1, 2, 2)])
    with pytest.raises(InvalidInputError, match="not 'indicator'"):
        IndicatorTrainer(movement, cfg, voxel_size=VS)


def test_a_window_of_frames_is_the_input():
    movie, cfg = _movie(), _cfg(epochs=1).model_copy(update={"window": (1, 1)})
    res = train_indicator(movie, _annotations(), VS, cfg)
    assert res.model.window == (1, 1) and res.model.in_channels == 3
    for t in (0, 2):  # clamped at both ends of the movie
        ind = predict_indicator(res.model, movie, t, cfg)
        assert ind.shape == movie.shape[1:] and np.all((ind >= 0) & (ind <= 1))


def test_the_indicator_head_of_a_joint_model_detects():
    movie, cfg = _movie(), _cfg()
    joint = LinajeaUNet((0, 0), ("indicator", "movement"), (4, 8), [(1, 2, 2)])
    ind = predict_indicator(joint, movie, 1, cfg)
    assert ind.shape == movie.shape[1:] and np.all((ind >= 0) & (ind <= 1))
    spots = detect_indicator(joint, movie, frames=[0], cfg=cfg, voxel_size=VS)
    assert np.all(spots.t == 0) and "score" in spots.nodes
