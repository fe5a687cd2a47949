"""Linajea's joint model: α schedule, target packing, the loss terms, training and resume."""

import numpy as np
import pytest
import torch
from flow_data import moving_blobs

from celltrack.config.detection import ModelConfig
from celltrack.config.indicator import IndicatorConfig
from celltrack.config.movement import (
    MovementConfig,
    MovementLossConfig,
    MovementTargetConfig,
    MovementTrainConfig,
)
from celltrack.errors import CheckpointError, InvalidInputError
from celltrack.graph import TrackGraph
from celltrack.joint import (
    blend_alpha,
    decode_targets,
    encode_targets,
    joint_loss,
    train_joint,
)
from celltrack.nn import training as nn_training
from celltrack.nn.linajea_unet import load_linajea_model


def test_blend_alpha_is_linajeas_sigmoid():
    cfg = MovementLossConfig(blend_rate=0.01, blend_offset_steps=20000)
    assert blend_alpha(20000, cfg) == 0.5
    assert blend_alpha(0, cfg) == pytest.approx(1 / (1 + np.exp(200)))
    assert blend_alpha(20100, cfg) == pytest.approx(1 / (1 + np.exp(-1)))
    assert blend_alpha(1e9, cfg) == pytest.approx(1.0)
    assert blend_alpha(-1e9, cfg) == 0.0  # no overflow
    short = MovementLossConfig()  # defaults scaled to a few hundred steps
    assert blend_alpha(0, short) < 0.01 and blend_alpha(2 * short.blend_offset_steps, short) > 0.99


def test_encode_decode_round_trip():
    rng = np.random.default_rng(0)
    target = rng.random((2, 5, 6)).astype(np.float32)
    weight = rng.choice([0.0, 0.1, 1.0, 10.0], size=(2, 5, 6)).astype(np.float32)
    mask = (rng.random((2, 5, 6)) > 0.5).astype(np.float32)
    code, levels = encode_targets(target, weight, mask)
    assert np.array_equal(levels[0], [0.0, 0.0])
    assert np.all((code == 0) == ((weight == 0) & (mask == 0)))
    t2, w2, m2 = decode_targets(code, levels)
    trained = (weight > 0) | (mask > 0)
    np.testing.assert_allclose(t2[trained], target[trained], atol=1e-6)
    np.testing.assert_array_equal(w2, weight)
    np.testing.assert_array_equal(m2, mask)


def test_joint_loss_maxima_term_uses_only_indicator_maxima_in_the_mask():
    shape = (1, 1, 1, 5, 5)
    ind = torch.zeros(shape)
    ind[0, 0, 0, 2, 2] = 0.9  # one maximum, inside the mask
    ind[0, 0, 0, 0, 4] = 0.8  # another one, outside the mask
    move = torch.zeros(1, 2, 1, 5, 5)
    vectors = torch.zeros(1, 2, 1, 5, 5)
    vectors[:, :, 0, 1:4, 1:4] = 1.0  # error 1 µm on both axes inside the mask...
    vectors[:, :, 0, 2, 2] = 2.0  # ...and 2 µm at the maximum
    mask = torch.zeros(shape)
    mask[0, 0, 0, 1:4, 1:4] = 1.0
    zero = torch.zeros(shape)
    cfg = MovementLossConfig(indicator_weight=0.0)
    kw = {"cfg": cfg, "nms_window": (1, 3, 3), "scale": [2.0, 2.0]}
    at_max, parts = joint_loss(ind, move, zero, zero, vectors, mask, 1.0, **kw)
    assert float(at_max) == pytest.approx(1.0)  # (2 / 2)² at the one maximum in the mask
    over_mask, parts0 = joint_loss(ind, move, zero, zero, vectors, mask, 0.0, **kw)
    assert float(over_mask) == pytest.approx((8 * 0.25 + 1.0) / 9)
    assert parts0["maxima"] == pytest.approx(1.0) and parts0["alpha"] == 0.0
    half, _ = joint_loss(ind, move, zero, zero, vectors, mask, 0.5, **kw)
    assert float(half) == pytest.approx(0.5 * 1.0 + 0.5 * float(over_mask))
    # the indicator term: weighted MSE of the indicator, times indicator_weight
    target = torch.zeros(shape)
    weight = torch.zeros(shape)
    weight[0, 0, 0, 2, 2] = 1.0
    weighted = MovementLossConfig(indicator_weight=3.0, movement_weight=1.0)
    loss, parts = joint_loss(ind, move, target, weight, vectors, mask, 1.0,
                             cfg=weighted, nms_window=(1, 3, 3), scale=[2.0, 2.0])
    assert parts["indicator"] == pytest.approx(0.81)
    assert float(loss) == pytest.approx(3 * 0.81 + 1.0)


def _setup(epochs=3):
    images, graph = moving_blobs((0.0, 3.0, -2.0), n_frames=4, shape=(1, 32, 32),
                                 voxel_size=(1.0, 1.0, 1.0))
    mcfg = MovementConfig(
        window=(1, 0),
        model=ModelConfig(widths=(8, 16)),
        target=MovementTargetConfig(radius_um=3.0, max_displacement_um=(10.0, 10.0, 10.0)),
        loss=MovementLossConfig(blend_offset_steps=6, blend_rate=0.5),
        train=MovementTrainConfig(epochs=epochs, crops_per_frame=2, batch_size=2,
                                  crop_shape=(1, 32, 32), learning_rate=3e-3, num_threads=1),
    )
    return images, graph, IndicatorConfig(), mcfg


def test_joint_training_trains_both_heads_and_resumes(tmp_path, monkeypatch):
    images, graph, icfg, mcfg = _setup(epochs=4)
    full = train_joint(images, graph, (1, 1, 1), icfg, mcfg)
    assert full.model.heads == ("indicator", "movement") and full.model.window == (1, 0)
    assert full.n_links == graph.num_edges
    hist = full.history
    assert set(hist[0].parts) == {"indicator", "mask", "maxima", "alpha"}
    alphas = [r.parts["alpha"] for r in hist]
    assert alphas == sorted(alphas) and alphas[0] < 0.2 and alphas[-1] > 0.5
    assert hist[-1].parts["indicator"] < hist[0].parts["indicator"]
    assert hist[-1].parts["mask"] < hist[0].parts["mask"]
    # killed during epoch 3, resumed: identical to the uninterrupted run
    ckpt = tmp_path / "joint.pt"
    real, calls = nn_training.optimisation_step, {"n": 0}

    def step(*args):
        calls["n"] += 1
        if calls["n"] > 9:
            raise RuntimeError("killed")
        return real(*args)

    monkeypatch.setattr(nn_training, "optimisation_step", step)
    with pytest.raises(RuntimeError, match="killed"):
        train_joint(images, graph, (1, 1, 1), icfg, mcfg, checkpoint=ckpt)
    monkeypatch.setattr(nn_training, "optimisation_step", real)
    resumed = train_joint(images, graph, (1, 1, 1), icfg, mcfg, checkpoint=ckpt, resume=True)
    assert resumed.history["loss"] == full.history["loss"]
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert load_linajea_model(ckpt, heads=("indicator", "movement")).heads == full.model.heads
    other = icfg.model_copy(update={"nms": icfg.nms.model_copy(update={"window_um": (4, 4, 4)})})
    with pytest.raises(CheckpointError, match="another training config"):
        train_joint(images, graph, (1, 1, 1), other, mcfg, checkpoint=ckpt, resume=True)


def test_joint_errors():
    images, graph, icfg, mcfg = _setup()
    with pytest.raises(InvalidInputError, match="spans 4 frames"):
        train_joint(images[:3], graph.subgraph(nodes=graph.t < 3), (1, 1, 1), icfg,
                    mcfg.model_copy(update={"window": (2, 1)}))
    with pytest.raises(InvalidInputError, match="TrackGraph"):
        train_joint(images, {"nodes": []}, (1, 1, 1), icfg, mcfg)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="IndicatorConfig"):
        train_joint(images, graph, (1, 1, 1), mcfg, mcfg)  # type: ignore[arg-type]
    outside = TrackGraph({"id": [0], "t": [9], "z": [0.0], "y": [5.0], "x": [5.0]})
    with pytest.raises(InvalidInputError, match="outside the movie"):
        train_joint(images, outside, (1, 1, 1), icfg, mcfg)


def test_joint_crops_per_epoch_bounds_steps_and_shift_trains(monkeypatch):
    """Issue #14: ``crops_per_epoch`` fixes the steps however many frames are annotated,
    and the shift augmentation runs in the joint trainer too."""
    images, graph, icfg, mcfg = _setup(epochs=2)
    train = mcfg.train.model_copy(update={"crops_per_epoch": 6, "shift_um": (0.0, 2.0, 2.0)})
    mcfg = mcfg.model_copy(update={"train": train})
    real, calls = nn_training.optimisation_step, {"n": 0}

    def step(*args):
        calls["n"] += 1
        return real(*args)

    monkeypatch.setattr(nn_training, "optimisation_step", step)
    result = train_joint(images, graph, (1, 1, 1), icfg, mcfg)
    assert calls["n"] == 2 * 3  # 2 epochs × 6 crops / batch 2, over the 4 annotated frames
    assert np.isfinite(result.history["loss"]).all()
