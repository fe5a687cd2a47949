"""Movement-vector model: loss, augmented crops, training, resume, prediction, errors."""

import numpy as np
import pytest
import torch
from flow_data import moving_blobs

from celltrack.config.detection import ModelConfig
from celltrack.config.movement import (
    MovementConfig,
    MovementLossConfig,
    MovementPredictConfig,
    MovementTargetConfig,
    MovementTrainConfig,
)
from celltrack.config.nn import AugmentConfig
from celltrack.errors import CheckpointError, GraphError, InvalidInputError, ShapeError
from celltrack.flow import parent_errors
from celltrack.flow.movement_model import build_movement_model
from celltrack.flow.movement_predict import (
    parents_from_vectors,
    predict_movement,
    predict_parents_movement,
)
from celltrack.flow.movement_targets import movement_training_target
from celltrack.flow.movement_training import (
    MovementFrame,
    axis_weights,
    masked_mse,
    movement_crop,
    train_movement,
)
from celltrack.graph import TrackGraph
from celltrack.nn import training as nn_training
from celltrack.nn.linajea_unet import load_linajea_model


def _cfg(**train):
    values = {"epochs": 3, "crops_per_frame": 4, "batch_size": 2, "crop_shape": (1, 32, 32),
              "learning_rate": 3e-3, "num_threads": 1}
    values.update(train)
    return MovementConfig(
        window=(1, 0),
        model=ModelConfig(widths=(8, 16)),
        target=MovementTargetConfig(radius_um=3.0, max_displacement_um=(10.0, 10.0, 10.0)),
        train=MovementTrainConfig(**values),
        predict=MovementPredictConfig(tile_shape=(1, 32, 32), overlap=(0, 0, 0), num_threads=1),
    )


# --------------------------------------------------------------------------- loss
def test_masked_mse_ignores_masked_out_voxels_and_balances_axes():
    pred = torch.zeros(1, 2, 1, 2, 2)
    target = torch.zeros(1, 2, 1, 2, 2)
    target[0, 0, 0, 0, 0] = 2.0  # error 2 µm on axis 0 at voxel (0, 0)
    target[0, 1, 0, 0, 1] = 4.0  # error 4 µm on axis 1 at voxel (0, 1)
    pred[0, :, 0, 1, :] = 100.0  # huge errors where the mask is 0
    mask = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])
    # scale (2, 4): both errors are 1 in scale units; weights 1/2 each; 2 masked voxels
    loss = masked_mse(pred, target, mask, [2.0, 4.0])
    assert float(loss) == pytest.approx((0.5 * 1.0 + 0.5 * 1.0) / 2)
    # weights favour axis 1; a (B, 1, ...) mask is accepted too
    loss_w = masked_mse(pred, target, mask[:, None], [2.0, 4.0], torch.tensor([0.25, 0.75]))
    assert float(loss_w) == pytest.approx((0.25 + 0.75) / 2)
    empty = masked_mse(pred.requires_grad_(), target, torch.zeros_like(mask), [2.0, 4.0])
    assert float(empty.detach()) == 0.0


def test_masked_mse_clips_unreachable_targets():
    pred = torch.full((1, 1, 1, 1, 1), 10.0)
    target = torch.full((1, 1, 1, 1, 1), 25.0)  # beyond the scale of 10 µm
    assert float(masked_mse(pred, target, torch.ones(1, 1, 1, 1), [10.0])) == 0.0


def test_axis_weights_keep_predicted_axes():
    w = axis_weights(MovementLossConfig(dim_weights=(5.0, 1.0, 3.0)), [1, 2])
    np.testing.assert_allclose(w.numpy(), [0.25, 0.75])
    with pytest.raises(InvalidInputError, match="weight 0"):
        axis_weights(MovementLossConfig(dim_weights=(1.0, 0.0, 0.0)), [1, 2])


# --------------------------------------------------------------------------- crops
@pytest.mark.parametrize("shape,vs", [((6, 16, 20), (2.0, 1.0, 0.5)), ((1, 16, 20), (1, 1, 1))])
def test_flips_move_vectors_with_the_image(shape, vs):
    """After a flip, every masked voxel still points to the (flipped) parent marker."""
    vs = np.asarray(vs, float)
    parent_vox = np.array([3 if shape[0] > 1 else 0, 5, 6])
    child = (parent_vox + np.array([1 if shape[0] > 1 else 0, 4, 7])) * vs
    g = TrackGraph(
        {"id": [0, 1], "t": [0, 1], "z": [parent_vox[0] * vs[0], child[0]],
         "y": [parent_vox[1] * vs[1], child[1]], "x": [parent_vox[2] * vs[2], child[2]]},
        {"source": [0], "target": [1]},
    )
    vectors, mask = movement_training_target(shape, g, 1, vs, MovementTargetConfig(radius_um=3.0))
    image = np.zeros((2, *shape), np.float32)
    image[0][tuple(parent_vox)] = 1.0  # marker at the parent in frame t−1
    frame = MovementFrame(1, image, vectors, mask, (child / vs)[None])
    cfg = MovementConfig(augment=AugmentConfig(flip=True), train=MovementTrainConfig(
        crop_shape=shape))
    axes = [0, 1, 2] if shape[0] > 1 else [1, 2]
    seen = set()
    for seed in range(12):
        img, vec, m = movement_crop(np.random.default_rng(seed), frame, cfg, vs, axes)
        marker = np.argwhere(img[0] == 1.0)[0]
        seen.add(tuple(marker != parent_vox))
        idx = np.argwhere(m > 0)
        assert len(idx) == int(mask.sum())
        pointed = idx[:, axes] * vs[axes] + vec[:, idx[:, 0], idx[:, 1], idx[:, 2]].T
        np.testing.assert_allclose(pointed, np.broadcast_to(marker[axes] * vs[axes],
                                                            pointed.shape), atol=1e-5)
    flipped = {axis for s in seen for axis, f in enumerate(s) if f}
    assert flipped == set(axes)  # every axis was flipped in some crop


# --------------------------------------------------------------------------- training
def _movie(seed=0):
    return moving_blobs((0.0, 3.0, -2.0), n_frames=4, shape=(1, 32, 32),
                        voxel_size=(1.0, 1.0, 1.0), seed=seed)


def test_training_reduces_loss_and_beats_no_motion():
    images, graph = _movie()
    cfg = _cfg(epochs=25, crops_per_frame=4)
    res = train_movement(images, graph, (1, 1, 1), cfg)
    losses = [r.loss for r in res.history]
    assert res.n_links == graph.num_edges and len(losses) == 25
    assert losses[-1] < 0.5 * losses[0]
    pred = predict_parents_movement(res.model, images, graph, (1, 1, 1), cfg)
    err = parent_errors(pred, graph)
    assert err.flow.mean() < 0.5 * err.no_motion.mean(), err.summary()
    # frame-0 spots keep their own position
    rows = graph.t == 0
    np.testing.assert_allclose(pred.nodes["parent_y"][rows], graph.nodes["y"][rows])


class _Killed(Exception):
    pass


def test_resume_equals_uninterrupted(tmp_path, monkeypatch):
    images, graph = _movie()
    cfg = _cfg(epochs=3)  # 6 crops per epoch, 2 per step: 3 steps per epoch
    full = train_movement(images, graph, (1, 1, 1), cfg)
    ckpt = tmp_path / "m.pt"
    real, calls = nn_training.optimisation_step, {"n": 0}

    def step(*args):
        calls["n"] += 1
        if calls["n"] > 4:  # killed in the middle of epoch 2
            raise _Killed
        return real(*args)

    monkeypatch.setattr(nn_training, "optimisation_step", step)
    with pytest.raises(_Killed):
        train_movement(images, graph, (1, 1, 1), cfg, checkpoint=ckpt)
    monkeypatch.setattr(nn_training, "optimisation_step", real)
    resumed = train_movement(images, graph, (1, 1, 1), cfg, checkpoint=ckpt, resume=True)
    assert resumed.history["loss"] == full.history["loss"]
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    loaded = load_linajea_model(ckpt, heads=("movement",))
    for a, b in zip(loaded.state_dict().values(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(CheckpointError, match="another training config"):
        train_movement(images, graph, (1, 1, 1), _cfg(epochs=3, learning_rate=1e-2),
                       checkpoint=ckpt, resume=True)


def test_training_errors():
    images, graph = _movie()
    with pytest.raises(InvalidInputError, match="spans 4 frames"):
        train_movement(images[:3], graph.subgraph(nodes=graph.t < 3), (1, 1, 1),
                       _cfg().model_copy(update={"window": (2, 1)}))
    unlinked = graph.subgraph(edges=np.zeros(graph.num_edges, bool))
    with pytest.raises(InvalidInputError, match="no annotated link"):
        train_movement(images, unlinked, (1, 1, 1), _cfg())
    skip = TrackGraph({"id": [0, 1], "t": [0, 2], "z": [0.0, 0.0], "y": [5.0, 6.0],
                       "x": [5.0, 6.0]}, {"source": [0], "target": [1]})
    with pytest.raises(GraphError, match="consecutive frames"):
        train_movement(images, skip, (1, 1, 1), _cfg())
    three_d = build_movement_model(_cfg(), (1, 1, 1), two_d=False, seed=0)
    with pytest.raises(ShapeError, match="3D"):
        train_movement(images, graph, (1, 1, 1), _cfg(), model=three_d)
    with pytest.raises(InvalidInputError, match="movement"):
        train_movement(images, graph, (1, 1, 1), _cfg(), model=torch.nn.Conv3d(1, 1, 1))


# --------------------------------------------------------------------------- prediction
def test_parents_from_vectors_corrects_offsets_when_averaging():
    vs = np.array([2.0, 1.0, 0.5])
    shape = (5, 9, 9)
    parent = np.array([3.0, 2.0, 1.0])
    grid = np.stack(np.meshgrid(*[np.arange(n) * v for n, v in zip(shape, vs)], indexing="ij"))
    vec = (parent[:, None, None, None] - grid).astype(np.float32)  # a perfect field
    spot = np.array([[4.0, 4.0, 2.0]])  # voxel (2, 4, 4)
    for edge in (1, 3, 5):
        np.testing.assert_allclose(parents_from_vectors(spot, vec, vs, edge), parent[None],
                                   atol=1e-5)
    noisy = vec.copy()
    noisy[:, 2, 4, 4] += 2.7  # one bad voxel: averaging 27 voxels dilutes it 27×
    out = parents_from_vectors(spot, noisy, vs, 3)
    np.testing.assert_allclose(out, parent[None] + 0.1, atol=1e-5)
    # at the volume's corner the cube is cut, still exact
    np.testing.assert_allclose(parents_from_vectors(np.zeros((1, 3)), vec, vs, 3), parent[None],
                               atol=1e-5)
    with pytest.raises(InvalidInputError, match="odd"):
        parents_from_vectors(spot, vec, vs, 2)
    with pytest.raises(ShapeError, match="3, Z, Y, X"):
        parents_from_vectors(spot, vec[:2], vs, 1)


def test_predict_shapes_joint_channels_and_frame_zero():
    images, graph = _movie()
    cfg = _cfg()
    joint = build_movement_model(cfg, (1, 1, 1), two_d=True, seed=0, with_indicator=True)
    assert joint.heads == ("indicator", "movement") and joint.out_channels == 3
    with torch.no_grad():  # movement head: constant +2 µm in y (tanh⁻¹(0.2) × scale 10)
        joint.unet.head.bias[joint.channels("movement")] = torch.tensor(
            [float(np.arctanh(0.2)), 0.0]
        )
    vec = predict_movement(joint, images, 2, cfg)
    assert vec.shape == (3, 1, 32, 32)
    assert np.all(vec[0] == 0)
    np.testing.assert_allclose(vec[1], 2.0, atol=1e-5)
    np.testing.assert_allclose(vec[2], 0.0, atol=1e-6)
    pred = predict_parents_movement(joint, images, graph, (1, 1, 1), cfg)
    later = graph.t > 0
    expect = np.rint(graph.nodes["y"][later]) + 2.0
    np.testing.assert_allclose(pred.nodes["parent_y"][later], expect, atol=1e-5)
    assert np.all(pred.nodes["parent_y"][~later] == graph.nodes["y"][~later])
    with pytest.raises(ShapeError, match="2D"):
        predict_movement(joint, np.zeros((4, 3, 32, 32), np.float32), 1, cfg)
    with pytest.raises(InvalidInputError, match="outside the movie"):
        predict_movement(joint, images, 9, cfg)


# --------------------------------------------------------------------------- acceptance
@pytest.mark.slow
def test_movement_vectors_from_20_links_halve_parent_error_on_large_motion():
    """Issue #14: Linajea's movement vectors from 20 links halve the no-motion error.

    The 2D+t large-motion embryo of the flow acceptance test (tissue translating ≈ 8.6
    µm/frame, reversing, rotating 3°/frame: nuclei move more than half their spacing).
    """
    from celltrack.synth import SynthConfig, make_embryo, sample_annotations

    torch.set_num_threads(1)
    data = make_embryo(
        SynthConfig.large_motion(
            shape=(1, 96, 96), voxel_size=(1.0, 1.0, 1.0), n_nuclei=20, max_nuclei=40, n_frames=6
        )
    )
    gt, vs = data.gt, data.voxel_size
    links = sample_annotations(gt, n_nuclei=0, frames=[2, 5], n_links=20, rng=0)
    assert 0 < links.num_edges <= 20
    cfg = MovementConfig.cpu(
        target=MovementTargetConfig(radius_um=8.0),
        augment=AugmentConfig(flip=True),
        train=MovementTrainConfig(epochs=150, crops_per_frame=8, batch_size=4,
                                  crop_shape=(1, 48, 48), num_threads=1),
    )
    model = train_movement(data.image, links, vs, cfg).model
    predicted = predict_parents_movement(model, data.image, gt, vs, cfg)
    errors = parent_errors(predicted, gt)
    assert errors.t.size == gt.num_edges
    assert errors.flow.mean() <= 0.5 * errors.no_motion.mean(), errors.summary()


def test_rotations_and_zooms_move_3d_vectors_with_the_image():
    """Issue #14: in 3D with anisotropic voxels a rotated, zoomed and flipped crop's
    vectors still point (within a voxel) to where the parent marker of frame t−1 went."""
    shape, vs = (8, 32, 32), np.array([2.0, 1.0, 1.0])
    parent_vox = np.array([4, 14, 12])
    child = (parent_vox + np.array([0, 5, 7])) * vs
    g = TrackGraph(
        {"id": [0, 1], "t": [0, 1], "z": [parent_vox[0] * vs[0], child[0]],
         "y": [parent_vox[1] * vs[1], child[1]], "x": [parent_vox[2] * vs[2], child[2]]},
        {"source": [0], "target": [1]},
    )
    vectors, mask = movement_training_target(shape, g, 1, vs, MovementTargetConfig(radius_um=3.0))
    grid = np.stack(np.meshgrid(*[np.arange(s) * v for s, v in zip(shape, vs)], indexing="ij"))
    image = np.zeros((2, *shape), np.float32)
    image[0] = np.exp(-((grid - (parent_vox * vs)[:, None, None, None]) ** 2).sum(0) / 8.0)
    frame = MovementFrame(1, image, vectors, mask, (child / vs)[None])
    cfg = MovementConfig(
        augment=AugmentConfig(flip=True, rotation_deg=180.0, scale=0.1),
        train=MovementTrainConfig(crop_shape=shape),
    )
    for seed in range(8):
        img, vec, m = movement_crop(np.random.default_rng(seed), frame, cfg, vs, [0, 1, 2])
        idx = np.argwhere(m > 0)
        assert len(idx) > 0
        pointed = idx * vs + vec[:, idx[:, 0], idx[:, 1], idx[:, 2]].T
        marker = np.unravel_index(np.argmax(img[0]), img[0].shape) * vs
        assert np.abs(pointed - marker).max() <= 1.5 * vs.max(), seed


def test_cpu_preset_trains_enough_steps_from_one_annotated_frame():
    """Issue #14: ``sample_annotations`` puts all 20 links in one frame and crops are
    drawn per annotated frame, so the preset alone must give enough optimisation steps
    (200 steps left the 3D movement model at "no motion")."""
    train = MovementConfig.cpu().train
    steps = train.epochs * -(-train.crops_per_frame // train.batch_size)
    assert steps >= 800
    # crops_per_epoch bounds the steps whatever the number of annotated frames
    assert train.epochs * -(-train.crops_per_epoch // train.batch_size) == 800
    joint = MovementConfig.cpu(joint=True)
    assert joint.train.epochs * joint.train.crops_per_epoch // joint.train.batch_size == 1600
    # the joint's vectors are fitted over the whole mask for most of its steps
    assert joint.loss.blend_offset_steps >= 0.7 * 1600


def test_cpu_preset_predicts_through_tiles_as_deep_as_its_training_crops():
    """Issue #14: the U-Net learns its vectors on 4-slice crops; read through 16-slice
    tiles the same models had 0.47–0.79 of the no-motion error, through 4-slice ones
    0.21–0.33 (synthetic large-motion embryo, movie seeds 0 and 3)."""
    from celltrack.nn.tiling import tile_for

    cfg = MovementConfig.cpu()
    tile = tile_for((24, 96, 96), cfg.predict.tile_shape, cfg.predict.overlap,
                    cfg.predict.tile_mode, (4, 8, 8))
    assert tile[0] == cfg.train.crop_shape[0]
