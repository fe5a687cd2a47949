import logging

import numpy as np
import pytest

from celltrack.errors import ConfigError, GraphError, InvalidInputError, ShapeError
from celltrack.flow import FlowConfig, FlowLabelConfig, flow_links, render_flow_labels
from celltrack.geometry import ellipsoid_mask
from celltrack.graph import TrackGraph


def two_frame_graph(parent, child, approved=None, cov=None):
    nodes = {
        "id": [10, 20],
        "t": [3, 4],
        "z": [parent[0], child[0]],
        "y": [parent[1], child[1]],
        "x": [parent[2], child[2]],
    }
    if cov is not None:
        nodes["covariance"] = np.stack([cov, cov])
    edges = {"source": [10], "target": [20]}
    if approved is not None:
        edges["approved"] = [approved]
    return TrackGraph(nodes, edges)


def test_backward_displacement_painted_on_child_ellipsoid_only():
    vs = np.array([2.0, 1.0, 1.0])
    cov = np.diag([9.0, 4.0, 4.0])
    g = two_frame_graph((6.0, 10.0, 12.0), (8.0, 14.0, 9.0), cov=cov)
    cfg = FlowLabelConfig(max_displacement_um=(4.0, 8.0, 10.0), min_voxels=0)
    labels = render_flow_labels(g, (6, 8, 24, 24), vs, cfg)
    assert list(labels) == [4]
    lab = labels[4]
    assert lab.shape == (4, 8, 24, 24) and lab.dtype == np.float32
    sl, mask = ellipsoid_mask(np.array([8.0, 14.0, 9.0]), cov, vs, (8, 24, 24))
    inside = np.zeros((8, 24, 24), bool)
    inside[sl] = mask
    np.testing.assert_array_equal(lab[3] > 0, inside)
    expected = np.array([(6 - 8) / 4.0, (10 - 14) / 8.0, (12 - 9) / 10.0])  # parent − child
    for c in range(3):
        np.testing.assert_allclose(lab[c][inside], expected[c])
        assert np.all(lab[c][~inside] == 0)


def test_overlapping_children_keep_their_own_vectors():
    # a division: two daughters 4 µm apart, whose 3 µm spheres overlap
    nodes = {
        "id": [1, 2, 3],
        "t": [0, 1, 1],
        "z": [0.0, 0.0, 0.0],
        "y": [10.0, 8.0, 12.0],
        "x": [10.0, 10.0, 10.0],
    }
    g = TrackGraph(nodes, {"source": [1, 1], "target": [2, 3]})
    lab = render_flow_labels(g, (1, 21, 21), (1.0, 1.0, 1.0), FlowLabelConfig())[1]
    y = lab[1, 0, :, 10] * 20.0
    assert y[7] == pytest.approx(2.0) and y[8] == pytest.approx(2.0)  # daughter at 8 → +2
    assert y[12] == pytest.approx(-2.0) and y[13] == pytest.approx(-2.0)
    # the shared voxel row y=10 is equidistant; both sides of it belong to the nearer child
    assert y[9] == pytest.approx(2.0) and y[11] == pytest.approx(-2.0)


def test_only_approved_links_and_default_radius():
    g = two_frame_graph((0.0, 5.0, 5.0), (0.0, 5.0, 7.0), approved=False)
    assert len(flow_links(g)) == 0
    assert render_flow_labels(g, (1, 12, 12), (1, 1, 1)) == {}
    assert len(flow_links(g, FlowLabelConfig(approved_only=False))) == 1
    g = two_frame_graph((0.0, 5.0, 5.0), (0.0, 5.0, 7.0), approved=True)
    lab = render_flow_labels(g, (1, 12, 12), (1, 1, 1), FlowLabelConfig(default_radius_um=2.0))
    # a 2 µm disk in 2D: 13 voxels
    assert int(lab[4][3].sum()) == 13
    assert np.allclose(lab[4][2][lab[4][3] > 0], -2.0 / 20.0)


def test_large_displacements_are_clipped_with_a_warning(caplog):
    g = two_frame_graph((0.0, 0.0, 0.0), (0.0, 30.0, 5.0))
    with caplog.at_level(logging.WARNING):
        lab = render_flow_labels(g, (1, 40, 40), (1, 1, 1))[4]
    assert "max_displacement_um" in caplog.text
    assert lab[1].min() == -1.0


def test_bad_inputs_raise_celltrack_errors():
    g = TrackGraph(
        {"id": [1, 2], "t": [0, 2], "z": [0, 0], "y": [1, 1], "x": [1, 1]},
        {"source": [1], "target": [2]},
    )
    with pytest.raises(GraphError, match="consecutive"):
        render_flow_labels(g, (3, 1, 8, 8), (1, 1, 1))
    with pytest.raises(ConfigError, match="max_displacement_um"):
        FlowLabelConfig(max_displacement_um=(10.0, 0.0, 10.0))
    with pytest.raises(ConfigError, match="max_displacement_um"):
        FlowConfig(label={"max_displacement_um": (10.0, 10.0, -1.0)})
    ok = two_frame_graph((0.0, 5.0, 5.0), (0.0, 5.0, 7.0))
    with pytest.raises(InvalidInputError, match="frames"):
        render_flow_labels(ok, (4, 1, 12, 12), (1, 1, 1))  # child at t=4 outside 0..3
    with pytest.raises(ShapeError):
        render_flow_labels(ok, (12, 12), (1, 1, 1))
    with pytest.raises(InvalidInputError):
        render_flow_labels("not a graph", (1, 12, 12), (1, 1, 1))


@pytest.mark.parametrize("suffix", [".yaml", ".toml", ".json"])
def test_flow_config_round_trips(tmp_path, suffix):
    from celltrack.config import load_config, save_config

    cfg = FlowConfig.cpu(label={"max_displacement_um": (5.0, 12.0, 12.0)})
    path = save_config(cfg, tmp_path / f"flow{suffix}")
    assert load_config(path, FlowConfig) == cfg
    with pytest.raises(ConfigError, match="allowed keys"):
        FlowConfig(train={"epoch": 3})
