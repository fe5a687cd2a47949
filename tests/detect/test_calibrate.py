import logging

import numpy as np
import torch

from celltrack.config.detection import DetectionConfig, SpotConfig
from celltrack.detect import detect
from celltrack.detect.calibrate import (
    annotated_radii,
    calibrate_spot_sizes,
    calibrate_threshold,
    check_density,
    expected_count,
)
from celltrack.geometry import covariance_from_radii
from celltrack.graph import TrackGraph

VS = (1.0, 0.5, 0.5)


def _spots(centres, radii, tags=None, t=0):
    pos = np.asarray(centres, float).reshape(-1, 3)
    tags = np.full(len(pos), "tp") if tags is None else np.asarray(tags)
    cov = covariance_from_radii(np.asarray(radii, float).reshape(-1, 3))
    return TrackGraph.from_positions(np.full(len(pos), t), pos, covariance=cov, tag=tags)


def test_spot_sizes_come_from_the_annotated_radii():
    radii = np.array([[4.0, 4.0, 4.0]] * 5)
    cfg = calibrate_spot_sizes(SpotConfig(), _spots(np.zeros((5, 3)), radii))
    assert np.isclose(cfg.r_min_um, 1.2) and np.isclose(cfg.r_max_um, 6.0)
    assert np.isclose(cfg.suppression_distance_um, 3.0)  # 0.5 × 4 µm, but never below 3
    big = calibrate_spot_sizes(SpotConfig(), _spots(np.zeros((5, 3)), radii * 2))
    assert np.isclose(big.suppression_distance_um, 4.0)
    # 2D+t: the (unobserved) z semi-axis does not count; rejected marks do not count
    flat = np.array([[0.5, 4.0, 4.0]] * 4 + [[0.5, 1.0, 1.0]])
    tags = ["tp"] * 4 + ["fp"]
    assert annotated_radii(_spots(np.zeros((5, 3)), flat, tags), two_d=True).shape == (4, 2)
    cfg2 = calibrate_spot_sizes(SpotConfig(), _spots(np.zeros((5, 3)), flat, tags), two_d=True)
    assert np.isclose(cfg2.r_min_um, 1.2)
    # too few nuclei, or no covariance: the configured values stay
    few = _spots(np.zeros((2, 3)), radii[:2])
    assert calibrate_spot_sizes(SpotConfig(), few) == SpotConfig()
    points = TrackGraph.from_positions(np.zeros(5, int), np.zeros((5, 3)))
    assert calibrate_spot_sizes(SpotConfig(), points) == SpotConfig()
    five = _spots(np.zeros((5, 3)), radii)
    off = calibrate_spot_sizes(SpotConfig(suppression_distance_um=0), five)
    assert off.suppression_distance_um == 0.0


def _centre_map(shape, centres, peak, radius=2.0):
    grids = np.meshgrid(*[np.arange(n) * v for n, v in zip(shape, VS)], indexing="ij")
    pc = np.zeros(shape, np.float32)
    for c, p in zip(centres, peak):
        d2 = sum((g - x) ** 2 for g, x in zip(grids, c))
        pc = np.maximum(pc, p * np.exp(-d2 / (2 * radius**2)))
    return pc


def test_threshold_separates_annotated_nuclei_from_background_bumps():
    shape = (1, 80, 80)
    nuclei = [(0.0, 6.0 + 7.0 * i, 8.0) for i in range(5)]
    bumps = [(0.0, 6.0 + 7.0 * i, 30.0) for i in range(5)]
    # the model is unsure: nuclei reach 0.45, background bumps 0.25 (both below 0.5)
    pc = _centre_map(shape, nuclei + bumps, [0.45] * 5 + [0.25] * 5)
    background = np.zeros(shape, bool)
    background[:, :, 50:] = True  # automatic background on the right half (x ≥ 25 µm)
    ann = _spots(nuclei, [[3.0, 3.0, 3.0]] * 5)
    cal = calibrate_threshold({0: pc}, ann, VS, SpotConfig(), backgrounds={0: background})
    assert cal.calibrated and cal.n_nuclei == 5
    assert cal.threshold == 0.4  # all found, no false; the closest to 0.5 of the best
    assert cal.scores[0.2][3] == 5 and cal.scores[0.5][1] == 0
    # rejected marks count as false too
    rejected = _spots(bumps, [[3.0, 3.0, 3.0]] * 5, tags=["fp"] * 5)
    both = TrackGraph.from_positions(
        np.zeros(10, int), np.concatenate([ann.positions, rejected.positions]),
        covariance=np.concatenate([ann.nodes["covariance"], rejected.nodes["covariance"]]),
        tag=np.array(["tp"] * 5 + ["fp"] * 5),
    )
    assert calibrate_threshold({0: pc}, both, VS, SpotConfig()).threshold == 0.4
    # fewer than 5 annotated nuclei: the configured threshold stays
    few = calibrate_threshold({0: pc}, _spots(nuclei[:3], [[3.0] * 3] * 3), VS, SpotConfig())
    assert not few.calibrated and few.threshold == 0.5


def test_density_warning(caplog):
    fg = np.zeros((1, 10, 10), bool)
    fg[0, :5] = True  # 50 voxels of 0.25 µm² = 12.5 µm²
    assert np.isclose(expected_count(fg, VS, 2.5), 5.0)
    with caplog.at_level(logging.WARNING, logger="celltrack.detect.calibrate"):
        assert check_density(5.0, 4.0) is None
        assert "fires on background" in check_density(20.0, 4.0)
        assert check_density(1.0, 4.0) is None  # the expected count is an upper bound
        assert "misses nuclei" in check_density(0.4, 4.0)
    assert "spots.threshold" in caplog.text


class _Everywhere(torch.nn.Module):
    """A detector that calls centre on every bright voxel (blobs and texture alike)."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return torch.cat([-8 * x, 0 * x, 8 * x - 1 + self.w], dim=1)


def test_detect_calibrates_and_warns_when_predictions_are_far_off_the_annotations(caplog):
    rng = np.random.default_rng(0)
    shape = (1, 64, 64)
    grids = np.meshgrid(*[np.arange(n) * v for n, v in zip(shape, VS)], indexing="ij")
    img = np.full(shape, 0.1, np.float32)
    nuclei = [(0.0, 8.0, 8.0), (0.0, 8.0, 22.0), (0.0, 22.0, 8.0), (0.0, 22.0, 22.0),
              (0.0, 15.0, 15.0)]
    for c in nuclei:
        img[sum((g - x) ** 2 for g, x in zip(grids, c)) <= 4.0] = 1.0
    # scattered bright specks far from the nuclei: the model fires on each
    specks = rng.integers(0, 64, size=(60, 2))
    specks = specks[(specks[:, 0] > 56) | (specks[:, 1] > 56)]
    img[0, specks[:, 0], specks[:, 1]] = 1.0
    movie = np.stack([img, img])
    ann = _spots(nuclei, [[0.5, 2.0, 2.0]] * 5)
    cfg = DetectionConfig(
        spots=SpotConfig(mode="maxima", nms_radius_um=1.0, suppression_distance_um=1.0)
    )
    with caplog.at_level(logging.INFO, logger="celltrack.detect"):
        spots = detect(_Everywhere(), movie, cfg=cfg, voxel_size=VS, annotations=ann)
    cal = spots.attrs["calibration"]
    assert np.isclose(cal["r_min_um"], 0.6) and np.isclose(cal["r_max_um"], 3.0)
    assert cal["threshold_calibrated"] and 0.2 <= cal["threshold"] <= 0.8
    assert 3.0 <= cal["expected_per_frame"] <= 8.0
    assert "spot sizes calibrated" in caplog.text
    assert spots.attrs["detection_config"]["spots"]["r_max_um"] == cal["r_max_um"]
    assert cal["found_per_frame"] > 3 * cal["expected_per_frame"]
    assert "fires on background" in caplog.text
    # without calibration: the configured values, no calibration record
    fixed = cfg.model_copy(update={"spots": cfg.spots.model_copy(update={"calibrate": False})})
    plain = detect(_Everywhere(), movie, cfg=fixed, voxel_size=VS, annotations=ann)
    assert "calibration" not in plain.attrs
