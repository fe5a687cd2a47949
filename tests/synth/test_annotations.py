"""sample_annotations: sparse nuclei and approved links drawn from a ground truth."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from celltrack.errors import InvalidInputError
from celltrack.synth import SynthConfig, make_embryo, sample_annotations


@pytest.fixture(scope="module")
def gt():
    return make_embryo(SynthConfig.tiny(seed=1, n_frames=5, n_nuclei=10, max_nuclei=20)).gt


def test_default_draws_n_nuclei_in_one_frame(gt):
    ann = sample_annotations(gt, n_nuclei=4, rng=0)
    assert ann.num_nodes == 4 and ann.num_edges == 0
    assert np.unique(ann.t).size == 1
    assert ann.attrs["frames"] == [int(ann.t[0])]
    assert np.all(ann.nodes["tag"] == "tp")
    assert np.all(gt.has_nodes(ann.ids))
    rows = gt.index_of(ann.ids)
    np.testing.assert_array_equal(ann.positions, gt.positions[rows])
    np.testing.assert_array_equal(ann.nodes["covariance"], gt.nodes["covariance"][rows])
    np.testing.assert_array_equal(ann.t, gt.t[rows])


def test_several_frames_tag_and_all_nuclei_when_too_few(gt):
    ann = sample_annotations(gt, n_nuclei=3, frames=[0, 2, 4], tag="fn", rng=1)
    assert np.bincount(ann.t, minlength=5).tolist() == [3, 0, 3, 0, 3]
    assert set(ann.nodes["tag"]) == {"fn"}
    everything = sample_annotations(gt, n_nuclei=10_000, frames=3, rng=1)
    assert everything.num_nodes == gt.nodes_at(3).size


def test_links_are_approved_gt_edges_with_both_ends(gt):
    ann = sample_annotations(gt, n_nuclei=2, frames=3, n_links=5, rng=2)
    assert ann.num_edges == 5
    assert ann.edges["approved"].dtype == bool and ann.edges["approved"].all()
    gt_pairs = set(zip(gt.edges["source"].tolist(), gt.edges["target"].tolist()))
    pairs = set(zip(ann.edges["source"].tolist(), ann.edges["target"].tolist()))
    assert pairs <= gt_pairs
    assert np.all(ann.has_nodes(ann.edges["source"])) and np.all(ann.has_nodes(ann.edges["target"]))
    src, tgt = ann.edge_index()
    assert np.all(ann.t[tgt] == 3) and np.all(ann.t[src] == 2)
    # the two marked nuclei of frame 3 are linked first (a person links what they marked)
    marked = sample_annotations(gt, n_nuclei=2, frames=3, rng=2).ids
    assert np.all(np.isin(marked, ann.edges["target"]))
    ann.validate(forest=True)


def test_default_frame_with_links_has_a_previous_frame(gt):
    ann = sample_annotations(gt, n_nuclei=3, n_links=3, rng=5)
    assert ann.num_edges == 3
    assert min(ann.attrs["frames"]) >= 1


def test_too_many_links_gives_what_exists_with_a_warning(gt, caplog):
    available = int(np.sum(np.isin(gt.edges["target"], gt.nodes_at(1))))
    with caplog.at_level(logging.WARNING, logger="celltrack.synth.annotations"):
        ann = sample_annotations(gt, n_nuclei=0, frames=1, n_links=10_000, rng=0)
    assert ann.num_edges == available
    assert "links" in caplog.text


def test_seeded_draws_are_reproducible_and_vary(gt):
    a = sample_annotations(gt, n_nuclei=3, n_links=2, rng=11)
    b = sample_annotations(gt, n_nuclei=3, n_links=2, rng=np.random.default_rng(11))
    assert a.equals(b)
    draws = {tuple(sample_annotations(gt, n_nuclei=3, frames=2, rng=s).ids) for s in range(6)}
    assert len(draws) > 1


def test_position_noise(gt):
    ann = sample_annotations(gt, n_nuclei=10, frames=[1, 2, 3], position_noise_um=0.5, rng=3)
    diff = ann.positions - gt.positions[gt.index_of(ann.ids)]
    assert 0.3 < diff.std() < 0.7
    assert np.all(np.abs(diff) < 3.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_nuclei": -1},
        {"n_links": -2},
        {"n_nuclei": 2.5},
        {"tag": "maybe"},
        {"position_noise_um": -1.0},
        {"frames": [99]},
        {"frames": [0.5]},
    ],
)
def test_bad_arguments(gt, kwargs):
    with pytest.raises(InvalidInputError):
        sample_annotations(gt, **kwargs)


def test_not_a_graph():
    with pytest.raises(InvalidInputError, match="TrackGraph"):
        sample_annotations({"id": [1]})  # type: ignore[arg-type]
