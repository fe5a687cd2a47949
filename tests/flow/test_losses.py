import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from celltrack.errors import ConfigError, ShapeError
from celltrack.flow import FlowLoss, FlowLossConfig, masked_l1, smoothness, ssim3d, warp


@pytest.mark.parametrize("shape", [(5, 7, 9), (1, 11, 13)])
def test_warp_samples_at_position_plus_flow_per_axis(shape):
    # integer shifts must be reproduced exactly: catches axis-order and grid-unit bugs
    # (ELEPHANT scaled by size/2 instead of (size-1)/2 for align_corners=True)
    rng = np.random.default_rng(0)
    img = torch.from_numpy(rng.random((1, 1, *shape)).astype(np.float32))
    shift = (1, 2, -3) if shape[0] > 1 else (0, 2, -3)
    flow = torch.zeros(1, 3, *shape)
    for d in range(3):
        flow[:, d] = shift[d]
    out = warp(img, flow)
    z0, y0, x0 = (max(0, -s) for s in shift)
    z1, y1, x1 = (n - max(0, s) for n, s in zip(shape, shift))
    expected = img[0, 0, z0 + shift[0] : z1 + shift[0], y0 + shift[1] : y1 + shift[1],
                   x0 + shift[2] : x1 + shift[2]]
    torch.testing.assert_close(out[0, 0, z0:z1, y0:y1, x0:x1], expected, atol=1e-5, rtol=0)


def test_warp_half_voxel_is_linear_interpolation():
    img = torch.arange(8.0).view(1, 1, 1, 1, 8)
    flow = torch.zeros(1, 3, 1, 1, 8)
    flow[:, 2] = 0.5
    out = warp(img, flow)[0, 0, 0, 0]
    torch.testing.assert_close(out[:-1], torch.arange(7.0) + 0.5)
    with pytest.raises(ShapeError):
        warp(img, torch.zeros(1, 2, 1, 1, 8))


def test_ssim_matches_scikit_image_in_3d_and_2d():
    rng = np.random.default_rng(1)
    a = rng.random((13, 15, 17))
    b = np.clip(a + rng.normal(0, 0.2, a.shape), 0, 1)
    ref = structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0
    )
    ours = ssim3d(torch.from_numpy(a)[None, None], torch.from_numpy(b)[None, None],
                  window=(11, 11, 11), sigma=1.5)
    assert float(ours) == pytest.approx(ref, abs=1e-6)
    ref2 = structural_similarity(
        a[0], b[0], gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0
    )
    ours2 = ssim3d(torch.from_numpy(a[:1])[None, None], torch.from_numpy(b[:1])[None, None],
                   window=(3, 11, 11), sigma=1.5)
    assert float(ours2) == pytest.approx(ref2, abs=1e-6)
    assert float(ssim3d(torch.from_numpy(a)[None, None], torch.from_numpy(a)[None, None])) == (
        pytest.approx(1.0)
    )


def test_masked_l1_honours_dim_weights_and_mask():
    pred = torch.zeros(1, 3, 2, 2, 2)
    target = torch.zeros(1, 3, 2, 2, 2)
    target[:, 0] = 0.5  # error only in z
    target[:, 1, 0] = 9.0  # a y error outside the mask must not count
    mask = torch.zeros(1, 1, 2, 2, 2)
    mask[:, :, 1] = 1
    assert float(masked_l1(pred, target, mask, (1.0, 1.0, 1.0))) == pytest.approx(0.5 / 3)
    assert float(masked_l1(pred, target, mask, (0.8, 0.1, 0.1))) == pytest.approx(0.4)
    assert float(masked_l1(pred, target, mask, (0.0, 1.0, 1.0))) == 0.0
    assert float(masked_l1(pred, target, torch.zeros_like(mask), (1, 1, 1))) == 0.0


def _shifted_pair(shift_vox):
    rng = np.random.default_rng(2)
    base = torch.from_numpy(rng.random((1, 1, 6, 24, 24)).astype(np.float32))
    base = torch.nn.functional.avg_pool3d(base, 3, stride=1, padding=1)
    # frame t at p shows what frame t−1 had at p + shift: cur = prev shifted
    prev = base
    cur = torch.roll(base, shifts=[-s for s in shift_vox], dims=(2, 3, 4))
    return prev, cur


def test_loss_terms_weights_and_units():
    vs = (2.0, 1.0, 1.0)
    max_um = (8.0, 10.0, 5.0)
    shift_vox = (0, 2, -1)
    prev, cur = _shifted_pair(shift_vox)
    true_norm = torch.zeros(1, 3, 6, 24, 24)
    for d in range(3):
        true_norm[:, d] = shift_vox[d] * vs[d] / max_um[d]
    labels = torch.cat([true_norm, torch.ones(1, 1, 6, 24, 24)], dim=1)
    zero = torch.zeros_like(true_norm)

    ssim_only = FlowLoss(FlowLossConfig(instance_weight=0, ssim_weight=1, smooth_weight=0),
                         max_um, vs)
    right, parts_right = ssim_only(true_norm, labels, prev, cur)
    wrong, _ = ssim_only(zero, labels, prev, cur)
    # the true flow, scaled by the model's own max displacement, explains the motion
    assert float(right) < 0.05 < float(wrong)
    assert parts_right["instance"] == 0.0 and parts_right["smooth"] == 0.0

    cfg = FlowLossConfig(instance_weight=2.0, ssim_weight=0.5, smooth_weight=3.0,
                         dim_weights=(0.2, 0.3, 0.5))
    noisy = zero + 0.1 * torch.randn(zero.shape, generator=torch.Generator().manual_seed(0))
    total, parts = FlowLoss(cfg, max_um, vs)(noisy, labels, prev, cur)
    expected = 2.0 * parts["instance"] + 0.5 * parts["ssim"] + 3.0 * parts["smooth"]
    assert float(total) == pytest.approx(expected, rel=1e-5)
    assert parts["instance"] == pytest.approx(
        float(masked_l1(noisy, true_norm, labels[:, 3:], (0.2, 0.3, 0.5))), rel=1e-6
    )
    assert parts["smooth"] == pytest.approx(float(smoothness(noisy)), rel=1e-6)
    for key in ("instance_weight", "ssim_weight", "smooth_weight"):
        off = cfg.model_copy(update={key: 0.0})
        less, _ = FlowLoss(off, max_um, vs)(noisy, labels, prev, cur)
        assert float(less) < float(total)


def test_two_d_loss_uses_y_x_weights_only():
    vs = (1.0, 1.0, 1.0)
    pred = torch.zeros(1, 2, 1, 8, 8)
    labels = torch.zeros(1, 4, 1, 8, 8)
    labels[:, 0] = 0.7  # a z label is ignored by a 2D model
    labels[:, 1] = 0.4
    labels[:, 3] = 1
    img = torch.rand(1, 1, 1, 8, 8)
    cfg = FlowLossConfig(dim_weights=(5.0, 1.0, 3.0), ssim_weight=0, smooth_weight=0)
    total, _ = FlowLoss(cfg, (10, 10, 10), vs, two_d=True)(pred, labels, img, img)
    assert float(total) == pytest.approx(0.4 * 1 / 4)


def test_loss_config_validation():
    with pytest.raises(ConfigError):
        FlowLossConfig(ssim_window=(3, 6, 7))
    with pytest.raises(ConfigError):
        FlowLossConfig(dim_weights=(0, 0, 0))
    with pytest.raises(ConfigError):
        FlowLossConfig(ssim_weight=-1)
