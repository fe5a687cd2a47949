import numpy as np
import pytest
import torch

from celltrack.detect.nms import indicator_maxima, indicator_maxima_mask, window_voxels
from celltrack.errors import InvalidInputError, ShapeError

VS = (2.0, 1.0, 1.0)


def test_window_in_voxels_is_odd_and_anisotropy_aware():
    assert window_voxels(VS, (6.0, 6.0, 6.0)) == (3, 7, 7)
    assert window_voxels(VS, (4.0, 5.0, 2.0)) == (3, 5, 3)
    assert window_voxels((1.0, 0.5, 0.5), (1.0, 1.0, 1.0)) == (1, 3, 3)
    assert window_voxels(VS, (6.0, 6.0, 6.0), two_d=True) == (1, 7, 7)
    with pytest.raises(InvalidInputError, match="positive"):
        window_voxels(VS, (0.0, 6.0, 6.0))
    with pytest.raises(InvalidInputError, match="3 numbers"):
        window_voxels(VS, "big")


def test_maxima_closer_than_the_window_merge_and_farther_ones_do_not():
    ind = np.zeros((5, 30, 30), np.float32)
    ind[2, 10, 10] = 0.9
    ind[2, 10, 13] = 0.6  # 3 µm away: inside a 7-voxel window
    ind[2, 20, 25] = 0.5  # far away
    pos, score = indicator_maxima(ind, VS, (6.0, 6.0, 6.0), 0.3)
    assert pos.dtype == np.int64 and pos.shape == (2, 3)
    assert pos.tolist() == [[2, 10, 10], [2, 20, 25]]
    assert score.tolist() == pytest.approx([0.9, 0.5])
    # a smaller window keeps the close one
    pos, _ = indicator_maxima(ind, VS, (2.0, 2.0, 2.0), 0.3)
    assert pos.tolist() == [[2, 10, 10], [2, 10, 13], [2, 20, 25]]


def test_window_is_anisotropic_in_z():
    ind = np.zeros((7, 20, 20), np.float32)
    ind[1, 10, 10] = 0.9
    ind[3, 10, 10] = 0.8  # 4 µm below: outside a 3-voxel (6 µm) z window
    pos, _ = indicator_maxima(ind, VS, (6.0, 6.0, 6.0), 0.3)
    assert pos.tolist() == [[1, 10, 10], [3, 10, 10]]
    pos, _ = indicator_maxima(ind, VS, (10.0, 6.0, 6.0), 0.3)  # 5 z voxels: merged
    assert pos.tolist() == [[1, 10, 10]]


def test_threshold_is_strict():
    ind = np.zeros((3, 20, 20), np.float32)
    ind[1, 5, 5], ind[1, 15, 15] = 0.5, 0.3
    pos, score = indicator_maxima(ind, VS, (2.0, 4.0, 4.0), 0.3)
    assert pos.tolist() == [[1, 5, 5]] and score.tolist() == [0.5]
    pos, score = indicator_maxima(ind, VS, (2.0, 4.0, 4.0), 0.6)
    assert pos.shape == (0, 3) and score.shape == (0,)


def test_a_plateau_gives_one_maximum_at_its_middle():
    ind = np.zeros((3, 20, 20), np.float32)
    ind[1, 8:11, 5:12] = 1.0  # 3 × 7 flat top (e.g. a saturated sigmoid)
    ind[1, 2, 2] = 1.0  # an equal, separate maximum
    pos, score = indicator_maxima(ind, VS, (2.0, 3.0, 3.0), 0.5)
    assert sorted(pos.tolist()) == [[1, 2, 2], [1, 9, 8]]
    assert score.tolist() == [1.0, 1.0]


def test_two_d_maps_and_scores_are_ordered():
    ind = np.zeros((20, 20), np.float32)
    ind[3, 3], ind[10, 15], ind[16, 4] = 0.4, 0.95, 0.7
    pos, score = indicator_maxima(ind, VS, (6.0, 3.0, 3.0), 0.2)
    assert pos.tolist() == [[0, 10, 15], [0, 16, 4], [0, 3, 3]]
    assert np.all(np.diff(score) <= 0)


def test_numpy_maxima_errors():
    with pytest.raises(ShapeError, match="one indicator volume"):
        indicator_maxima(np.zeros((2, 3, 4, 5)), VS, (2, 2, 2), 0.3)
    with pytest.raises(InvalidInputError, match="NaN"):
        indicator_maxima(np.full((2, 4, 4), np.nan), VS, (2, 2, 2), 0.3)
    with pytest.raises(InvalidInputError, match="threshold"):
        indicator_maxima(np.zeros((2, 4, 4)), VS, (2, 2, 2), "high")


def test_torch_mask_is_the_max_pool_test():
    ind = np.zeros((5, 30, 30), np.float32)
    ind[2, 10, 10], ind[2, 10, 13], ind[2, 20, 25] = 0.9, 0.6, 0.5
    ind += np.linspace(0, 1e-3, ind.size, dtype=np.float32).reshape(ind.shape)  # no ties
    x = torch.from_numpy(ind)[None, None]
    mask = indicator_maxima_mask(x, (3, 7, 7))
    assert mask.dtype == torch.bool and mask.shape == x.shape
    strong = mask[0, 0].numpy() & (ind > 0.3)
    pos, _ = indicator_maxima(ind, VS, (6.0, 6.0, 6.0), 0.3)
    assert sorted(np.argwhere(strong).tolist()) == sorted(pos.tolist())
    flat = torch.zeros(1, 1, 3, 8, 8)
    flat[0, 0, 1, 2:4, 2:4] = 1.0  # Linajea's test: every plateau voxel is a maximum
    assert int(indicator_maxima_mask(flat, (1, 3, 3))[0, 0, 1].sum()) > 4


def test_torch_mask_errors():
    with pytest.raises(ShapeError, match=r"\(B, 1, Z, Y, X\)"):
        indicator_maxima_mask(torch.zeros(1, 2, 3, 4, 4), (1, 3, 3))
    with pytest.raises(InvalidInputError, match="odd"):
        indicator_maxima_mask(torch.zeros(1, 1, 3, 4, 4), (1, 2, 3))


def test_nms_calibration_follows_the_annotated_radii():
    from celltrack.config.indicator import IndicatorNMSConfig
    from celltrack.detect.indicator_calibrate import calibrate_nms
    from celltrack.geometry import covariance_from_radii
    from celltrack.graph import TrackGraph

    radii = np.array([[3.0, 4.0, 5.0], [4.0, 4.0, 4.0], [4.0, 4.0, 4.0], [2.0, 2.0, 2.0]])
    ann = TrackGraph.from_positions(
        np.zeros(4, int), np.zeros((4, 3)), covariance=covariance_from_radii(radii),
        tag=np.array(["tp", "fn", "tp", "fp"]),  # the rejected mark does not count
    )
    nms = calibrate_nms(IndicatorNMSConfig(), ann, VS)
    r = 4.0  # median of the geometric-mean radii 3.91, 4, 4
    assert nms.point_radius_um == pytest.approx(r, abs=0.01)
    assert nms.window_um == pytest.approx((1.75 * r,) * 3, abs=0.02)
    assert window_voxels(VS, nms.window_um) == (3, 7, 7)
    assert nms.suppression_distance_um == pytest.approx(0.75 * r, abs=0.01)
    tiny = calibrate_nms(IndicatorNMSConfig(), ann, (4.0, 1.0, 1.0))
    assert window_voxels((4.0, 1.0, 1.0), tiny.window_um)[0] == 3  # never below 3 voxels
    assert calibrate_nms(IndicatorNMSConfig(), ann.subgraph(nodes=[0, 3]), VS) == (
        IndicatorNMSConfig()
    )


def test_threshold_calibration_picks_the_threshold_that_reproduces_the_annotations():
    from celltrack.config.indicator import IndicatorConfig, IndicatorNMSConfig
    from celltrack.detect.indicator_calibrate import calibrate_indicator_threshold
    from celltrack.graph import TrackGraph

    vs = (1.0, 1.0, 1.0)
    centres = [(2, 5 + 10 * i, 5 + 10 * j) for i in range(2) for j in range(3)]  # 6 nuclei
    ind = np.zeros((5, 30, 40), np.float32)
    for k, c in enumerate(centres):
        ind[c] = 0.35 if k < 2 else 0.9  # two weak but real nuclei
    ind[2, 25, 35] = 0.25  # a weak maximum on a rejected mark
    ann = TrackGraph.from_positions(
        np.zeros(7, int), np.array([*centres, (2, 25, 35)], float),
        tag=np.array(["tp"] * 6 + ["fp"]),
    )
    cfg = IndicatorConfig(nms=IndicatorNMSConfig(threshold=0.6, window_um=(3.0, 3.0, 3.0)))
    thr, report = calibrate_indicator_threshold({0: ind}, ann, vs, cfg)
    assert report["calibrated"] and 0.25 <= thr < 0.35  # finds the weak ones, not the fp
    assert report["f1"][thr] == pytest.approx(1.0)
    background = np.zeros(ind.shape, bool)
    background[2, 25, 35] = True  # judged as background only through the mask now
    fp_free = ann.subgraph(nodes=np.arange(6))
    thr, _ = calibrate_indicator_threshold({0: ind}, fp_free, vs, cfg,
                                           backgrounds={0: background})
    assert 0.25 <= thr < 0.35
    # a threshold that is already right is kept; too few nuclei leave it alone
    ok = cfg.model_copy(update={"nms": cfg.nms.model_copy(update={"threshold": 0.3})})
    assert calibrate_indicator_threshold({0: ind}, ann, vs, ok)[0] == 0.3
    few = ann.subgraph(nodes=[0, 1, 6])
    thr, report = calibrate_indicator_threshold({0: ind}, few, vs, cfg)
    assert thr == 0.6 and not report["calibrated"]
