"""Movement-vector targets and their config: hand-made links with known answers."""

import numpy as np
import pytest

from celltrack.config import load_config, save_config
from celltrack.config.movement import (
    MovementConfig,
    MovementPredictConfig,
    MovementTargetConfig,
)
from celltrack.errors import ConfigError, GraphError, InvalidInputError, ShapeError
from celltrack.flow.movement_targets import movement_links, movement_training_target
from celltrack.graph import TrackGraph


def _graph(parents, children, t_child=1, approved=None):
    """Links parents[i] (t_child − 1) → children[i] (t_child), positions (z, y, x) µm."""
    parents, children = np.atleast_2d(parents), np.atleast_2d(children)
    k = len(parents)
    pos = np.concatenate([parents, children])
    nodes = {
        "id": np.arange(2 * k),
        "t": np.r_[np.full(k, t_child - 1), np.full(k, t_child)],
        "z": pos[:, 0],
        "y": pos[:, 1],
        "x": pos[:, 2],
    }
    edges = {"source": np.arange(k), "target": np.arange(k, 2 * k)}
    if approved is not None:
        edges["approved"] = np.asarray(approved, bool)
    return TrackGraph(nodes, edges)


def test_vector_is_parent_minus_voxel_in_um_with_anisotropic_voxels():
    vs = (2.0, 0.5, 1.0)
    g = _graph([[6.0, 5.0, 7.0]], [[8.0, 6.0, 10.0]])
    cfg = MovementTargetConfig(radius_um=3.0)
    vec, mask = movement_training_target((8, 24, 20), g, 1, vs, cfg)
    assert vec.shape == (3, 8, 24, 20) and vec.dtype == np.float32
    assert mask.shape == (8, 24, 20) and mask.dtype == np.float32
    # the child centre voxel (4, 12, 10): vector = parent − child
    np.testing.assert_allclose(vec[:, 4, 12, 10], [-2.0, -1.0, -3.0])
    # a voxel off the centre: (z, y, x) = (3, 14, 11) → position (6, 7, 11) µm
    assert mask[3, 14, 11] == 1.0
    np.testing.assert_allclose(vec[:, 3, 14, 11], [6 - 6.0, 5 - 7.0, 7 - 11.0])
    # every masked voxel: vector + its position = the parent
    zz, yy, xx = np.nonzero(mask)
    pos = np.stack([zz * 2.0, yy * 0.5, xx * 1.0])
    np.testing.assert_allclose(vec[:, zz, yy, xx] + pos, np.array([[6.0], [5.0], [7.0]]) + 0 * pos)


def test_mask_is_the_ball_in_um():
    vs = (2.0, 0.5, 1.0)
    child = np.array([8.0, 6.0, 10.0])
    g = _graph([[6.0, 5.0, 7.0]], [child])
    r = 3.0
    _, mask = movement_training_target((8, 24, 20), g, 1, vs, MovementTargetConfig(radius_um=r))
    grid = np.stack(np.meshgrid(*[np.arange(n) * v for n, v in zip((8, 24, 20), vs)],
                                indexing="ij"))
    dist = np.sqrt(((grid - child[:, None, None, None]) ** 2).sum(axis=0))
    np.testing.assert_array_equal(mask > 0, dist <= r)
    assert mask.sum() > 10


def test_overlapping_balls_nearest_child_wins():
    # two sisters 4 µm apart along x with balls of 3 µm: the voxels between them overlap
    g = TrackGraph(
        {"id": [0, 1, 2], "t": [0, 1, 1], "z": [0.0, 0.0, 0.0], "y": [10.0, 10.0, 10.0],
         "x": [10.0, 8.0, 12.0]},
        {"source": [0, 0], "target": [1, 2]},
    )
    vec, mask = movement_training_target((1, 20, 20), g, 1, (1, 1, 1),
                                         MovementTargetConfig(radius_um=3.0))
    # x = 9: nearer the left child (at 8) → parent − voxel = 10 − 9 = +1
    assert mask[0, 10, 9] == 1 and vec[2, 0, 10, 9] == pytest.approx(1.0)
    # x = 11: nearer the right child → 10 − 11 = −1 (both vectors point to the same parent
    # here, but each voxel is painted once: check the mask count equals the union)
    assert vec[2, 0, 10, 11] == pytest.approx(-1.0)
    union = np.zeros((20, 20), bool)
    yy, xx = np.mgrid[:20, :20]
    for cx in (8, 12):
        union |= (yy - 10) ** 2 + (xx - cx) ** 2 <= 9
    np.testing.assert_array_equal(mask[0] > 0, union)


def test_nearest_child_wins_with_different_parents():
    g = TrackGraph(
        {"id": [0, 1, 2, 3], "t": [0, 0, 1, 1], "z": [0.0] * 4, "y": [4.0, 16.0, 10.0, 10.0],
         "x": [10.0, 10.0, 8.0, 12.0]},
        {"source": [0, 1], "target": [2, 3]},
    )
    vec, _ = movement_training_target((1, 20, 20), g, 1, (1, 1, 1),
                                      MovementTargetConfig(radius_um=3.0))
    # x = 9 belongs to child (10, 8) whose parent is at y = 4; x = 11 to the one with y = 16
    assert vec[1, 0, 10, 9] == pytest.approx(4.0 - 10.0)
    assert vec[1, 0, 10, 11] == pytest.approx(16.0 - 10.0)
    # the voxel exactly between them (x = 10) is equidistant: the first child keeps it
    assert vec[1, 0, 10, 10] == pytest.approx(-6.0)


def test_2d_gives_yx_and_zero_z():
    g = _graph([[0.0, 5.0, 5.0]], [[0.0, 8.0, 9.0]])
    vec, mask = movement_training_target((1, 16, 16), g, 1, (1.0, 1.0, 1.0),
                                         MovementTargetConfig(radius_um=2.0))
    assert vec.shape == (3, 1, 16, 16)
    assert np.all(vec[0] == 0)
    np.testing.assert_allclose(vec[1:, 0, 8, 9], [-3.0, -4.0])
    np.testing.assert_allclose(vec[1:, 0, 9, 8], [-4.0, -3.0])
    assert mask[0].sum() == 13  # the disc of radius 2 voxels


def test_other_frames_and_unapproved_links_are_left_out():
    g = _graph([[0.0, 5.0, 5.0], [0.0, 12.0, 12.0]], [[0.0, 6.0, 6.0], [0.0, 13.0, 13.0]],
               approved=[True, False])
    _, mask = movement_training_target((1, 20, 20), g, 1, (1, 1, 1))
    assert mask[0, 6, 6] == 1 and mask[0, 13, 13] == 0
    _, empty = movement_training_target((1, 20, 20), g, 2, (1, 1, 1))
    assert not empty.any()
    every = MovementTargetConfig(approved_only=False)
    _, both = movement_training_target((1, 20, 20), g, 1, (1, 1, 1), every)
    assert both[0, 13, 13] == 1
    assert len(movement_links(g, every)) == 2 and len(movement_links(g)) == 1


def test_children_near_the_border_are_clipped():
    g = _graph([[0.0, 1.0, 1.0]], [[0.0, 0.0, 0.0]])
    vec, mask = movement_training_target((1, 8, 8), g, 1, (1, 1, 1),
                                         MovementTargetConfig(radius_um=2.0))
    assert mask[0, 0, 0] == 1 and mask.sum() == 6
    np.testing.assert_allclose(vec[1:, 0, 0, 0], [1.0, 1.0])


def test_bad_input_errors():
    skip = TrackGraph({"id": [0, 1], "t": [0, 2], "z": [0.0, 0.0], "y": [1.0, 2.0],
                       "x": [1.0, 2.0]}, {"source": [0], "target": [1]})
    with pytest.raises(GraphError, match="consecutive frames"):
        movement_training_target((1, 8, 8), skip, 2, (1, 1, 1))
    g = _graph([[0.0, 1.0, 1.0]], [[0.0, 2.0, 2.0]])
    with pytest.raises(ShapeError, match="Z, Y, X"):
        movement_training_target((8, 8), g, 1, (1, 1, 1))
    with pytest.raises(InvalidInputError, match="t ≥ 1"):
        movement_training_target((1, 8, 8), g, 0, (1, 1, 1))
    with pytest.raises(InvalidInputError, match="MovementConfig"):
        movement_training_target((1, 8, 8), g, 1, (1, 1, 1), cfg="nope")  # type: ignore[arg-type]


def test_long_vectors_are_reported(caplog):
    g = _graph([[0.0, 1.0, 1.0]], [[0.0, 30.0, 1.0]])
    cfg = MovementTargetConfig(max_displacement_um=(10.0, 10.0, 10.0))
    with caplog.at_level("WARNING"):
        movement_training_target((1, 40, 8), g, 1, (1, 1, 1), cfg)
    assert "max_displacement_um" in caplog.text


def test_config_validation_and_round_trip(tmp_path):
    cfg = MovementConfig.cpu(joint=True, window=(3, 0))
    assert cfg.kind == "movement_vectors" and cfg.model.resolved_widths() == (8, 16, 32, 64)
    for suffix in (".yaml", ".toml", ".json"):
        assert load_config(save_config(cfg, tmp_path / f"m{suffix}"), MovementConfig) == cfg
    with pytest.raises(ConfigError, match="parent frame"):
        MovementConfig(window=(0, 1))
    with pytest.raises(ConfigError, match="too long"):
        MovementConfig(window=(2, 40))
    with pytest.raises(ConfigError, match="max_displacement_um"):
        MovementTargetConfig(max_displacement_um=(0.0, 5.0, 5.0))
    with pytest.raises(ConfigError, match="odd"):
        MovementPredictConfig(edge_length=2)
    with pytest.raises(ConfigError, match="unknown key"):
        MovementConfig(windows=(1, 1))
