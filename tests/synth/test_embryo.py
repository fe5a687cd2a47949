"""make_embryo: determinism, shapes, ground-truth validity, motion, divisions, rendering."""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial import cKDTree

from celltrack.synth import SynthConfig, SynthDataset, make_embryo

CLEAN = {
    "add_noise": False,
    "background": 0.0,
    "offset": 0.0,
    "z_attenuation": 0.0,
    "intensity_drift": 0.0,
}


@pytest.fixture(scope="module")
def default() -> SynthDataset:
    return make_embryo(SynthConfig())


def test_tiny_is_fast_and_shaped():
    cfg = SynthConfig.tiny()
    start = time.perf_counter()
    data = make_embryo(cfg)
    elapsed = time.perf_counter() - start
    assert elapsed < 1.5  # typically ~0.03 s; generous for a loaded CI machine
    assert data.image.shape == (cfg.n_frames, *cfg.shape)
    assert data.image.dtype == np.uint16
    np.testing.assert_array_equal(data.voxel_size, cfg.voxel_size)
    gt = data.gt
    assert gt.nodes["covariance"].shape == (gt.num_nodes, 3, 3)
    assert gt.nodes["radius"].shape == (gt.num_nodes,)
    assert data.config == cfg
    assert gt.attrs["voxel_size"] == list(cfg.voxel_size)
    assert gt.attrs["synth_config"]["seed"] == cfg.seed


def test_same_seed_same_data_and_different_seed_differs():
    a = make_embryo(SynthConfig.tiny(seed=4))
    b = make_embryo(SynthConfig.tiny(seed=4))
    c = make_embryo(SynthConfig.tiny(seed=5))
    np.testing.assert_array_equal(a.image, b.image)
    assert a.gt.equals(b.gt)
    assert not np.array_equal(a.image, c.image)
    assert a.gt.num_nodes != c.gt.num_nodes or not np.allclose(a.gt.positions, c.gt.positions)


def test_mapping_config_is_accepted():
    data = make_embryo({"n_frames": 2, "shape": [8, 32, 32], "n_nuclei": 3, "seed": 1})
    assert data.image.shape == (2, 8, 32, 32)
    assert data.gt.nodes_at(0).size == 3


def test_default_ground_truth_is_a_lineage_forest(default):
    cfg, gt = default.config, default.gt
    gt.validate(forest=True)
    src, tgt = gt.edge_index()
    np.testing.assert_array_equal(gt.t[tgt] - gt.t[src], 1)  # links only between consecutive frames
    indeg = gt.in_degree()
    assert np.all(indeg[gt.t == 0] == 0)
    assert np.all(indeg[gt.t > 0] == 1)  # nobody appears from nowhere
    # node ids are unique and sorted by frame
    assert np.all(np.diff(gt.t) >= 0)
    # all centres inside the field of view (µm)
    extent = (np.asarray(cfg.shape) - 1) * np.asarray(cfg.voxel_size)
    assert np.all(gt.positions >= -1e-6) and np.all(gt.positions <= extent + 1e-6)
    # covariances are symmetric positive definite and match the radius column
    cov = gt.nodes["covariance"]
    np.testing.assert_allclose(cov, np.swapaxes(cov, 1, 2), atol=1e-9)
    eig = np.linalg.eigvalsh(cov)
    assert np.all(eig > 0)
    np.testing.assert_allclose(np.prod(np.sqrt(eig), axis=1) ** (1 / 3), gt.nodes["radius"])


def test_default_has_divisions_and_realistic_counts(default):
    cfg, gt = default.config, default.gt
    counts = np.bincount(gt.t, minlength=cfg.n_frames)
    assert counts.min() >= 30 and counts.max() <= min(80, cfg.max_nuclei)
    divisions = gt.divisions()
    assert divisions.size >= cfg.n_frames  # a handful per frame on average
    # daughters sit about daughter_separation apart, along varying axes
    src, tgt = gt.edge_index()
    div_rows = gt.index_of(divisions)
    pairs = np.array([tgt[src == r] for r in div_rows[:10]])
    sep = np.linalg.norm(gt.positions[pairs[:, 0]] - gt.positions[pairs[:, 1]], axis=1)
    assert np.all(sep > 0.6 * cfg.daughter_separation_um)
    assert np.all(sep < 2.0 * cfg.daughter_separation_um)
    # daughters are smaller than their mother (volume split)
    assert np.all(gt.nodes["radius"][pairs[:, 0]] < gt.nodes["radius"][div_rows[:10]])


def test_default_nuclei_keep_their_distance(default):
    cfg, gt = default.config, default.gt
    for t in (0, cfg.n_frames - 1):
        pos = gt.positions[gt.rows_at(t)]
        nn = cKDTree(pos).query(pos, k=2)[0][:, 1]
        # daughters are allowed closer (scaled spacing); nobody overlaps a lot
        assert nn.min() > 0.6 * cfg.min_spacing_um


def test_default_intensities_are_plausible(default):
    img = default.image
    cfg = default.config
    assert img.min() >= 0.5 * cfg.offset
    assert img.max() < 4 * cfg.photon_scale + cfg.offset
    # nuclei are much brighter than the background
    gt = default.gt
    rows = gt.rows_at(0)
    vox = np.rint(gt.positions[rows] / default.voxel_size).astype(int)
    centre_values = img[0][tuple(vox.T)].astype(float)
    assert np.median(centre_values) > np.median(img[0]) + 0.4 * cfg.photon_scale


def test_rendered_centroid_matches_ground_truth():
    cfg = SynthConfig.tiny(seed=2, n_frames=3, **CLEAN)
    data = make_embryo(cfg)
    vs = data.voxel_size
    errors = []
    for t in range(cfg.n_frames):
        img = data.image[t].astype(np.float64)
        labels, _ = ndimage.label(img > 0.1 * img.max())
        rows = data.gt.rows_at(t)
        pos = data.gt.positions[rows]
        vox = np.clip(np.rint(pos / vs).astype(int), 0, np.asarray(img.shape) - 1)
        owner = labels[tuple(vox.T)]
        per_label = np.bincount(owner, minlength=labels.max() + 1)
        boxes = ndimage.find_objects(labels)
        for p, lab in zip(pos, owner):
            if lab == 0 or per_label[lab] != 1:
                continue  # touching nuclei: skip
            box = boxes[lab - 1]
            if any(s.start == 0 or s.stop == n for s, n in zip(box, img.shape)):
                continue  # cut by the border
            centroid = np.asarray(ndimage.center_of_mass(img, labels, lab)) * vs
            errors.append((centroid - p) / vs)
    errors = np.abs(np.asarray(errors))
    assert len(errors) >= 10
    assert errors.max() < 0.5  # voxels
    assert errors.mean() < 0.15


def test_rendered_volume_and_shape_match_covariance():
    """A lone unblurred, untextured nucleus: volume and second moments give its Σ."""
    cfg = SynthConfig(
        seed=3,
        n_frames=1,
        shape=(24, 48, 48),
        n_nuclei=1,
        radius_um=6.0,
        radius_std_um=0.0,
        anisotropy=1.8,
        brightness_std=0.0,
        texture_strength=0.0,
        blur_sigma_um=(0.0, 0.0, 0.0),
        **CLEAN,
    )
    data = make_embryo(cfg)
    img = data.image[0].astype(float) / cfg.photon_scale
    vs = data.voxel_size
    # the nucleus is not cut by the border
    assert img[[0, -1]].max() == 0 and img[:, [0, -1]].max() == 0 and img[..., [0, -1]].max() == 0
    cov = data.gt.nodes["covariance"][0]
    volume = img.sum() * np.prod(vs)
    assert volume == pytest.approx(4 / 3 * np.pi * np.sqrt(np.linalg.det(cov)), rel=0.05)
    grid = np.stack(np.meshgrid(*[np.arange(n) * v for n, v in zip(img.shape, vs)],
                                indexing="ij"), -1).reshape(-1, 3)
    w = img.reshape(-1) / img.sum()
    mean = w @ grid
    np.testing.assert_allclose(mean, data.gt.positions[0], atol=0.05)
    second = (grid - mean).T @ ((grid - mean) * w[:, None])
    # a solid ellipsoid {x: xᵀΣ⁻¹x ≤ 1} has second moment Σ / 5
    np.testing.assert_allclose(second * 5, cov, atol=0.1 * np.abs(cov).max())


def test_large_motion_moves_more_than_half_the_spacing():
    cfg = SynthConfig.large_motion(n_frames=6)
    gt = make_embryo(cfg).gt
    src, tgt = gt.edge_index()
    single = gt.out_degree()[src] == 1  # exclude divisions
    disp = np.linalg.norm(gt.positions[tgt[single]] - gt.positions[src[single]], axis=1)
    spacing = []
    for t in range(cfg.n_frames):
        pos = gt.positions[gt.rows_at(t)]
        spacing.append(cKDTree(pos).query(pos, k=2)[0][:, 1])
    half_spacing = 0.5 * np.median(np.concatenate(spacing))
    assert np.median(disp) > half_spacing
    assert np.mean(disp > half_spacing) > 0.9
    assert gt.divisions().size > 0


def test_nuclei_leave_the_field_of_view_when_allowed():
    kw = {"n_frames": 8, "drift_translation_um": (0.0, 0.0, 5.0), "drift_rotation_deg": 0.0}
    gt = make_embryo(SynthConfig.tiny(**kw)).gt
    last = gt.t.max()
    ended = (gt.out_degree() == 0) & (gt.t < last)
    assert ended.sum() >= 3
    # they ended near the +x border they were drifting towards
    extent_x = (48 - 1) * 1.0
    assert np.all(gt.positions[ended, 2] > extent_x - 5.0 - 3.0)

    kept = make_embryo(SynthConfig.tiny(allow_leaving=False, **kw)).gt
    assert not np.any((kept.out_degree() == 0) & (kept.t < kept.t.max()))
    counts = np.bincount(kept.t)
    assert np.all(np.diff(counts) >= 0)


def test_max_nuclei_caps_the_population():
    cfg = SynthConfig.tiny(n_frames=6, division_rate=1.0, min_cycle_frames=1, max_nuclei=11)
    gt = make_embryo(cfg).gt
    counts = np.bincount(gt.t)
    assert counts.max() <= 11
    assert counts.max() > cfg.n_nuclei


def test_noise_follows_poisson_plus_read_noise():
    base = {"seed": 6, "n_frames": 2, "photon_scale": 50.0, "read_noise": 3.0, "offset": 100.0}
    noisy = make_embryo(SynthConfig.tiny(**base)).image.astype(float)
    clean = make_embryo(SynthConfig.tiny(add_noise=False, **base)).image.astype(float)
    residual = noisy - clean
    assert abs(residual.mean()) < 0.1
    expected_var = np.mean(clean - 100.0) + 3.0**2 + 1 / 12  # Poisson + read + rounding
    assert residual.var() == pytest.approx(expected_var, rel=0.1)


def test_uneven_background_and_intensity_drift():
    cfg = SynthConfig.tiny(
        n_nuclei=1,
        n_frames=4,
        add_noise=False,
        background=0.5,
        background_z_variation=0.8,
        intensity_drift=-0.1,
    )
    img = make_embryo(cfg).image.astype(float) - cfg.offset
    per_slice = np.median(img[0], axis=(1, 2))
    assert per_slice.max() - per_slice.min() > 0.1 * cfg.background * cfg.photon_scale
    medians = np.median(img, axis=(1, 2, 3))
    np.testing.assert_allclose(medians[1:] / medians[:-1], 0.9, rtol=0.05)


def test_two_dimensional_movies():
    cfg = SynthConfig.tiny(shape=(1, 48, 48), voxel_size=(1.0, 1.0, 1.0), n_nuclei=6)
    data = make_embryo(cfg)
    assert data.image.shape == (cfg.n_frames, 1, 48, 48)
    np.testing.assert_array_equal(data.gt.nodes["z"], 0.0)
    data.gt.validate(forest=True)
    assert data.image.max() > cfg.offset + 0.3 * cfg.photon_scale
