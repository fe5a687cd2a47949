"""Classical detector: blur + threshold + distance-transform watershed, and its calibration."""

import numpy as np
import pytest
import torch

from celltrack.config.classical import ClassicalConfig
from celltrack.config.detection import DetectionConfig
from celltrack.detect import calibrate_classical, detect, detect_classical
from celltrack.detect.classical import equivalent_radii
from celltrack.errors import InvalidInputError, ShapeError
from celltrack.graph import TrackGraph
from celltrack.synth import SynthConfig, make_embryo, sample_annotations

VS2 = (1.0, 1.0, 1.0)


def _discs(shape, centres, radii, value=1000, background=100):
    """(Y, X) uint16 image of uniform discs (pixel 1 µm)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    img = np.full(shape, background, np.uint16)
    for (cy, cx), r in zip(centres, radii):
        img[(yy - cy) ** 2 + (xx - cx) ** 2 <= r**2] = value
    return img


def _balls(shape, centres, radius_um, vs, value=1000, background=100):
    """(Z, Y, X) uint16 volume of uniform balls; centres in µm."""
    grids = np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, vs)], indexing="ij")
    vol = np.full(shape, background, np.uint16)
    for c in centres:
        vol[sum((g - v) ** 2 for g, v in zip(grids, c)) <= radius_um**2] = value
    return vol


def _cfg(**classical):
    return DetectionConfig(kind="classical", classical=ClassicalConfig(**classical))


def _sorted_positions(g, t=None):
    pos = g.positions if t is None else g.positions[g.t == t]
    return pos[np.lexsort(np.round(pos, 1).T[::-1])]


def test_2d_movie_finds_each_disc_with_centroid_and_semi_axes():
    centres = [(12, 12), (12, 40), (34, 26)]
    frame0 = _discs((48, 56), centres, [5, 5, 5])
    frame1 = _discs((48, 56), [(c[0] + 2, c[1] + 1) for c in centres], [5, 5, 5])
    movie = np.stack([frame0, frame1])  # (T, Y, X): 2D+t
    spots = detect_classical(movie, voxel_size=(1.0, 0.5, 0.5), cfg=_cfg(sigma_um=0.0))
    assert np.bincount(spots.t).tolist() == [3, 3]
    got = _sorted_positions(spots, 0)
    want = np.array([[0, 6, 6], [0, 6, 20], [0, 17, 13]], float)
    np.testing.assert_allclose(got, want, atol=0.3)
    np.testing.assert_allclose(_sorted_positions(spots, 1), want + np.array([0, 1, 0.5]), atol=0.3)
    cov = np.asarray(spots.nodes["covariance"])
    # a disc of radius 5 px = 2.5 µm: in-plane semi-axes 2.5 µm, z gets their RMS
    np.testing.assert_allclose(cov[:, 1, 1], 2.5**2, rtol=0.12)
    np.testing.assert_allclose(cov[:, 2, 2], 2.5**2, rtol=0.12)
    np.testing.assert_allclose(cov[:, 0, 0], (cov[:, 1, 1] + cov[:, 2, 2]) / 2, rtol=0.05)
    assert set(spots.nodes["tag"]) == {"unlabeled"}
    score = np.asarray(spots.nodes["score"])
    assert np.all((score > 0.5) & (score <= 1.0))


def test_3d_anisotropic_balls_give_spherical_covariances():
    vs = (2.0, 0.5, 0.5)
    centres = [(12.0, 8.0, 8.0), (12.0, 8.0, 22.0), (12.0, 20.0, 14.0)]
    vol = _balls((12, 56, 60), centres, 4.0, vs)
    spots = detect_classical(vol[None], voxel_size=vs, cfg=_cfg(sigma_um=0.0))
    assert spots.num_nodes == 3
    np.testing.assert_allclose(_sorted_positions(spots), np.array(sorted(centres)), atol=0.3)
    diag = np.asarray(spots.nodes["covariance"])[:, [0, 1, 2], [0, 1, 2]]
    np.testing.assert_allclose(diag, 16.0, rtol=0.2)  # semi-axes 4 µm on every axis


def test_touching_nuclei_are_split_and_depth_controls_it():
    img = _discs((40, 64), [(20, 20), (20, 40)], [11, 11])  # overlapping: one blob, a neck
    movie = img[None, None]
    split = detect_classical(movie, voxel_size=VS2, cfg=_cfg(min_depth_um=1.0))
    assert split.num_nodes == 2
    x = np.sort(split.nodes["x"])
    np.testing.assert_allclose(x, [19.5, 40.5], atol=1.5)
    merged = detect_classical(movie, voxel_size=VS2, cfg=_cfg(min_depth_um=20.0))
    assert merged.num_nodes == 1
    far = detect_classical(movie, voxel_size=VS2, cfg=_cfg(min_distance_um=25.0))
    assert far.num_nodes == 1  # seeds closer than min_distance: the deeper one wins


def test_radius_limits_drop_small_and_large_regions():
    img = _discs((60, 60), [(10, 10), (35, 35)], [2, 12])
    movie = img[None, None]
    both = detect_classical(movie, voxel_size=VS2, cfg=_cfg(sigma_um=0.0))
    assert both.num_nodes == 2
    no_small = detect_classical(movie, voxel_size=VS2, cfg=_cfg(sigma_um=0.0, min_radius_um=4.0))
    np.testing.assert_allclose(no_small.positions, [[0, 35, 35]], atol=0.5)
    no_large = detect_classical(movie, voxel_size=VS2, cfg=_cfg(sigma_um=0.0, max_radius_um=6.0))
    np.testing.assert_allclose(no_large.positions, [[0, 10, 10]], atol=0.5)


def test_empty_and_constant_frames_give_no_spots():
    movie = np.stack([np.full((1, 20, 20), 7, np.uint16), np.zeros((1, 20, 20), np.uint16)])
    spots = detect_classical(movie, voxel_size=VS2)
    assert spots.num_nodes == 0
    assert np.asarray(spots.nodes["covariance"]).shape == (0, 3, 3)
    assert {"score", "tag"} <= set(spots.node_columns)


def test_calibration_rules_from_annotated_radii():
    cov = np.stack([np.eye(3) * r**2 for r in (3.0, 4.0, 5.0)])
    tags = np.array(["tp", "fn", "tp"])
    ann = TrackGraph.from_positions([0, 0, 1], np.zeros((3, 3)), covariance=cov, tag=tags)
    c = calibrate_classical(ClassicalConfig(), ann)
    assert c.sigma_um == pytest.approx(0.15 * 4.0)
    assert c.min_distance_um == pytest.approx(0.55 * 4.0)
    assert c.min_depth_um == pytest.approx(0.2 * 4.0)
    assert c.min_radius_um == pytest.approx(1.5)
    assert c.max_radius_um == pytest.approx(10.0)
    # set values are kept; rejected spots (fp) do not count as nuclei
    kept = calibrate_classical(ClassicalConfig(sigma_um=2.5), ann)
    assert kept.sigma_um == 2.5 and kept.min_radius_um == pytest.approx(1.5)
    rejected = TrackGraph.from_positions(
        [0, 0, 1], np.zeros((3, 3)), covariance=cov, tag=np.array(["fp", "tp", "tn"])
    )
    assert calibrate_classical(ClassicalConfig(), rejected).min_radius_um == pytest.approx(2.0)


def test_calibration_without_covariances_uses_defaults_and_2d_uses_the_plane():
    points = TrackGraph.from_positions([0, 0], np.zeros((2, 3)))
    for ann in (None, points):
        c = calibrate_classical(ClassicalConfig(), ann)
        assert (c.sigma_um, c.min_distance_um, c.min_depth_um, c.min_radius_um) == (
            1.0,
            3.0,
            0.5,
            1.0,
        )
        assert c.max_radius_um is None
    flat = np.diag([0.0, 4.0, 16.0])[None]  # a 2-D annotation: z not observed
    ann2 = TrackGraph.from_positions([0], np.zeros((1, 3)), covariance=flat)
    np.testing.assert_allclose(equivalent_radii(ann2, two_d=True), [np.sqrt(2.0 * 4.0)])
    assert equivalent_radii(ann2).size == 0  # not positive definite in 3D
    with pytest.raises(InvalidInputError):
        calibrate_classical(DetectionConfig(), ann2)


def test_annotations_calibrate_and_merge_like_detect():
    img = _discs((40, 60), [(12, 12), (26, 44)], [6, 6])
    movie = np.stack([img, img, img])[:, None]
    cov = np.eye(3) * 36.0
    ann = TrackGraph(
        {
            "id": [100, 101, 102],
            "t": [0, 0, 2],
            "z": [0.0, 0.0, 0.0],
            "y": [12.3, 35.0, 5.0],
            "x": [12.2, 5.0, 5.0],
            "covariance": np.stack([cov] * 3),
            "tag": ["fn", "tn", "tp"],
        }
    )
    spots = detect_classical(movie, frames=[0, 1], voxel_size=VS2, annotations=ann)
    by_id = dict(zip(spots.ids.tolist(), spots.nodes["tag"].tolist()))
    assert by_id[100] == "tp"  # the detector found the missed nucleus: fn -> tp
    assert by_id[101] == "tn"  # it does not fire on the rejected region: stays tn
    assert by_id[102] == "tp"  # a frame that was not processed: kept as it was
    new = spots.ids[np.asarray(spots.nodes["tag"]) == "unlabeled"]
    assert new.size == 3 and new.min() > 102  # frame 0: 1 (one suppressed), frame 1: 2
    assert np.bincount(spots.t).tolist() == [3, 2, 1]
    used = spots.attrs["detection_config"]["classical"]
    assert used["min_radius_um"] == pytest.approx(3.0)  # calibrated from r = 6 µm
    assert used["max_radius_um"] == pytest.approx(12.0)
    assert spots.attrs["calibration"]["annotated_nuclei"] == 2  # fn + tp; tn is no nucleus
    assert "min_radius_um" in spots.attrs["calibration"]["calibrated"]


class _BrightIsCentre(torch.nn.Module):
    """A stand-in detector: bright voxels are nucleus centres."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(()))

    def forward(self, x):
        c = (x - 0.5) * 20 * self.w
        return torch.cat([-c, torch.zeros_like(c), c], dim=1)


def test_output_schema_equals_detect():
    img = _discs((32, 32), [(10, 10), (22, 22)], [4, 4])
    movie = np.stack([img, img])[:, None]
    ann = TrackGraph.from_positions([0], [[0.0, 10.0, 10.0]], ids=[5], tag=np.array(["tp"]))
    learned = detect(_BrightIsCentre(), movie, voxel_size=VS2, annotations=ann)
    classical = detect_classical(movie, voxel_size=VS2, annotations=ann)
    assert learned.num_nodes > 0 and classical.num_nodes > 0
    assert classical.node_columns == learned.node_columns
    for name in learned.node_columns:
        a, b = np.asarray(learned.nodes[name]), np.asarray(classical.nodes[name])
        assert a.dtype == b.dtype and a.shape[1:] == b.shape[1:], name
    assert set(classical.attrs) == set(learned.attrs)
    assert classical.attrs["voxel_size"] == learned.attrs["voxel_size"]
    DetectionConfig.model_validate(classical.attrs["detection_config"])


def test_synthetic_embryo_is_detected_after_calibration():
    data = make_embryo(SynthConfig.tiny(seed=0))
    ann = sample_annotations(data.gt, n_nuclei=10, rng=0)
    cfg = DetectionConfig(kind="classical", classical=calibrate_classical(ClassicalConfig(), ann))
    spots = detect_classical(data.image, frames=[0, 3, 5], cfg=cfg, voxel_size=data.voxel_size)
    from celltrack.eval.matching import match_nodes

    gt = data.gt.subgraph(nodes=np.isin(data.gt.t, [0, 3, 5]))
    m = match_nodes(gt, spots, float(data.config.radius_um))
    assert m.num_matches >= 0.9 * gt.num_nodes
    assert m.num_matches >= 0.9 * spots.num_nodes


def test_bad_inputs_raise_clear_errors():
    movie = np.zeros((2, 1, 8, 8), np.uint16)
    with pytest.raises(InvalidInputError, match="voxel_size"):
        detect_classical(movie)
    with pytest.raises(InvalidInputError, match="outside"):
        detect_classical(movie, frames=[2], voxel_size=VS2)
    with pytest.raises(InvalidInputError, match="integers"):
        detect_classical(movie, frames=["a"], voxel_size=VS2)
    with pytest.raises(InvalidInputError, match="DetectionConfig"):
        detect_classical(movie, cfg=ClassicalConfig(), voxel_size=VS2)
    with pytest.raises(InvalidInputError, match="TrackGraph"):
        detect_classical(movie, voxel_size=VS2, annotations=[1, 2])
    with pytest.raises(ShapeError):
        detect_classical(np.zeros((8, 8)), voxel_size=VS2)
    with pytest.raises(InvalidInputError):
        detect_classical(movie, voxel_size=(1.0, 0.0, 1.0))
    bad = movie.astype(np.float32)
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(InvalidInputError, match="NaN"):
        detect_classical(bad, voxel_size=VS2)
