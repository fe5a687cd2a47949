import numpy as np
import pytest

from celltrack.config.detection import LabelConfig, SpotConfig
from celltrack.detect.labels import CENTRE, render_labels
from celltrack.detect.spots import extract_spots, suppress_duplicates
from celltrack.errors import InvalidInputError, ShapeError
from celltrack.geometry import covariance_from_radii, radii_from_covariance
from celltrack.graph import TrackGraph

VS = np.array([1.0, 0.5, 0.5])
SHAPE = (20, 60, 60)


def _centre_prob(pos, radii, shape=SHAPE, vs=VS):
    g = TrackGraph.from_positions(
        np.zeros(len(pos)), np.asarray(pos, float),
        covariance=covariance_from_radii(np.asarray(radii, float)),
    )
    lab = render_labels(g, shape, vs, LabelConfig(centre_ratio=0.4))
    return (lab >= CENTRE).astype(np.float32) * 0.9


def test_round_trip_render_then_extract_recovers_ellipsoids():
    pos = np.array([[10.0, 8.0, 8.0], [9.0, 20.0, 18.0]])
    radii = np.array([[5.0, 4.0, 6.0], [4.0, 5.0, 5.0]])
    prob = _centre_prob(pos, radii)
    spots = extract_spots(prob, VS, SpotConfig(centre_ratio=0.4, r_max_um=20))
    assert spots.num_nodes == 2
    order = np.argsort(spots.positions[:, 1])
    np.testing.assert_allclose(spots.positions[order], pos, atol=0.3)
    got = radii_from_covariance(np.asarray(spots.nodes["covariance"])[order])
    np.testing.assert_allclose(got, np.sort(radii, axis=1), rtol=0.2)
    np.testing.assert_allclose(spots.nodes["score"], 0.9, atol=1e-6)
    assert set(spots.nodes["tag"]) == {"unlabeled"}


def test_radius_limits_and_26_connectivity():
    prob = np.zeros(SHAPE, np.float32)
    prob[5, 5, 5] = prob[6, 6, 6] = 1.0  # diagonal neighbours: one component
    spots = extract_spots(prob, VS, SpotConfig(r_min_um=0.0, suppression_distance_um=0))
    assert spots.num_nodes == 1
    assert extract_spots(prob, VS, SpotConfig(r_min_um=5.0)).num_nodes == 0
    big = _centre_prob([[10.0, 15.0, 15.0]], [[8.0, 8.0, 8.0]])
    capped = extract_spots(big, VS, SpotConfig(r_max_um=3.0))
    assert radii_from_covariance(capped.nodes["covariance"]).max() == pytest.approx(3.0)


def test_maxima_mode_and_two_d():
    prob = np.zeros((1, 40, 40), np.float32)
    prob[0, 10, 10] = 0.9
    prob[0, 10, 11] = 0.8
    prob[0, 30, 30] = 0.7
    spots = extract_spots(prob, (1.0, 0.5, 0.5), SpotConfig(mode="maxima", nms_radius_um=2.0))
    assert spots.num_nodes == 2
    np.testing.assert_allclose(np.sort(spots.nodes["score"]), [0.7, 0.9], atol=1e-6)
    comp = extract_spots(_centre_prob([[0.0, 8, 8]], [[3.0, 3, 3]], (1, 40, 40), (1.0, 0.5, 0.5)),
                         (1.0, 0.5, 0.5))
    assert comp.num_nodes == 1
    assert radii_from_covariance(comp.nodes["covariance"])[0] == pytest.approx(3.0, rel=0.25)


def test_suppression_prefers_humans_then_larger_nuclei_and_rechecks_tags():
    pos = np.array([[0, 0, 0], [0, 0, 1.0], [0, 0, 2.0], [0, 10, 0], [0, 10, 1], [0, 30, 0]])
    cov = covariance_from_radii(np.array([[2, 2, 2], [3, 3, 3], [2, 2, 2], [2, 2, 2], [3, 3, 3],
                                          [2, 2, 2.0]]))
    tags = np.array(["unlabeled", "unlabeled", "unlabeled", "fn", "unlabeled", "tn"])
    g = TrackGraph.from_positions(np.zeros(6), pos, covariance=cov, tag=tags,
                                  score=np.linspace(0, 1, 6))
    out = suppress_duplicates(g, 1.5, recheck_tags=True)
    # chain 0-1-2: larger 1 wins, suppresses 0 and 2; human fn (3) beats the larger 4
    assert out.ids.tolist() == [1, 3, 5]
    assert out.nodes["tag"].tolist() == ["unlabeled", "tp", "tn"]
    # greedy chain: 2 is only suppressed by 1; if 1 were smaller, 0 and 2 survive
    cov2 = covariance_from_radii(np.array([[3, 3, 3], [2, 2, 2], [3, 3, 3.0]]))
    g2 = TrackGraph.from_positions(np.zeros(3), pos[:3], covariance=cov2)
    assert suppress_duplicates(g2, 1.5).ids.tolist() == [0, 2]
    # different frames never suppress each other
    g3 = TrackGraph.from_positions([0, 1], pos[:2], covariance=cov[:2])
    assert suppress_duplicates(g3, 5.0).num_nodes == 2


def test_bad_input():
    with pytest.raises(ShapeError):
        extract_spots(np.zeros((2, 4, 4, 4)), VS)
    with pytest.raises(InvalidInputError):
        extract_spots(np.full((4, 4, 4), np.nan), VS)
    with pytest.raises(InvalidInputError):
        suppress_duplicates(TrackGraph.from_positions([0], [[0, 0, 0.0]]), -1.0)


def test_maxima_mode_equals_the_maximum_filter_rule_and_ignores_flat_maps():
    from scipy import ndimage

    rng = np.random.default_rng(4)
    pc = ndimage.gaussian_filter(rng.random((6, 40, 40)), 1.5)
    pc = ((pc - pc.min()) / np.ptp(pc)).astype(np.float32)
    vs = np.array([2.0, 0.5, 0.5])
    cfg = SpotConfig(mode="maxima", nms_radius_um=2.0, threshold=0.5, suppression_distance_um=0)
    spots = extract_spots(pc, vs, cfg)
    reach = np.floor(2.0 / vs).astype(int)
    grids = np.meshgrid(*[np.arange(-r, r + 1) * s for r, s in zip(reach, vs)], indexing="ij")
    footprint = sum(g**2 for g in grids) <= 4.0
    peak = ndimage.maximum_filter(pc, footprint=footprint, mode="constant", cval=0.0)
    expected = np.argwhere((pc >= peak) & (pc > 0.5)) * vs  # raster order
    assert spots.num_nodes == len(expected) > 3
    np.testing.assert_allclose(spots.positions, expected)
    assert extract_spots(np.full((2, 8, 8), 0.9, np.float32), vs, cfg).num_nodes == 0
