import numpy as np
import pytest
import torch

from celltrack.config.detection import DetectionConfig, LossConfig, ModelConfig, PredictConfig
from celltrack.config.flow import FlowPredictConfig
from celltrack.config.nn import NormalizeConfig
from celltrack.detect.labels import BACKGROUND, CENTRE, PERIPHERY
from celltrack.detect.losses import DetectionLoss, prior_loss, voxel_weights
from celltrack.detect.model import DetectionUNet, build_model, load_model, save_model
from celltrack.detect.predict import predict_probabilities
from celltrack.errors import CheckpointError, ConfigError, ShapeError
from celltrack.nn import UNet, save_checkpoint
from celltrack.nn.normalize import normalize_frame

torch.set_num_threads(1)
SMALL = ModelConfig(widths=(4, 8, 16))


def test_presets_pooling_and_log_softmax_output():
    assert ModelConfig().resolved_widths() == (16, 32, 64, 128, 256)
    assert ModelConfig(preset="cpu").resolved_widths() == (8, 16, 32, 64)
    model = build_model(SMALL, (2.0, 0.5, 0.5))
    assert model.unet.pool_factors == [(1, 2, 2), (1, 2, 2)]
    out = model(torch.rand(2, 1, 5, 19, 23))
    assert out.shape == (2, 3, 5, 19, 23)
    np.testing.assert_allclose(out.exp().sum(1).detach().numpy(), 1.0, atol=1e-5)
    two_d = build_model(SMALL, (1.0, 0.5, 0.5), two_d=True)
    assert two_d(torch.rand(1, 1, 1, 17, 30)).shape == (1, 3, 1, 17, 30)


def test_model_is_seeded_and_fast_conv_matches_reference():
    a, b = build_model(SMALL, (1, 1, 1), seed=3), build_model(SMALL, (1, 1, 1), seed=3)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    conv = a.unet.encoders[0].body[0]
    x = torch.rand(1, 1, 4, 12, 12)
    ref = torch.nn.functional.conv3d(x, conv.weight, conv.bias, padding=conv.padding)
    torch.testing.assert_close(conv(x), ref, atol=1e-5, rtol=1e-5)


def test_shapes_the_model_cannot_take():
    model3d = build_model(SMALL, (1.0, 1.0, 1.0))
    with pytest.raises(ShapeError, match="two_d=True"):
        model3d(torch.rand(1, 1, 1, 16, 16))
    with pytest.raises(ShapeError, match="channel"):
        model3d(torch.rand(1, 2, 4, 16, 16))
    model2d = build_model(SMALL, (1.0, 1.0, 1.0), two_d=True)
    with pytest.raises(ShapeError, match="2D model"):
        predict_probabilities(model2d, np.zeros((4, 16, 16)))
    with pytest.raises(ShapeError):
        predict_probabilities(model3d, np.zeros((2, 4, 16, 16)))


def test_checkpoint_round_trip_and_wrong_architecture(tmp_path):
    model = build_model(SMALL, (2.0, 1.0, 1.0), seed=1)
    path = save_model(tmp_path / "det.pt", model, {"note": "x"})
    loaded, meta = load_model(path)
    assert loaded.arch == model.arch and meta["note"] == "x"
    x = torch.rand(1, 1, 4, 16, 16)
    torch.testing.assert_close(loaded(x), model.eval()(x))
    other = UNet(1, 2, widths=(4, 8))
    save_checkpoint(tmp_path / "flow.pt", other, {"name": "FlowUNet"})
    with pytest.raises(CheckpointError, match="FlowUNet"):
        load_model(tmp_path / "flow.pt")
    # a corrupt file never replaces the good one: saving is atomic
    before = path.read_bytes()
    with pytest.raises(CheckpointError):
        save_model(path, other)
    assert path.read_bytes() == before
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        load_model(tmp_path / "bad.pt")


def test_loss_ignores_unlabelled_and_weights_false_labels():
    cfg = LossConfig()
    labels = torch.tensor([[[[0, BACKGROUND, BACKGROUND + 1, PERIPHERY, CENTRE + 1]]]])
    classes, weights = voxel_weights(labels, cfg)
    assert classes.flatten().tolist() == [-1, 0, 0, 1, 2]
    assert weights.flatten().tolist() == [0.0, 1.0, 10.0, 10.0, 100.0]
    loss_fn = DetectionLoss(cfg, (1.0, 1.0, 1.0))
    logits = torch.zeros(1, 3, 1, 1, 5, requires_grad=True)
    loss, parts = loss_fn(torch.log_softmax(logits, 1), labels)
    loss.backward()
    assert torch.all(logits.grad[..., 0] == 0)  # unlabelled voxel: no gradient
    assert parts["nll"] == pytest.approx(np.log(3), rel=1e-5)
    # a perfect prediction has (almost) zero NLL and Dice
    perfect = torch.full((1, 3, 1, 1, 5), -30.0)
    for i, c in enumerate(classes.flatten().tolist()):
        perfect[0, max(c, 0), 0, 0, i] = 0.0
    loss, parts = loss_fn(torch.log_softmax(perfect, 1), labels)
    assert parts["nll"] < 1e-6 and parts["dice"] < 1e-6
    img = torch.rand(1, 1, 2, 4, 4)
    assert prior_loss(torch.log_softmax(torch.zeros(1, 3, 2, 4, 4), 1), img) > 0


def test_normalisation_and_tiled_prediction_without_seams():
    frame = np.random.default_rng(0).random((6, 40, 36)).astype(np.float32) * 100 + 7
    minmax = normalize_frame(frame, NormalizeConfig(mode="minmax"))
    assert minmax.min() == 0 and minmax.max() == pytest.approx(1)
    norm = normalize_frame(frame)  # percentile 1 - 99.8 by default: a hot pixel cannot set 1
    low, high = np.percentile(frame, (1.0, 99.8))
    np.testing.assert_allclose(norm, (frame - low) / (high - low), rtol=1e-5, atol=1e-6)
    assert norm.min() < 0 < 1 < norm.max()
    assert not normalize_frame(np.ones((2, 3, 3))).any()
    model = build_model(SMALL, (1.0, 1.0, 1.0))
    whole = predict_probabilities(model, frame, PredictConfig(tile_shape=(8, 64, 64)))
    with torch.no_grad():
        direct = model.eval()(torch.from_numpy(norm)[None, None])[0].exp().numpy()
    np.testing.assert_allclose(whole, direct, atol=1e-5)
    # per-frame normalisation: an intensity gain and offset change nothing
    np.testing.assert_allclose(
        predict_probabilities(model, frame * 3 + 50, PredictConfig(tile_shape=(8, 64, 64))),
        whole,
        atol=1e-4,
    )
    tiled = predict_probabilities(
        model, frame, PredictConfig(tile_shape=(6, 24, 24), overlap=(0, 12, 12), batch_size=2)
    )
    assert tiled.shape == (3, 6, 40, 36)
    np.testing.assert_allclose(tiled.sum(0), 1.0, atol=1e-5)


def test_config_round_trip_and_centre_ratio_consistency(tmp_path):
    from celltrack.config import config_from_dict, load_config, save_config

    cfg = DetectionConfig.cpu()
    for suffix in (".yaml", ".toml", ".json"):
        assert load_config(save_config(cfg, tmp_path / f"c{suffix}"), DetectionConfig) == cfg
    with pytest.raises(ConfigError, match="centre_ratio"):
        config_from_dict({"labels": {"centre_ratio": 0.3}}, DetectionConfig)
    with pytest.raises(ConfigError, match="unknown key"):
        config_from_dict({"model": {"depth": 3}}, DetectionConfig)
    assert isinstance(build_model(cfg.model, (1, 1, 1)), DetectionUNet)


@pytest.mark.parametrize("config", [PredictConfig, FlowPredictConfig])
def test_tiling_configs_reject_empty_tiles_and_negative_overlap(config):
    with pytest.raises(ConfigError, match="tile_shape must be ≥ 1"):
        config(tile_shape=(0, 64, 64))
    with pytest.raises(ConfigError, match="overlap must be ≥ 0"):
        config(overlap=(2, -1, 4))


def test_median_correction_equalises_slices():
    from celltrack.nn.normalize import median_correct

    frame = np.random.default_rng(1).random((4, 10, 10)).astype(np.float32)
    frame += np.array([0.0, 5.0, 10.0, 0.0], np.float32)[:, None, None]
    out = median_correct(frame)
    medians = np.median(out.reshape(4, -1), axis=1)
    np.testing.assert_allclose(medians, medians[0], atol=1e-5)
    norm = normalize_frame(frame, NormalizeConfig(mode="minmax"), median_correction=True)
    assert norm.min() == 0 and norm.max() == pytest.approx(1)
