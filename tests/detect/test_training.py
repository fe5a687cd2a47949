import numpy as np
import pytest
import torch

import celltrack.nn.training as nn_training
from celltrack.detect import (
    DetectionConfig,
    DetectionTrainer,
    ModelConfig,
    TrainConfig,
    build_model,
    detect,
    load_model,
    train_detection,
)
from celltrack.errors import CheckpointError, InvalidInputError, ShapeError
from celltrack.geometry import covariance_from_radii
from celltrack.graph import TrackGraph
from celltrack.nn import TrainingHistory, TrainRecord

torch.set_num_threads(1)
VS = (2.0, 1.0, 1.0)


def _movie(n_frames=2, shape=(6, 32, 32), centres=((6.0, 10.0, 10.0), (6.0, 22.0, 20.0))):
    zz, yy, xx = np.meshgrid(*[np.arange(s) * v for s, v in zip(shape, VS)], indexing="ij")
    img = np.full((n_frames, *shape), 10.0, np.float32)
    for c in centres:
        d2 = (zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2
        img += 100 * np.exp(-d2 / (2 * 3.0**2))
    return img


def _annotations(centres=((6.0, 10.0, 10.0),), t=0, tag="tp"):
    pos = np.asarray(centres, float)
    return TrackGraph.from_positions(
        np.full(len(pos), t), pos, covariance=covariance_from_radii(np.full((len(pos), 3), 4.0)),
        tag=np.full(len(pos), tag),
    )


def _cfg(**train):
    base = {"crop_shape": (6, 24, 24), "incremental_steps": 3, "prior_crops": 2,
            "prior_learning_rates": (1e-2,), "epochs": 1, "crops_per_frame": 2, "seed": 0}
    base.update(train)
    return DetectionConfig(model=ModelConfig(widths=(4, 8)), train=TrainConfig(**base))


def _trained(seed=0):
    cfg = _cfg(seed=seed)
    model = build_model(cfg.model, VS, seed=seed)
    trainer = DetectionTrainer(model, cfg)
    trainer.prior(_movie())
    trainer.incremental(_movie(), _annotations(), frame=0)
    return model, trainer


def test_training_is_deterministic_and_records_history():
    (m1, t1), (m2, t2) = _trained(), _trained()
    for a, b in zip(m1.parameters(), m2.parameters()):
        torch.testing.assert_close(a, b)
    assert t1.history["loss"] == t2.history["loss"]
    assert t1.history["mode"] == ["prior"] * 2 + ["incremental"] * 3
    assert all(np.isfinite(t1.history["loss"]))


def test_incremental_training_learns_the_annotated_nucleus():
    cfg = _cfg(incremental_steps=40, learning_rate=1e-2)
    cfg = cfg.model_copy(update={"augment": cfg.augment.model_copy(update={"rotation_deg": 0})})
    model = build_model(cfg.model, VS)
    trainer = DetectionTrainer(model, cfg)
    ann = _annotations(((6.0, 10.0, 10.0), (6.0, 22.0, 20.0)))
    trainer.incremental(_movie(1), ann)
    losses = trainer.history["loss"]
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    spots = detect(model, _movie(1), cfg=cfg)
    assert spots.num_nodes >= 1
    d = np.linalg.norm(spots.positions[:, None] - ann.positions[None], axis=2).min(0)
    assert np.all(d < 3.0)


def test_batch_training_saves_checkpoints_atomically(tmp_path):
    cfg = _cfg()
    model = build_model(cfg.model, VS)
    trainer = DetectionTrainer(model, cfg)
    pos = [[6.0, 10, 10], [6.0, 22, 20]]
    ann = TrackGraph.from_positions([0, 1], pos, tag=np.array(["tp", "fn"]))
    trainer.batch(_movie(), ann, epochs=2, checkpoint=tmp_path / "det.pt")
    _, meta = load_model(tmp_path / "det.pt")
    assert meta["training"]["position"] == {"phase": "batch", "epoch": 2}
    assert len(meta["history"]) == 2 * 2 * 2  # epochs × frames × crops per frame
    assert sorted(p.name for p in tmp_path.iterdir()) == ["det.pt"]


def test_detect_with_annotations_rechecks_tags():
    model, _ = _trained()
    cfg = _cfg()
    found = detect(model, _movie(), frames=[0], cfg=cfg)
    ann = TrackGraph.from_positions(
        [0, 0], [[6.0, 30, 2], *found.positions[:1]], ids=[100, 101], tag=np.array(["tp", "fn"])
    ) if found.num_nodes else None
    if ann is None:
        pytest.fail("the briefly trained model found nothing")
    out = detect(model, _movie(), frames=[0], cfg=cfg, annotations=ann)
    tags = dict(zip(out.ids.tolist(), out.nodes["tag"].tolist()))
    assert tags[100] == "fn" and tags[101] == "tp"  # missed stays fn, found becomes tp
    assert out.num_nodes == found.num_nodes + 1
    assert np.all(out.t == 0)


def test_bad_training_input():
    cfg = _cfg()
    model = build_model(cfg.model, VS)
    trainer = DetectionTrainer(model, cfg)
    empty = TrackGraph.from_positions([], np.zeros((0, 3)))
    with pytest.raises(InvalidInputError, match="annotat"):
        trainer.incremental(_movie(1), empty)
    with pytest.raises(InvalidInputError, match="outside"):
        trainer.incremental(_movie(1), _annotations(((6.0, 10.0, 300.0),)))
    with pytest.raises(InvalidInputError):
        trainer.batch(_movie(), _annotations(t=5))
    deep = build_model(ModelConfig(widths=(4, 8, 16)), VS)  # pools z at its 2nd level
    with pytest.raises(ShapeError, match="two_d"):
        DetectionTrainer(deep, cfg).prior(np.zeros((2, 1, 32, 32)))  # 2D movie, 3D model
    with pytest.raises(InvalidInputError, match="voxel_size"):
        DetectionTrainer(torch.nn.Linear(2, 2), cfg)  # a module, but no voxel size
    with pytest.raises(InvalidInputError, match="detector"):
        DetectionTrainer(object(), cfg)
    with pytest.raises(InvalidInputError):
        detect(model, _movie(), frames=[7], cfg=cfg)


def test_two_d_movies_train_and_detect():
    vs2 = (1.0, 1.0, 1.0)
    yy, xx = np.mgrid[:32, :32]
    blob = 10 + 100 * np.exp(-((yy - 10) ** 2 + (xx - 12) ** 2) / (2 * 3.0**2))
    movie = np.stack([blob[None], blob[None]]).astype(np.float32)  # (T=2, Z=1, 32, 32)
    cfg = _cfg(incremental_steps=2, crop_shape=(1, 24, 24))
    model = build_model(cfg.model, vs2, two_d=True)
    trainer = DetectionTrainer(model, cfg)
    trainer.prior(movie)
    ann = TrackGraph.from_positions([1], [[0.0, 10.0, 12.0]])
    trainer.incremental(movie, ann)
    spots = detect(model, movie, cfg=cfg)
    assert np.all(spots.nodes["z"] == 0.0) and set(np.unique(spots.t)) <= {0, 1}
    assert np.asarray(spots.nodes["covariance"]).shape == (spots.num_nodes, 3, 3)


def test_incremental_learning_rate_decays_to_the_configured_fraction():
    cfg = _cfg(incremental_steps=3, final_lr_fraction=0.1, learning_rate=1e-3)
    trainer = DetectionTrainer(build_model(cfg.model, VS), cfg)
    trainer.incremental(_movie(1), _annotations())
    np.testing.assert_allclose(trainer.history["lr"], [1e-3, 0.55e-3, 1e-4])


def test_history_is_typed():
    _, trainer = _trained()
    record = trainer.history[-1]
    assert isinstance(trainer.history, TrainingHistory) and isinstance(record, TrainRecord)
    assert record.mode == "incremental" and record.step == len(trainer.history) == 5
    assert set(record.parts) == {"nll", "dice", "smooth"} and record.seconds > 0
    assert np.all(np.isnan(trainer.history["dice"][:2]))  # the prior has no Dice term


def _two_frame_annotations():
    pos = [[6.0, 10, 10], [6.0, 22, 20]]
    return TrackGraph.from_positions([0, 1], pos, tag=np.array(["tp", "fn"]))


class _Killed(Exception):
    pass


def _kill_after(monkeypatch, n_steps):
    real = nn_training.optimisation_step
    calls = {"n": 0}

    def step(*args):
        calls["n"] += 1
        if calls["n"] > n_steps:
            raise _Killed
        return real(*args)

    monkeypatch.setattr(nn_training, "optimisation_step", step)
    return lambda: monkeypatch.setattr(nn_training, "optimisation_step", real)


def test_train_detection_resumed_run_equals_uninterrupted_run(tmp_path, monkeypatch):
    cfg = _cfg(epochs=2)
    ann = _two_frame_annotations()
    full = train_detection(_movie(), ann, VS, cfg, checkpoint=tmp_path / "a.pt")
    assert full.history["mode"] == ["prior"] * 2 + ["batch"] * 8 and full.frames == [0, 1]
    # killed in the middle of epoch 2 (2 prior steps + 4 of epoch 1 + 2 of epoch 2)
    restore = _kill_after(monkeypatch, 2 + 4 + 2)
    with pytest.raises(_Killed):
        train_detection(_movie(), ann, VS, cfg, checkpoint=tmp_path / "b.pt")
    restore()
    _, meta = load_model(tmp_path / "b.pt")
    assert meta["training"]["position"] == {"phase": "batch", "epoch": 1}
    resumed = train_detection(_movie(), ann, VS, cfg, checkpoint=tmp_path / "b.pt", resume=True)
    assert resumed.history["mode"] == full.history["mode"]
    assert resumed.history["loss"] == full.history["loss"]
    for p, q in zip(resumed.model.parameters(), full.model.parameters()):
        assert torch.equal(p, q)
    final, _ = load_model(tmp_path / "b.pt")
    for p, q in zip(final.parameters(), full.model.parameters()):
        assert torch.equal(p, q)


def test_resume_refuses_a_checkpoint_of_another_config(tmp_path):
    ann = _two_frame_annotations()
    train_detection(_movie(), ann, VS, _cfg(), checkpoint=tmp_path / "a.pt", prior=False)
    with pytest.raises(CheckpointError, match="another training config"):
        train_detection(
            _movie(), ann, VS, _cfg(learning_rate=5e-3), checkpoint=tmp_path / "a.pt",
            resume=True,
        )


def test_training_leaves_global_random_state_alone():
    torch_state = torch.random.get_rng_state()
    numpy_state = np.random.get_state()[1].copy()  # noqa: NPY002 (the legacy global)
    train_detection(_movie(), _two_frame_annotations(), VS, _cfg())
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    np.testing.assert_array_equal(np.random.get_state()[1], numpy_state)  # noqa: NPY002


class _TinyDetector(torch.nn.Module):
    """Not a DetectionUNet: a 1×1×1 convolution giving raw class logits."""

    def __init__(self, out=3):
        super().__init__()
        self.conv = torch.nn.Conv3d(1, out, 1)

    def forward(self, x):
        return self.conv(x)


def test_any_module_with_the_detector_interface_trains_and_detects():
    model = _TinyDetector()
    cfg = _cfg(incremental_steps=2)
    trainer = DetectionTrainer(model, cfg, voxel_size=VS)
    trainer.incremental(_movie(1), _annotations())
    assert len(trainer.history) == 2 and np.all(np.isfinite(trainer.history["loss"]))
    spots = detect(model, _movie(1), cfg=cfg, voxel_size=VS)
    assert spots.attrs["voxel_size"] == list(VS)
    with pytest.raises(InvalidInputError, match="voxel_size"):
        detect(model, _movie(1), cfg=cfg)  # an array and a model without voxel_size
    with pytest.raises(ShapeError, match=r"\(B, 3, Z, Y, X\)"):
        detect(_TinyDetector(out=2), _movie(1), cfg=cfg, voxel_size=VS)
    with pytest.raises(CheckpointError, match="DetectionUNet"):
        train_detection(_movie(), _two_frame_annotations(), VS, cfg, model=model,
                        checkpoint="unused.pt")


def test_a_2d_movie_as_t_y_x_or_t_1_y_x_gives_the_same_detections():
    movie = _movie()[:, 3]  # (T, Y, X): 2D+t
    cfg = _cfg()
    vs2 = (1.0, 1.0, 1.0)
    model2d = build_model(ModelConfig(widths=(4, 8)), vs2, two_d=True, seed=1)
    a = detect(model2d, movie, cfg=cfg)
    b = detect(model2d, movie[:, None], cfg=cfg)
    assert a.num_nodes == b.num_nodes
    np.testing.assert_array_equal(a.t, b.t)
    np.testing.assert_allclose(a.positions, b.positions)
    assert set(np.unique(a.t)) <= {0, 1}


def test_trainer_reports_label_voxels_and_uses_automatic_background(caplog):
    import logging

    from celltrack.detect.labels import AUTO_BACKGROUND, BACKGROUND

    cfg = _cfg()
    model = build_model(cfg.model, VS)
    trainer = DetectionTrainer(model, cfg)
    ann = _annotations()
    with caplog.at_level(logging.INFO, logger="celltrack.detect.training"):
        trainer.incremental(_movie(), ann, frame=0)
    summary = trainer.label_summary
    assert summary["centre"] > 0 and summary["background_automatic"] > 0
    assert "training on 1 frame(s)" in caplog.text and "automatic" in caplog.text
    item = trainer._annotated_frame(trainer._movie(_movie()), None, ann, 0)
    assert item.labels.max() < AUTO_BACKGROUND and (item.labels == BACKGROUND).any()
    # a frame holding only a rejected mark gets its automatic background from the others
    both = TrackGraph.from_positions(
        [0, 1], [[6.0, 10.0, 10.0], [6.0, 22.0, 20.0]],
        covariance=covariance_from_radii(np.full((2, 3), 4.0)), tag=["tp", "fp"],
    )
    only_fp = trainer._annotated_frame(trainer._movie(_movie()), None, both, 1)
    assert only_fp.summary["background_automatic"] > 0 and only_fp.summary["false"] > 0
    no_auto = cfg.labels.model_copy(update={"auto_background": "off"})
    off = cfg.model_copy(update={"labels": no_auto})
    res = train_detection(_movie(), ann, VS, off, prior=False)
    assert res.label_summary["background_automatic"] == 0 and res.label_summary["centre"] > 0


def test_rejected_prediction_trains_as_background_with_extra_weight():
    from celltrack.detect.losses import voxel_weights
    from celltrack.detect.predict import predict_probabilities

    cfg = _cfg(incremental_steps=40, learning_rate=1e-2)
    cfg = cfg.model_copy(update={
        "augment": cfg.augment.model_copy(update={"rotation_deg": 0}),
        "labels": cfg.labels.model_copy(update={"auto_background": "off"}),
    })
    a, b = (6.0, 10.0, 10.0), (6.0, 22.0, 20.0)  # a nucleus and a small bright speck
    shape = (6, 32, 32)
    grids = np.meshgrid(*[np.arange(s) * v for s, v in zip(shape, VS)], indexing="ij")
    img = np.full((1, *shape), 10.0, np.float32)
    for c, sigma in ((a, 3.0), (b, 1.5)):
        img += 100 * np.exp(-sum((g - x) ** 2 for g, x in zip(grids, c)) / (2 * sigma**2))
    at_a, at_b = (tuple(np.rint(np.asarray(p) / VS).astype(int).tolist()) for p in (a, b))
    centre_at_b = {}
    for tag in ("fp", "unlabeled"):
        ann = TrackGraph.from_positions(
            [0, 0], [a, b], covariance=covariance_from_radii(np.array([[4.0] * 3, [2.0] * 3])),
            tag=["tp", tag],
        )
        model = build_model(cfg.model, VS)
        trainer = DetectionTrainer(model, cfg)
        if tag == "fp":
            item = trainer._annotated_frame(trainer._movie(img), None, ann, 0)
            codes = torch.from_numpy(item.labels[None].astype(np.int64))
            _, weights = voxel_weights(codes, cfg.loss)
            expected = cfg.loss.class_weights[0] * cfg.loss.false_weight
            assert float(weights[(0, *at_b)]) == pytest.approx(expected)
        trainer.incremental(img, ann)
        centre = predict_probabilities(model, img[0], cfg)[2]
        centre_at_b[tag] = float(centre[at_b])
        assert centre[at_a] > 0.3
    # unreviewed, the speck looks like a nucleus to the model; rejected, it is background
    assert centre_at_b["fp"] < 0.1 < 0.5 < centre_at_b["unlabeled"]


def test_training_and_prediction_share_the_configured_normalisation():
    from celltrack.config.nn import NormalizeConfig
    from celltrack.detect.predict import predict_probabilities
    from celltrack.nn.normalize import normalize_frame

    minmax = NormalizeConfig(mode="minmax")
    cfg = _cfg().model_copy(update={"normalize": minmax})
    model = build_model(cfg.model, VS)
    trainer = DetectionTrainer(model, cfg)
    movie = _movie(1)
    movie[0, 0, 0, 0] = 1000.0  # a hot pixel: min–max and percentile now differ
    cached = trainer._frame(trainer._movie(movie), movie, 0)[0]
    np.testing.assert_allclose(cached, normalize_frame(movie[0], minmax))
    by_cfg = predict_probabilities(model, movie[0], cfg)
    by_kw = predict_probabilities(model, movie[0], cfg.predict, normalization=minmax)
    np.testing.assert_allclose(by_cfg, by_kw)
    default = predict_probabilities(model, movie[0], cfg.predict)  # percentile 1–99.8
    assert np.abs(default - by_cfg).max() > 1e-4


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_incremental_update_replays_the_other_reviewed_frames(share, monkeypatch):
    """With replay, crops come from the other reviewed frames too; without, the edited only."""
    cfg = _cfg(incremental_steps=6, batch_size=2, incremental_replay=share)
    trainer = DetectionTrainer(build_model(cfg.model, VS), cfg)
    movie = _movie(3)
    movie[2] *= 2.0  # frame 2 differs, so its crops can be told apart
    ann = TrackGraph.from_positions(
        [0, 2], [[6.0, 10, 10], [6.0, 22, 20]],
        covariance=covariance_from_radii(np.full((2, 3), 4.0)), tag=np.array(["tp", "tp"]),
    )
    drawn = []
    real = trainer._batch

    def spy(frames, rng):
        drawn.extend(f.centres[0].tolist() for f in frames)
        return real(frames, rng)

    monkeypatch.setattr(trainer, "_batch", spy)
    trainer.incremental(movie, ann, frame=2)
    edited = [c for c in drawn if c[1] > 15]  # frame 2's nucleus sits at y = 22 µm
    assert len(drawn) == 12
    assert len(edited) == (12 if share == 0.0 else 0)


def test_the_prior_target_keeps_empty_crops_dark_and_bright_ones_in_range():
    from celltrack.detect.training import _prior_target

    dim = torch.full((1, 1, 2, 4, 4), 0.1) + torch.linspace(0, 0.05, 32).view(1, 1, 2, 4, 4)
    bright = torch.linspace(-0.1, 1.6, 32).view(1, 1, 2, 4, 4)  # percentile-normalised
    target = _prior_target(torch.cat([dim, bright]))
    assert float(target[0].max()) <= 0.05 + 1e-6  # noise of an empty crop is not stretched
    assert float(target[1].min()) == 0.0 and abs(float(target[1].max()) - 1.0) < 1e-6
