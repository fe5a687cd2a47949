import numpy as np
import pytest
import torch

from celltrack.errors import CheckpointError, ShapeError
from celltrack.nn import (
    UNet,
    evaluating,
    load_checkpoint,
    load_state,
    pool_factors_for,
    predict_tiled,
    save_checkpoint,
)

torch.set_num_threads(1)


def test_pool_factors_keep_z_until_isotropic():
    assert pool_factors_for((2.0, 0.5, 0.5), 4) == [(1, 2, 2), (1, 2, 2), (2, 2, 2), (2, 2, 2)]
    assert pool_factors_for((1.0, 1.0, 1.0), 2) == [(2, 2, 2), (2, 2, 2)]
    assert pool_factors_for((1.0, 0.3, 0.3), 3, two_d=True) == [(1, 2, 2)] * 3


@pytest.mark.parametrize("size", [(5, 17, 23), (1, 30, 14), (8, 16, 16)])
def test_unet_any_size_keeps_shape(size):
    two_d = size[0] == 1
    factors = pool_factors_for((2.0, 0.5, 0.5), 2, two_d=two_d)
    net = UNet(2, 3, widths=(4, 8, 16), pool_factors=factors, two_d=two_d)
    out = net(torch.rand(2, 2, *size))
    assert out.shape == (2, 3, *size)


def test_unet_residual_blocks_and_bad_input():
    net = UNet(1, 3, widths=(4, 8), encoder_block="residual", decoder_block="plain")
    assert net(torch.rand(1, 1, 6, 10, 10)).shape == (1, 3, 6, 10, 10)
    with pytest.raises(ShapeError):
        net(torch.rand(1, 6, 10, 10))
    with pytest.raises(ShapeError):
        UNet(1, 1, widths=(4, 8, 16), pool_factors=[(1, 2, 2)])


def test_tiled_prediction_matches_whole_volume_for_pointwise_model():
    # a per-voxel model must give the same result tiled as on the whole volume: no seams
    conv = torch.nn.Conv3d(1, 2, 1)
    vol = np.random.default_rng(0).random((1, 9, 40, 33)).astype(np.float32)
    whole = conv(torch.from_numpy(vol)[None]).detach().numpy()[0]
    tiled = predict_tiled(conv, vol, 2, tile_shape=(4, 16, 16), overlap=(2, 6, 6), batch_size=3)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


def test_evaluating_restores_training_mode_even_on_error():
    net = torch.nn.Sequential(torch.nn.Dropout(0.5))
    with evaluating(net, "cpu") as model:
        assert not model.training  # dropout off: deterministic prediction
        x = torch.ones(4, 8)
        assert torch.equal(model(x), x)
    assert net.training
    net.eval()
    with pytest.raises(RuntimeError), evaluating(net, "cpu"):
        raise RuntimeError("prediction failed")
    assert not net.training  # the mode it had before, not forced to train


def test_checkpoint_round_trip_and_errors(tmp_path):
    net = UNet(1, 3, widths=(4, 8))
    arch = {"name": "TestNet", "widths": [4, 8]}
    path = save_checkpoint(tmp_path / "m.pt", net, arch, meta={"loss": [1.0, 0.5]})
    payload = load_checkpoint(path, "TestNet")
    other = UNet(1, 3, widths=(4, 8))
    load_state(other, payload)
    for a, b in zip(net.state_dict().values(), other.state_dict().values()):
        assert torch.equal(a, b)
    assert payload["meta"]["loss"] == [1.0, 0.5]
    with pytest.raises(CheckpointError, match="expected 'Other'"):
        load_checkpoint(path, "Other")
    with pytest.raises(CheckpointError, match="does not fit"):
        load_state(UNet(1, 3, widths=(4, 16)), payload)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_fast_conv_matches_reference_conv():
    from celltrack.nn import FastConv3d

    torch.manual_seed(0)
    ref = torch.nn.Conv3d(8, 4, (1, 3, 3), padding=(0, 1, 1))
    fast = torch.nn.Conv3d(8, 4, (1, 3, 3), padding=(0, 1, 1))
    fast.load_state_dict(ref.state_dict())
    fast.__class__ = FastConv3d
    x = torch.rand(1, 8, 3, 17, 19)
    torch.testing.assert_close(fast(x), ref(x), rtol=1e-5, atol=1e-5)
    assert all(
        isinstance(m, FastConv3d)
        for m in UNet(1, 2, (4, 8)).modules()
        if isinstance(m, torch.nn.Conv3d)
    )
