import numpy as np
import pytest

from celltrack.config.indicator import (
    IndicatorConfig,
    IndicatorLossConfig,
    IndicatorTargetConfig,
)
from celltrack.detect.indicator_targets import (
    gaussian_peaks,
    indicator_training_target,
    point_balls,
)
from celltrack.errors import ConfigError, InvalidInputError, ShapeError
from celltrack.graph import TrackGraph

VS = (2.0, 1.0, 1.0)


def _cfg(auto="off", **loss):
    return IndicatorConfig(
        target=IndicatorTargetConfig(sigma_um=(2.0, 3.0, 3.0), mask_radius_um=4.0,
                                     auto_background=auto),
        loss=IndicatorLossConfig(**loss),
    )


def _spots(positions, tags, t=0):
    pos = np.asarray(positions, float).reshape(-1, 3)
    return TrackGraph.from_positions(np.full(len(pos), t), pos, tag=np.asarray(tags))


def _blobs(shape=(8, 40, 40), centres=((8.0, 10.0, 10.0), (8.0, 30.0, 30.0))):
    zz, yy, xx = np.meshgrid(*[np.arange(s) * v for s, v in zip(shape, VS)], indexing="ij")
    img = np.full(shape, 100.0, np.float32)
    for c in centres:
        img += 1000 * np.exp(-((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2) / 8.0)
    return img


def test_gaussian_peak_is_one_at_the_centre_and_exp_minus_half_one_sigma_away():
    # anisotropic voxels: σ = 2 µm in z is one z voxel, σ = 3 µm in y/x is three voxels
    peaks = gaussian_peaks(np.array([[8.0, 10.0, 12.0]]), (8, 24, 24), VS, (2.0, 3.0, 3.0))
    assert peaks.dtype == np.float32 and peaks.max() == pytest.approx(1.0)
    assert peaks[4, 10, 12] == pytest.approx(1.0)
    half = np.exp(-0.5)
    assert peaks[5, 10, 12] == pytest.approx(half, rel=1e-5)  # +1 z voxel = +2 µm = 1σ
    assert peaks[3, 10, 12] == pytest.approx(half, rel=1e-5)
    assert peaks[4, 13, 12] == pytest.approx(half, rel=1e-5)  # +3 y voxels = 1σ
    assert peaks[4, 10, 9] == pytest.approx(half, rel=1e-5)
    assert peaks[4, 12, 12] == pytest.approx(np.exp(-0.5 * (2 / 3) ** 2), rel=1e-5)


def test_gaussian_peaks_take_the_maximum_of_overlapping_nuclei():
    pos = np.array([[4.0, 10.0, 10.0], [4.0, 10.0, 14.0]])
    peaks = gaussian_peaks(pos, (4, 20, 24), VS, (2.0, 2.0, 2.0))
    single = gaussian_peaks(pos[:1], (4, 20, 24), VS, (2.0, 2.0, 2.0))
    assert peaks[2, 10, 10] == pytest.approx(1.0) and peaks[2, 10, 14] == pytest.approx(1.0)
    # midway both contribute exp(-½) ... the maximum, not the sum
    assert peaks[2, 10, 12] == pytest.approx(single[2, 10, 12]) == pytest.approx(np.exp(-0.5))


def test_point_balls_are_balls_in_micrometres():
    balls = point_balls(np.array([[8.0, 10.0, 10.0]]), np.array([3.0]), (8, 20, 20), VS, 4.0)
    assert balls[4, 10, 14] == 3.0 and balls[4, 10, 15] == 0.0  # 4 µm in x
    assert balls[6, 10, 10] == 3.0 and balls[7, 10, 10] == 0.0  # 4 µm in z = 2 voxels
    assert balls[5, 12, 12] == 3.0  # 2² + 2² + 2² = 12 ≤ 16
    assert balls[5, 13, 12] == 0.0  # 4 + 9 + 4 = 17 > 16


def test_mask_covers_the_ball_of_annotated_nuclei_only():
    img = _blobs()
    ann = _spots([[8.0, 10.0, 10.0]], ["tp"])  # the nucleus at (8, 30, 30) is not annotated
    target, weight = indicator_training_target(img, ann, 0, VS, _cfg())
    assert target.shape == weight.shape == img.shape
    assert target.dtype == weight.dtype == np.float32
    assert target[4, 10, 10] == pytest.approx(1.0) and weight[4, 10, 10] == 1.0
    assert weight[4, 10, 14] == 1.0 and weight[4, 10, 15] == 0.0
    assert weight[4, 30, 30] == 0.0 and target[4, 30, 30] == 0.0  # unannotated nucleus
    assert np.count_nonzero(weight) == np.count_nonzero(
        point_balls(ann.positions, np.ones(1), img.shape, VS, 4.0)
    )


def test_rejected_predictions_are_trained_as_zero_with_the_false_weight():
    img = _blobs()
    ann = _spots([[8.0, 10.0, 10.0], [8.0, 30.0, 30.0], [8.0, 10.0, 30.0]], ["tp", "fp", "tn"])
    target, weight = indicator_training_target(img, ann, 0, VS, _cfg(false_weight=7.0))
    assert weight[4, 30, 30] == 7.0 and target[4, 30, 30] == 0.0  # fp: a correction
    assert weight[4, 10, 30] == 1.0 and target[4, 10, 30] == 0.0  # tn: plain background
    assert weight[4, 10, 10] == 1.0 and target[4, 10, 10] == pytest.approx(1.0)


def test_added_nuclei_carry_the_false_weight_and_nuclei_win_over_rejections():
    img = _blobs()
    ann = _spots([[8.0, 10.0, 10.0], [8.0, 10.0, 14.0]], ["fn", "fp"])
    target, weight = indicator_training_target(img, ann, 0, VS, _cfg(false_weight=5.0))
    assert weight[4, 10, 10] == 5.0 and target[4, 10, 10] == pytest.approx(1.0)
    # the voxel 2 µm from both marks belongs to the nucleus' ball, Gaussian kept
    assert target[4, 10, 12] == pytest.approx(np.exp(-0.5 * (2 / 3) ** 2), rel=1e-5)
    assert target[4, 10, 17] == 0.0 and weight[4, 10, 17] == 5.0  # fp ball only


def test_unlabeled_and_other_frames_are_ignored():
    img = _blobs()
    ann = TrackGraph.from_positions(
        np.array([0, 1]), np.array([[8.0, 10.0, 10.0], [8.0, 30.0, 30.0]]),
        tag=np.array(["unlabeled", "tp"]),
    )
    target, weight = indicator_training_target(img, ann, 0, VS, _cfg())
    assert not weight.any() and not target.any()
    target, weight = indicator_training_target(img, ann, 1, VS, _cfg())
    assert weight[4, 30, 30] == 1.0 and weight[4, 10, 10] == 0.0


def test_automatic_background_trains_dark_voxels_far_from_nuclei():
    img = _blobs()
    ann = _spots([[8.0, 10.0, 10.0]], ["tp"])
    target, weight = indicator_training_target(
        img, ann, 0, VS, _cfg(auto="intensity", background_weight=0.5)
    )
    ball = point_balls(ann.positions, np.ones(1), img.shape, VS, 4.0) > 0
    background = (weight > 0) & ~ball
    assert background.sum() > 0.5 * img.size
    assert weight[0, 0, 39] > 0 and target[0, 0, 39] == pytest.approx(0.0, abs=1e-6)
    assert weight[4, 30, 30] == 0.0  # the bright unannotated nucleus is never background
    # the background's summed weight is background_weight × the balls' summed weight
    assert weight[background].sum() == pytest.approx(0.5 * weight[ball].sum(), rel=1e-4)
    assert np.unique(weight[background]).size == 1


def test_two_d_frames_ignore_z():
    img = _blobs(shape=(1, 40, 40), centres=((0.0, 10.0, 10.0),))
    ann = _spots([[0.0, 10.0, 10.0]], ["tp"])
    target, weight = indicator_training_target(img[0], ann, 0, VS, _cfg())  # (Y, X) is Z = 1
    assert target.shape == (1, 40, 40)
    assert target[0, 10, 10] == pytest.approx(1.0)
    assert target[0, 13, 10] == pytest.approx(np.exp(-0.5), rel=1e-5)
    assert weight[0, 10, 14] == 1.0 and weight[0, 10, 15] == 0.0


def test_clear_errors_on_bad_input():
    img = _blobs()
    with pytest.raises(InvalidInputError, match="TrackGraph"):
        indicator_training_target(img, np.zeros((1, 3)), 0, VS, _cfg())
    with pytest.raises(InvalidInputError, match="outside the image"):
        indicator_training_target(img, _spots([[8.0, 100.0, 10.0]], ["tp"]), 0, VS, _cfg())
    with pytest.raises(ShapeError, match="one frame"):
        indicator_training_target(img[None], _spots([[8.0, 10.0, 10.0]], ["tp"]), 0, VS, _cfg())
    with pytest.raises(InvalidInputError, match="IndicatorConfig"):
        indicator_training_target(img, _spots([[8.0, 10.0, 10.0]], ["tp"]), 0, VS, None)
    with pytest.raises(InvalidInputError, match="unknown tags"):
        indicator_training_target(img, _spots([[8.0, 10.0, 10.0]], ["maybe"]), 0, VS, _cfg())


def test_config_validates_and_round_trips(tmp_path):
    from celltrack.config import load_config, save_config

    cfg = IndicatorConfig.cpu()
    for suffix in ("yaml", "toml", "json"):
        assert load_config(save_config(cfg, tmp_path / f"c.{suffix}"), IndicatorConfig) == cfg
    with pytest.raises(ConfigError, match="sigma_um"):
        IndicatorTargetConfig(sigma_um=(0.0, 1.0, 1.0))
    with pytest.raises(ConfigError, match="window"):
        IndicatorConfig(window=(-1, 0))
    with pytest.raises(ConfigError, match="threshold"):
        IndicatorConfig(nms={"threshold": 1.5})
