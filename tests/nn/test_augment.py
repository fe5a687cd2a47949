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
    out, lab_out, vec_out = apply(Transform(angle=np.pi / 2), img, lab, vec, voxel_size=VS)
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


def test_new_options_off_keep_old_draws_and_on_keep_the_old_fields():
    base = AugmentConfig(scale=0.2, rotation_deg=45, contrast=0.3, intensity=0.1)
    full = base.model_copy(update={"noise": 0.1, "blur_um": 1.0, "gradient": 0.4})
    a = random_transform(np.random.default_rng(7), base, voxel_size=VS)
    b = random_transform(np.random.default_rng(7), full, voxel_size=VS)
    old = ("zoom", "angle", "flips", "contrast", "gain", "offset")
    assert all(getattr(a, k) == getattr(b, k) for k in old)
    assert (a.noise, a.blur_um, a.gradient) == (0.0, 0.0, 0.0)
    assert 0 < b.noise <= 0.1 and 0 < b.blur_um <= 1.0 and 0 < b.gradient <= 0.4
    # the generator is left where it would be without the new options
    rng_a, rng_b = np.random.default_rng(7), np.random.default_rng(7)
    random_transform(rng_a, base, voxel_size=VS)
    random_transform(rng_b, base.model_copy(update={"noise": 0.0}), voxel_size=VS)
    assert rng_a.random() == rng_b.random()
    assert random_transform(np.random.default_rng(7), full, voxel_size=VS) == b


def test_noise_is_seeded_zero_mean_and_never_touches_labels_or_vectors():
    img, lab = _blob()
    vec = np.ones((3, 4, 32, 32), np.float32)
    t = Transform(noise=0.2, noise_seed=3)
    out, lab_out, vec_out = apply(t, img, lab, vec, voxel_size=VS)
    again, _, _ = apply(t, img, voxel_size=VS)
    np.testing.assert_array_equal(out, again)
    diff = out - img
    assert abs(float(diff.mean())) < 0.01 and float(diff.std()) == pytest.approx(0.2, rel=0.05)
    np.testing.assert_array_equal(lab_out, lab)
    np.testing.assert_array_equal(vec_out, vec)
    other, _, _ = apply(Transform(noise=0.2, noise_seed=4), img, voxel_size=VS)
    assert not np.array_equal(other, out)


def test_blur_is_anisotropy_aware_and_keeps_z_in_2d():
    vol = np.zeros((1, 9, 33, 33), np.float32)
    vol[0, 4, 16, 16] = 1.0
    out, _, _ = apply(Transform(blur_um=2.0), vol, voxel_size=(2.0, 0.5, 0.5))
    assert out.sum() == pytest.approx(1.0, rel=1e-4)
    # sigma 2 µm = 1 voxel in z, 4 voxels in y/x
    zs = out[0, :, 16, 16] / out[0, 4, 16, 16]
    ys = out[0, 4, :, 16] / out[0, 4, 16, 16]
    assert zs[5] == pytest.approx(np.exp(-0.5), rel=0.05)
    assert ys[20] == pytest.approx(np.exp(-0.5), rel=0.05)
    flat = np.zeros((1, 1, 33, 33), np.float32)
    flat[0, 0, 16, 16] = 1.0
    out2, _, _ = apply(Transform(blur_um=2.0), flat, voxel_size=(2.0, 0.5, 0.5))
    assert out2.sum() == pytest.approx(1.0, rel=1e-4) and out2.max() < 0.02


def test_gradient_is_a_linear_ramp_across_the_crop():
    img = np.ones((1, 2, 20, 30), np.float32)
    lab = np.ones((2, 20, 30), np.uint8)
    out, lab_out, _ = apply(Transform(gradient=0.4, gradient_angle=0.0), img, lab, voxel_size=VS)
    np.testing.assert_array_equal(lab_out, lab)
    row = out[0, 0, 5]
    assert row[0] == pytest.approx(0.8) and row[-1] == pytest.approx(1.2)
    np.testing.assert_allclose(np.diff(row), np.diff(row)[0], rtol=1e-4)  # linear in x
    np.testing.assert_allclose(out[0, :, :, 7], out[0, 0, 0, 7])  # constant along y and z
    diag, _, _ = apply(Transform(gradient=0.4, gradient_angle=np.pi / 4), img, voxel_size=VS)
    assert diag.min() == pytest.approx(0.8) and diag.max() == pytest.approx(1.2)
    assert diag[0, 0, -1, -1] == pytest.approx(1.2)  # +x and +y corner is the brightest
