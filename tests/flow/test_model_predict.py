import numpy as np
import pytest
import torch

from celltrack.errors import CheckpointError, InvalidInputError, ShapeError
from celltrack.flow import (
    FlowConfig,
    FlowPredictConfig,
    FlowUNet,
    build_flow_model,
    displace,
    load_flow_model,
    predict_flow,
    predict_parents,
    save_flow_model,
)
from celltrack.graph import TrackGraph
from celltrack.nn import save_checkpoint


def constant_model(values, two_d=False, max_um=(4.0, 8.0, 10.0)):
    """A FlowUNet whose tanh output is the constant ``values`` everywhere."""
    cfg = FlowConfig.cpu(label={"max_displacement_um": max_um})
    model = build_flow_model(cfg, (2.0, 1.0, 1.0), two_d=two_d)
    with torch.no_grad():
        model.unet.head.weight.zero_()
        model.unet.head.bias.copy_(torch.atanh(torch.tensor(values, dtype=torch.float32)))
    return model


@pytest.mark.parametrize("two_d,size", [(False, (5, 19, 22)), (True, (1, 17, 30))])
def test_flow_unet_shapes_range_and_pooling(two_d, size):
    model = build_flow_model(FlowConfig.cpu(), (2.0, 0.5, 0.5), two_d=two_d)
    assert model.out_channels == (2 if two_d else 3)
    expected = [[1, 2, 2]] * 3 if two_d else [[1, 2, 2], [1, 2, 2], [2, 2, 2]]
    assert model.pool_factors == expected
    with torch.no_grad():
        out = model(torch.randn(2, 2, *size) * 10)
    assert out.shape == (2, model.out_channels, *size)
    assert float(out.abs().max()) <= 1.0


def test_checkpoint_round_trip_and_wrong_architecture(tmp_path):
    model = build_flow_model(FlowConfig.cpu(label={"max_displacement_um": (3, 6, 6)}), (1, 1, 1))
    path = save_flow_model(tmp_path / "flow.pt", model, meta={"note": "x"})
    loaded = load_flow_model(path)
    assert isinstance(loaded, FlowUNet)
    assert loaded.max_displacement_um == (3.0, 6.0, 6.0) and loaded.arch() == model.arch()
    x = torch.rand(1, 2, 4, 16, 16)
    torch.testing.assert_close(loaded(x), model.eval()(x))
    other = tmp_path / "det.pt"
    save_checkpoint(other, torch.nn.Conv3d(1, 1, 1), {"name": "DetectionUNet"})
    with pytest.raises(CheckpointError, match="FlowUNet"):
        load_flow_model(other)
    with pytest.raises(CheckpointError):
        load_flow_model(tmp_path / "missing.pt")


def test_predict_flow_returns_micrometres_tiled():
    model = constant_model([0.5, -0.25, 0.1])
    rng = np.random.default_rng(0)
    prev, cur = rng.random((2, 6, 40, 36))
    cfg = FlowPredictConfig(tile_shape=(4, 16, 16), overlap=(2, 4, 4), batch_size=2)
    flow = predict_flow(model, prev, cur, cfg)
    assert flow.shape == (3, 6, 40, 36) and flow.dtype == np.float32
    np.testing.assert_allclose(flow[0], 0.5 * 4.0, atol=1e-5)
    np.testing.assert_allclose(flow[1], -0.25 * 8.0, atol=1e-5)
    np.testing.assert_allclose(flow[2], 0.1 * 10.0, atol=1e-5)


def test_predict_flow_2d_and_bad_inputs():
    model = constant_model([0.5, -0.5], two_d=True)
    flow = predict_flow(model, np.ones((20, 24)), np.zeros((20, 24)))  # (Y, X) promoted
    assert flow.shape == (3, 1, 20, 24)
    assert np.all(flow[0] == 0)
    np.testing.assert_allclose(flow[1], 4.0, atol=1e-5)
    np.testing.assert_allclose(flow[2], -5.0, atol=1e-5)
    with pytest.raises(ShapeError, match="same shape"):
        predict_flow(model, np.ones((20, 24)), np.ones((20, 25)))
    with pytest.raises(ShapeError, match="2D"):
        predict_flow(model, np.ones((3, 20, 24)), np.ones((3, 20, 24)))
    with pytest.raises(InvalidInputError):
        predict_flow(torch.nn.Identity(), np.ones((20, 24)), np.ones((20, 24)))


def test_displace_mean_flow_over_ellipsoid():
    vs = np.array([2.0, 1.0, 1.0])
    shape = (8, 30, 30)
    grid = np.meshgrid(*[np.arange(s) * v for s, v in zip(shape, vs)], indexing="ij")
    flow = np.stack([np.zeros(shape), 0.5 * grid[1] - 3.0, np.full(shape, 2.0)]).astype(np.float32)
    spots = TrackGraph.from_positions(
        [4, 4], [[8.0, 10.0, 10.0], [6.0, 20.0, 15.0]],
        covariance=np.stack([np.diag([9.0, 4.0, 4.0])] * 2),
    )
    out = displace(spots, flow, vs)
    # flow linear in y: its mean over a symmetric ellipsoid is its value at the centre
    np.testing.assert_allclose(out.nodes["parent_y"], [10 + 2.0, 20 + 7.0], atol=1e-5)
    np.testing.assert_allclose(out.nodes["parent_x"], [12.0, 17.0], atol=1e-5)
    np.testing.assert_allclose(out.nodes["parent_z"], [8.0, 6.0])
    assert "parent_y" not in spots.nodes  # input untouched


def test_displace_frames_mapping_and_errors():
    spots = TrackGraph.from_positions([0, 1, 2], [[0.0, 5.0, 5.0]] * 3)
    field = np.zeros((3, 1, 12, 12), np.float32)
    field[2] = 1.5
    out = displace(spots, {1: field, 2: -field}, (1, 1, 1))
    np.testing.assert_allclose(out.nodes["parent_x"], [5.0, 6.5, 3.5])
    out = displace(out, field, (1, 1, 1), frame=2)  # earlier columns kept elsewhere
    np.testing.assert_allclose(out.nodes["parent_x"], [5.0, 6.5, 6.5])
    with pytest.raises(InvalidInputError, match="frame"):
        displace(spots, field, (1, 1, 1))
    with pytest.raises(ShapeError):
        displace(spots, field[:2], (1, 1, 1), frame=1)


def test_predict_parents_over_a_movie():
    model = constant_model([0.25, 0.5], two_d=True)
    movie = np.random.default_rng(0).random((3, 1, 24, 24))
    spots = TrackGraph.from_positions([0, 1, 2], [[0.0, 10.0, 10.0]] * 3)
    out = predict_parents(model, movie, spots, (1, 1, 1), FlowConfig.cpu())
    np.testing.assert_allclose(out.nodes["parent_y"], [10.0, 12.0, 12.0], atol=1e-5)
    np.testing.assert_allclose(out.nodes["parent_x"], [10.0, 15.0, 15.0], atol=1e-5)


def test_default_model_matches_elephant_flow_network_size():
    # ELEPHANT's FlowResNet (16..256, residual encoder, 2 in / 3 out) has 5,928,051
    # parameters (reference digest, section 4)
    model = build_flow_model(FlowConfig(), (1.0, 1.0, 1.0))
    assert sum(p.numel() for p in model.parameters()) == 5_928_051


def test_parent_errors_against_ground_truth():
    from celltrack.flow import parent_errors

    gt = TrackGraph(
        {"id": [1, 2, 3], "t": [0, 1, 1], "z": [0.0] * 3, "y": [0.0, 6.0, -6.0],
         "x": [0.0, 0.0, 8.0]},
        {"source": [1, 1], "target": [2, 3]},
    )
    pred = gt.copy()
    pred.set_node_column("parent_z", np.zeros(3))
    pred.set_node_column("parent_y", np.array([0.0, 1.0, 0.0]))
    pred.set_node_column("parent_x", np.array([0.0, 0.0, 0.0]))
    err = parent_errors(pred, gt)
    np.testing.assert_allclose(err.flow, [1.0, 0.0])
    np.testing.assert_allclose(err.no_motion, [6.0, 10.0])
    assert err.ratio == pytest.approx(0.5 / 8.0)
    assert err.summary()["n_links"] == 2
    with pytest.raises(InvalidInputError, match="parent"):
        parent_errors(gt, gt)


def test_predict_flow_normalises_as_configured_and_sets_threads(monkeypatch):
    import celltrack.flow.predict as fp
    from celltrack.config.nn import NormalizeConfig

    seen, threads = [], []
    real_normalize, real_threads = fp.normalize_frame, fp.torch_threads

    def spy(frame, cfg=None, **kw):
        seen.append(cfg)
        return real_normalize(frame, cfg, **kw)

    def spy_threads(requested=None, **kw):
        threads.append(requested)
        return real_threads(requested, **kw)

    monkeypatch.setattr(fp, "normalize_frame", spy)
    monkeypatch.setattr(fp, "torch_threads", spy_threads)
    model = constant_model([0.5, -0.5], two_d=True)
    minmax = NormalizeConfig(mode="minmax")
    cfg = FlowConfig.cpu(normalize=minmax, predict=FlowPredictConfig(num_threads=1))
    predict_flow(model, np.ones((20, 24)), np.zeros((20, 24)), cfg)
    assert seen == [minmax, minmax] and threads == [1]
    predict_flow(model, np.ones((20, 24)), np.zeros((20, 24)), FlowPredictConfig())
    assert seen[-1] is None and threads[-1] is None  # default: percentile, free cores
    predict_flow(model, np.ones((20, 24)), np.zeros((20, 24)), normalization=minmax)
    assert seen[-1] == minmax
