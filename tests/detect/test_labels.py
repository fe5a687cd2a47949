import numpy as np
import pytest

from celltrack.config.detection import LabelConfig
from celltrack.detect.labels import (
    AUTO_BACKGROUND,
    BACKGROUND,
    CENTRE,
    PERIPHERY,
    label_classes,
    label_is_false,
    label_summary,
    render_labels,
    training_codes,
)
from celltrack.errors import InvalidInputError
from celltrack.geometry import covariance_from_radii
from celltrack.graph import TrackGraph

VS = np.array([2.0, 0.5, 0.5])
SHAPE = (8, 40, 40)


def _spots(pos, radii, tags, t=0):
    pos = np.asarray(pos, float)
    cov = covariance_from_radii(np.asarray(radii, float).reshape(-1, 3))
    tags = np.asarray(tags)
    return TrackGraph.from_positions(np.full(len(pos), t), pos, covariance=cov, tag=tags)


def test_nucleus_has_centre_core_periphery_shell_and_exact_anisotropic_extent():
    lab = render_labels(_spots([[8, 10, 10]], [[4, 4, 4]], ["tp"]), SHAPE, VS)
    cls = label_classes(lab)
    zz, yy, xx = np.meshgrid(*[np.arange(s) * v for s, v in zip(SHAPE, VS)], indexing="ij")
    d = np.sqrt((zz - 8) ** 2 + (yy - 10) ** 2 + (xx - 10) ** 2)
    # everything inside the 4 µm sphere is labelled nucleus, nothing outside the dilated shell
    assert np.all(cls[d <= 4] >= 1)
    assert np.all(cls[d > 4 + 2.1] == -1)
    # centre = inner ellipsoid of radius 0.4 * 4 µm exactly
    np.testing.assert_array_equal(cls == 2, d <= 1.6)
    assert not label_is_false(lab).any()


def test_tags_false_weight_and_priority_independent_of_order():
    a = _spots([[8, 10, 10], [8, 12, 10]], [[4, 4, 4], [3, 3, 3]], ["fn", "tn"])
    b = _spots([[8, 12, 10], [8, 10, 10]], [[3, 3, 3], [4, 4, 4]], ["tn", "fn"])
    la, lb = render_labels(a, SHAPE, VS), render_labels(b, SHAPE, VS)
    np.testing.assert_array_equal(la, lb)
    # the background ellipsoid never overwrites the nucleus; fn is a false (heavy) label
    assert la[4, 20, 20] == CENTRE + 1
    assert set(np.unique(la)) == {0, BACKGROUND, PERIPHERY + 1, CENTRE + 1}
    per = render_labels(_spots([[8, 10, 10]], [[4, 4, 4]], ["fb"]), SHAPE, VS)
    assert set(np.unique(per)) == {0, PERIPHERY + 1}
    none = render_labels(_spots([[8, 10, 10]], [[4, 4, 4]], ["unlabeled"]), SHAPE, VS)
    assert not none.any()


def test_tiny_nucleus_gets_min_voxels_and_a_periphery_shell():
    lab = render_labels(_spots([[8, 10, 10]], [[0.3, 0.2, 0.2]], ["tp"]), SHAPE, VS)
    assert (lab > 0).sum() >= 9
    assert (lab == CENTRE).sum() >= 1 and (lab == PERIPHERY).sum() >= 8


def test_points_become_spheres_and_background_threshold():
    g = TrackGraph.from_positions([0], [[8.0, 10.0, 10.0]])
    lab = render_labels(g, SHAPE, VS, LabelConfig(point_radius_um=2.0))
    zz, yy, xx = np.meshgrid(*[np.arange(s) * v for s, v in zip(SHAPE, VS)], indexing="ij")
    sphere = (zz - 8) ** 2 + (yy - 10) ** 2 + (xx - 10) ** 2 <= 4.0
    assert np.all(label_classes(lab)[sphere] >= 1)
    # outside the sphere only the one-voxel shell around the centre core is labelled
    assert (label_classes(lab)[~sphere] >= 1).sum() < sphere.sum()
    img = np.zeros(SHAPE, np.float32)
    img[:, :20] = 1.0
    cfg = LabelConfig(background_threshold=0.5, auto_background="off")
    lab = render_labels(g, SHAPE, VS, cfg, image=img)
    assert np.all(lab[:, 30:] == AUTO_BACKGROUND)  # automatic: counted apart, trains as 1
    assert np.all(label_classes(lab)[:, 30:] == 0) and not label_is_false(lab).any()
    assert np.all(training_codes(lab)[:, 30:] == BACKGROUND)
    assert np.all(label_classes(lab)[sphere] >= 1)  # the annotation beats the threshold
    with pytest.raises(InvalidInputError):
        render_labels(g, SHAPE, VS, LabelConfig(background_threshold=0.5))


def test_two_d_frame():
    g = _spots([[0, 10, 10]], [[3, 3, 3]], ["tp"])
    lab = render_labels(g, (1, 40, 40), (1.0, 0.5, 0.5))
    assert (lab == CENTRE).sum() > 0 and lab.shape == (1, 40, 40)


def test_bad_annotations_raise():
    with pytest.raises(InvalidInputError, match="outside the image"):
        render_labels(_spots([[8, 10, 100]], [[2, 2, 2]], ["tp"]), SHAPE, VS)
    cov = np.diag([1.0, -1.0, 1.0])[None]
    bad = TrackGraph.from_positions([0], [[8.0, 10, 10]], covariance=cov)
    with pytest.raises(InvalidInputError, match="positive definite"):
        render_labels(bad, SHAPE, VS)
    two = _spots([[8, 10, 10], [8, 5, 5]], [[2, 2, 2]] * 2, ["tp", "tp"])
    two = TrackGraph({**dict(two.nodes), "t": np.array([0, 1])})
    with pytest.raises(InvalidInputError, match="frame"):
        render_labels(two, SHAPE, VS)
    assert render_labels(two, SHAPE, VS, frame=1).any()
    with pytest.raises(InvalidInputError):
        render_labels({"x": 1}, SHAPE, VS)
    empty = render_labels(TrackGraph.from_positions([], np.zeros((0, 3))), SHAPE, VS)
    assert not empty.any()


def _blobs(shape, vs, centres, radius, peak=1.0, floor=0.1):
    grids = np.meshgrid(*[np.arange(n) * v for n, v in zip(shape, vs)], indexing="ij")
    img = np.full(shape, floor, np.float32)
    for c in centres:
        d2 = sum((g - x) ** 2 for g, x in zip(grids, c))
        img[d2 <= radius**2] = peak
    return img


def test_intensity_rule_makes_far_dark_voxels_background_and_spares_unannotated_nuclei():
    vs = (1.0, 0.5, 0.5)
    shape = (1, 80, 80)
    img = _blobs(shape, vs, [(0, 8, 8), (0, 30, 30)], 3.0)
    g = _spots([[0, 8, 8]], [[3, 3, 3]], ["tp"])  # the nucleus at (30, 30) µm is not annotated
    lab = render_labels(g, shape, vs, image=img)
    cls = label_classes(lab)
    grids = np.meshgrid(*[np.arange(n) * v for n, v in zip(shape, vs)], indexing="ij")
    d_other = np.sqrt((grids[1] - 30) ** 2 + (grids[2] - 30) ** 2)
    assert np.all(cls[d_other <= 3.0 + LabelConfig().auto_background_margin_um] == -1)
    far = (d_other > 6.5) & (np.sqrt((grids[1] - 8) ** 2 + (grids[2] - 8) ** 2) > 6.5)
    assert np.all(lab[far] == AUTO_BACKGROUND)
    assert (lab == CENTRE).any()
    off = render_labels(g, shape, vs, LabelConfig(auto_background="off"), image=img)
    assert not (label_classes(off) == 0).any()
    assert np.array_equal(render_labels(g, shape, vs), off)  # no image: no automatic background


def test_manual_background_keeps_its_false_flag_over_the_automatic_one():
    vs = (1.0, 0.5, 0.5)
    shape = (1, 60, 60)
    img = _blobs(shape, vs, [(0, 8, 8)], 3.0)
    g = _spots([[0, 8, 8], [0, 22, 22]], [[3, 3, 3], [3, 3, 3]], ["tp", "fp"])
    lab = render_labels(g, shape, vs, image=img)
    fp = lab[0, 44, 44]
    assert fp == BACKGROUND + 1 and label_is_false(lab)[0, 44, 44]
    summary = label_summary(lab)
    assert summary["background_manual"] == int((lab == BACKGROUND + 1).sum()) > 0
    assert summary["background_automatic"] == int((lab == AUTO_BACKGROUND).sum()) > 0
    assert summary["background"] == summary["background_manual"] + summary["background_automatic"]
    assert summary["centre"] == int((lab == CENTRE).sum()) > 0
    assert summary["false"] == summary["background_manual"]
    assert sum(summary[k] for k in ("centre", "periphery", "background", "unlabelled")) == lab.size
