import numpy as np
import pytest

from celltrack.config.nn import AugmentConfig
from celltrack.errors import InvalidInputError, ShapeError
from celltrack.nn.augment import Transform, apply, random_transform

VS = (2.0, 0.5, 0.5)


def _blob():
    img = np.zeros((1, 4, 32, 32), np.float32)
    img[0, :, 10:12, 20:22] = 1
    lab = (img[0] > 0).astype(np.uint8) * 5
    return img, lab


def test_rotation_moves_image_labels_and_vectors_together():
    img, lab = _blob()
    vec = np.zeros((3, 4, 32, 32), np.float32)
    vec[2][lab > 0] = 1.0  # unit x displacement (voxels) on the blob
    out, lab_out, vec_out = apply(
        Transform(angle=np.pi / 2), img, lab, vec, voxel_size=VS
    )
    # (y, x) offset (-5, +5) from the centre 15.5 rotates to (+5, +5)
    assert set(map(tuple, np.argwhere(lab_out[0] > 0))) == {(20, 20), (20, 21), (21, 20), (21, 21)}
    assert np.all(out[0, 0][lab_out[0] > 0] > 0.99)
    np.testing.assert_allclose(vec_out[:, 0, 20, 20], [0, 1, 0], atol=1e-6)


def test_flip_negates_vector_component_and_keeps_labels_aligned():
    img, lab = _blob()
    vec = np.zeros((3, 4, 32, 32), np.float32)
    vec[1][lab > 0] = 2.0
    flip_y = Transform(flips=(False, True, False))
    out, lab_out, vec_out = apply(flip_y, img, lab, vec, voxel_size=VS)
    assert lab_out[0, 31 - 10, 20] == 5 and lab_out[0, 10, 20] == 0
    assert vec_out[1, 0, 21, 20] == -2.0
    np.testing.assert_array_equal(out[0] > 0.5, lab_out > 0)


def test_zoom_scales_vectors_and_outside_labels_are_unlabelled():
    img, lab = _blob()
    vec = np.zeros((3, 4, 32, 32), np.float32)
    vec[2] = 1.0
    _, lab_out, vec_out = apply(
        Transform(zoom=(1.0, 0.5, 0.5)), img, lab.copy() + 1, vec, voxel_size=VS
    )
    # shrinking pulls in area from outside the input: labels there are 0 (ignored)
    assert lab_out[0, 0, 0] == 0 and lab_out[0, 16, 16] == 1
    assert vec_out[2, 0, 16, 16] == pytest.approx(0.5)


def test_random_transform_is_seeded_and_respects_two_d():
    cfg = AugmentConfig(scale=0.2, rotation_deg=45, contrast=0.3, flip=True)
    a = random_transform(np.random.default_rng(3), cfg, voxel_size=VS, two_d=True)
    b = random_transform(np.random.default_rng(3), cfg, voxel_size=VS, two_d=True)
    assert a == b
    assert a.zoom[0] == 1.0 and a.flips[0] is False
    assert 0.7 <= a.contrast <= 1.0
    with pytest.raises(InvalidInputError):
        random_transform(3, cfg)


def test_contrast_shrinks_foreground_difference_only():
    img, lab = _blob()
    img = img + 0.1
    out, _, _ = apply(Transform(contrast=0.5), img, voxel_size=VS, foreground=lab > 0)
    assert out[0, 0, 10, 20] == pytest.approx(0.6) and out[0, 0, 0, 0] == pytest.approx(0.1)


def test_out_shape_and_bad_shapes():
    img, lab = _blob()
    out, lab_out, _ = apply(Transform(angle=0.3), img, lab, voxel_size=VS, out_shape=(2, 16, 16))
    assert out.shape == (1, 2, 16, 16) and lab_out.shape == (2, 16, 16)
    with pytest.raises(ShapeError):
        apply(Transform(), img[0], voxel_size=VS)
    with pytest.raises(ShapeError):
        apply(Transform(), img, lab[:2], voxel_size=VS)
