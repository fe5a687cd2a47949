import logging

import numpy as np

from celltrack.config.detection import LabelConfig
from celltrack.detect.evidence import (
    background_level,
    intensity_background,
    nucleus_statistics,
    pool_statistics,
)
from celltrack.geometry import covariance_from_radii
from celltrack.graph import TrackGraph

VS = (2.0, 0.5, 0.5)


def _frame(shape, centres, radius, peaks, floor=0.1, seed=0):
    grids = np.meshgrid(*[np.arange(n) * v for n, v in zip(shape, VS)], indexing="ij")
    rng = np.random.default_rng(seed)
    img = floor + 0.01 * rng.standard_normal(shape).astype(np.float32)
    for c, peak in zip(centres, peaks):
        d2 = sum((g - x) ** 2 for g, x in zip(grids, c))
        img[d2 <= radius**2] = peak
    return img.astype(np.float32), grids


def _spots(centres, radius=3.0, tags=None, t=0):
    pos = np.asarray(centres, float).reshape(-1, 3)
    tags = np.full(len(pos), "tp") if tags is None else np.asarray(tags)
    cov = covariance_from_radii(np.full((len(pos), 3), radius))
    return TrackGraph.from_positions(np.full(len(pos), t), pos, covariance=cov, tag=tags)


def test_background_level_is_the_dark_mode_for_sparse_and_dense_frames():
    rng = np.random.default_rng(0)
    sparse = np.where(rng.random(10000) < 0.1, 1.0, 0.2) + 0.01 * rng.standard_normal(10000)
    dense = np.where(rng.random(10000) < 0.45, 1.0, 0.2) + 0.01 * rng.standard_normal(10000)
    assert abs(background_level(sparse) - 0.2) < 0.03
    assert abs(background_level(dense) - 0.2) < 0.03


def test_dim_unannotated_nucleus_and_its_rim_stay_unlabelled():
    shape = (6, 60, 60)
    centres = [(6.0, 8.0, 8.0), (6.0, 20.0, 20.0)]
    img, grids = _frame(shape, centres, 3.0, peaks=(1.0, 0.6))  # the second is dimmer
    ev = intensity_background(img, _spots(centres[:1]), VS, LabelConfig())
    assert ev is not None
    d_dim = np.sqrt(sum((g - x) ** 2 for g, x in zip(grids, centres[1])))
    margin = LabelConfig().auto_background_margin_um
    # the dim nucleus and its rim (up to the margin, less z discretisation) stay unlabelled
    assert not ev.background[d_dim <= 3.0 + margin - 1.0].any()
    assert ev.foreground[d_dim <= 2.0].all()
    far = np.ones(shape, bool)
    for c in centres:
        far &= np.sqrt(sum((g - x) ** 2 for g, x in zip(grids, c))) > 3.0 + margin + 1.5
    assert ev.background[far].all()
    assert 0.1 < ev.threshold < 0.6 * 1.0  # between the background and the dim nucleus
    # a bigger margin labels fewer voxels; a nucleus dimmer than the threshold is lost
    wide = intensity_background(img, _spots(centres[:1]), VS,
                                LabelConfig(auto_background_margin_um=5.0))
    assert wide.background.sum() < ev.background.sum()


def test_frame_without_nuclei_uses_pooled_statistics_or_gives_nothing(caplog):
    shape = (1, 60, 60)
    vs2 = (1.0, 0.5, 0.5)
    grids = np.meshgrid(*[np.arange(n) * v for n, v in zip(shape, vs2)], indexing="ij")
    img = np.full(shape, 0.1, np.float32)
    img[(grids[1] - 10) ** 2 + (grids[2] - 10) ** 2 <= 9] = 1.0
    stats = nucleus_statistics(img, _spots([(0, 10, 10)]), vs2)
    assert stats is not None and stats.n_nuclei == 1 and stats.contrast > 0.5
    assert np.isclose(stats.volume_um3, np.pi * 9.0)  # 2D: area of the annotation
    pooled = pool_statistics([stats, None, stats])
    assert pooled.n_nuclei == 2 and np.isclose(pooled.low, stats.low)
    assert pool_statistics([None]) is None
    other = img.copy()
    rejected = _spots([(0, 22, 22)], tags=["fp"])
    ev = intensity_background(other, rejected, vs2, statistics=pooled)
    assert ev is not None and ev.background[0, 50, 50] and not ev.background[0, 20, 20]
    with caplog.at_level(logging.INFO, logger="celltrack.detect.evidence"):
        assert intensity_background(other, rejected, vs2) is None
    assert "no annotated nucleus" in caplog.text


def test_nuclei_not_brighter_than_background_give_no_rule(caplog):
    shape = (1, 40, 40)
    img = np.full(shape, 0.5, np.float32)
    with caplog.at_level(logging.WARNING, logger="celltrack.detect.evidence"):
        ev = intensity_background(img, _spots([(0, 10, 10)]), (1.0, 0.5, 0.5))
    assert ev is None and "not brighter" in caplog.text
