"""The simulated annotator (ELEPHANT's proofreading loop through Project) and the effort curve."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from celltrack.config.detection import PredictConfig
from celltrack.detect import DetectionConfig
from celltrack.errors import InvalidInputError
from celltrack.eval import (
    EffortCurve,
    EffortRow,
    SimulatedAnnotator,
    evaluate,
    plot_effort_curve,
    run_effort_curve,
)
from celltrack.graph.tags import LINKABLE, tags_of
from celltrack.project import Project, ProjectConfig
from celltrack.synth import SynthConfig, make_embryo

MATCH_UM = 4.0


@pytest.fixture(scope="module")
def tiny():
    return make_embryo(SynthConfig.tiny(n_frames=3))


def tiny_config() -> ProjectConfig:
    """CPU preset cut down to one or two optimisation steps on small crops."""
    det = DetectionConfig.cpu()
    det = det.model_copy(
        update={
            "train": det.train.model_copy(
                update={
                    "incremental_steps": 1,
                    "prior_learning_rates": (1e-2,),
                    "prior_crops": 1,
                    "crop_shape": (8, 32, 32),
                    "epochs": 1,
                    "crops_per_frame": 1,
                    "num_threads": 1,
                }
            ),
            "predict": PredictConfig(tile_shape=(12, 48, 48), overlap=(0, 0, 0)),
        }
    )
    return ProjectConfig(detection=det)


def seeded_project(tmp_path, data, name="p", *, drop_frame=1, n_false=4):
    """A project whose 'predictions' (unlabeled spots) are the truth with errors.

    In frame ``drop_frame`` three true nuclei are missing and ``n_false`` false spots lie in
    the corner, far from every nucleus; the other frames hold the truth exactly. Returns
    the project, the missed truth rows and the false spots' ids.
    """
    project = Project.create(
        tmp_path / name, data.image, voxel_size=data.voxel_size, config=tiny_config()
    )
    gt = data.gt
    missed = np.flatnonzero(gt.t == drop_frame)[:3]
    false_ids = []
    with project.batch():
        for t in np.unique(gt.t):
            rows = np.flatnonzero(gt.t == t)
            rows = rows[~np.isin(rows, missed)]
            project.add_spots(int(t), gt.positions[rows], radius_um=3.0, tag="unlabeled")
            if t == drop_frame and n_false:
                corner = np.array([[2.0, 1.0 + 1.5 * i, 1.0] for i in range(n_false)])
                false_ids = project.add_spots(int(t), corner, radius_um=2.0, tag="unlabeled")
    return project, missed, np.asarray(false_ids)


def _tags_by_id(project):
    ann = project.annotations
    return dict(zip(ann.ids.tolist(), tags_of(ann).tolist()))


def test_round_rejects_false_positives_and_adds_misses_before_confirming(tmp_path, tiny):
    project, missed, false_ids = seeded_project(tmp_path, tiny)
    annotator = SimulatedAnnotator(
        tiny.gt, clicks_per_round=7, frames_per_round=1, match_distance_um=MATCH_UM
    )
    assert annotator.choose_frames(project) == [1]  # the only frame with errors
    report = annotator.proofread_round(project)
    assert report.frames == [1]
    assert report.errors_seen == 7
    assert report.clicks == 7 == report.rejected + report.added
    assert report.rejected == 4 and report.added == 3 and report.accepted == 0
    tags = _tags_by_id(project)
    assert all(tags[i] == "fp" for i in false_ids.tolist())
    ann = project.annotations
    fn = ann.subgraph(nodes=tags_of(ann) == "fn")
    assert fn.num_nodes == 3 and np.all(fn.t == 1)
    # the added spots sit on the missed nuclei, with the truth's ellipsoids
    d = np.linalg.norm(fn.positions[:, None] - tiny.gt.positions[missed][None], axis=2)
    assert np.allclose(d.min(axis=1), 0.0)
    cov = np.asarray(fn.nodes["covariance"])
    assert np.allclose(
        np.sort(cov.reshape(3, -1), 0),
        np.sort(np.asarray(tiny.gt.nodes["covariance"])[missed].reshape(3, -1), 0),
    )
    # nothing else was touched
    assert np.count_nonzero(tags_of(ann) == "unlabeled") == ann.num_nodes - 7


def test_clicks_never_exceed_the_budget_and_corrections_come_first(tmp_path, tiny):
    project, _, _ = seeded_project(tmp_path, tiny)
    annotator = SimulatedAnnotator(
        tiny.gt, clicks_per_round=3, frames_per_round=2, match_distance_um=MATCH_UM, seed=1
    )
    for _ in range(4):
        report = annotator.proofread_round(project)
        assert report.clicks <= 3
        assert report.clicks == report.accepted + report.rejected + report.added + report.links
    # the first round could only fix errors: alternately reject, add, reject
    counts = project.tag_counts()
    assert counts["fp"] == 4 and counts["fn"] == 3
    # then it confirmed correct predictions (each a click), within the budget of 4 rounds
    assert counts["fp"] + counts["fn"] + counts["tp"] + _approved(project) <= 12
    assert counts["tp"] >= 1


def test_confirm_share_keeps_clicks_for_accepting_correct_predictions(tmp_path, tiny):
    project, _, _ = seeded_project(tmp_path, tiny)  # 7 errors in frame 1
    annotator = SimulatedAnnotator(
        tiny.gt,
        clicks_per_round=6,
        frames_per_round=1,
        match_distance_um=MATCH_UM,
        confirm_share=0.5,
    )
    report = annotator.proofread_round(project)
    assert (report.accepted, report.rejected + report.added, report.clicks) == (3, 3, 6)
    accepted = project.annotations.subgraph(nodes=tags_of(project.annotations) == "tp")
    assert np.all(accepted.t == 1)
    with pytest.raises(InvalidInputError, match="confirm_share"):
        SimulatedAnnotator(tiny.gt, match_distance_um=MATCH_UM, confirm_share=1.5)


def _approved(project):
    ann = project.annotations
    return int(np.count_nonzero(ann.edges["approved"])) if ann.num_edges else 0


def test_links_between_confirmed_spots_are_approved_when_clicks_are_left(tmp_path, tiny):
    project, _, _ = seeded_project(tmp_path, tiny, n_false=0, drop_frame=-1)
    annotator = SimulatedAnnotator(
        tiny.gt, clicks_per_round=200, frames_per_round=3, match_distance_um=MATCH_UM
    )
    report = annotator.proofread_round(project)
    assert report.accepted == tiny.gt.num_nodes and report.rejected == report.added == 0
    assert report.links == tiny.gt.num_edges == _approved(project)
    # approved links are exactly the truth's links (ids map one to one by position)
    ann = project.annotations
    s, d = ann.edge_index()
    pairs = {(tuple(ann.positions[a]), tuple(ann.positions[b])) for a, b in zip(s, d)}
    gs, gd = tiny.gt.edge_index()
    truth = {(tuple(tiny.gt.positions[a]), tuple(tiny.gt.positions[b])) for a, b in zip(gs, gd)}
    assert pairs == truth
    none = SimulatedAnnotator(
        tiny.gt,
        clicks_per_round=200,
        frames_per_round=3,
        match_distance_um=MATCH_UM,
        link_clicks=False,
    )
    assert none.proofread_round(project).links == 0


def test_rounds_are_deterministic_and_the_seed_breaks_ties(tmp_path, tiny):
    def run(name, seed):
        project, _, _ = seeded_project(tmp_path, tiny, name, n_false=0, drop_frame=-1)
        annotator = SimulatedAnnotator(
            tiny.gt, clicks_per_round=4, frames_per_round=1, match_distance_um=MATCH_UM, seed=seed
        )
        frames = [annotator.proofread_round(project).frames for _ in range(2)]
        ann = project.annotations
        return frames, ann.positions[tags_of(ann) == "tp"].round(6).tolist()

    assert run("a", 0) == run("b", 0)
    # no errors anywhere, so all frames tie: different seeds look at different frames first
    project, _, _ = seeded_project(tmp_path, tiny, "ties", n_false=0, drop_frame=-1)
    firsts = {
        SimulatedAnnotator(
            tiny.gt, frames_per_round=1, match_distance_um=MATCH_UM, seed=seed
        ).choose_frames(project)[0]
        for seed in range(8)
    }
    assert len(firsts) > 1


def test_a_round_of_corrections_never_lowers_det_of_the_current_spots(tmp_path, tiny):
    project, _, _ = seeded_project(tmp_path, tiny, n_false=6)
    annotator = SimulatedAnnotator(
        tiny.gt, clicks_per_round=5, frames_per_round=1, match_distance_um=MATCH_UM
    )

    def det():
        ann = project.annotations
        return evaluate(tiny.gt, ann.subgraph(nodes=np.isin(tags_of(ann), LINKABLE)), MATCH_UM).det

    scores = [det()]
    for _ in range(3):
        annotator.proofread_round(project)
        scores.append(det())
    assert all(b >= a for a, b in itertools.pairwise(scores))
    assert scores[-1] > scores[0]
    assert scores[-1] == pytest.approx(1.0)  # 9 errors fixed by 10 clicks


def test_initial_annotations_spread_over_frames(tmp_path, tiny):
    project = Project.create(
        tmp_path / "p", tiny.image, voxel_size=tiny.voxel_size, config=tiny_config()
    )
    annotator = SimulatedAnnotator(tiny.gt, match_distance_um=MATCH_UM, seed=3)
    assert annotator.annotate_initial(project, n_frames=2, per_frame=3) == 6
    ann = project.annotations
    assert ann.num_nodes == 6 and set(ann.t.tolist()) == {0, 2}
    assert set(tags_of(ann).tolist()) == {"fn"}


def test_bad_parameters_are_refused(tiny):
    with pytest.raises(InvalidInputError, match="clicks_per_round"):
        SimulatedAnnotator(tiny.gt, clicks_per_round=0, match_distance_um=MATCH_UM)
    with pytest.raises(InvalidInputError, match="match_distance_um"):
        SimulatedAnnotator(tiny.gt, match_distance_um=-1.0)
    with pytest.raises(InvalidInputError, match="TrackGraph"):
        SimulatedAnnotator([1, 2], match_distance_um=MATCH_UM)


def test_effort_curve_runs_two_rounds_and_serialises(tmp_path, tiny):
    import torch

    torch.set_num_threads(1)
    project = Project.create(
        tmp_path / "p", tiny.image, voxel_size=tiny.voxel_size, config=tiny_config()
    )
    annotator = SimulatedAnnotator(tiny.gt, clicks_per_round=5, match_distance_um=MATCH_UM)
    first = annotator.annotate_initial(project, n_frames=2, per_frame=3)
    curve = run_effort_curve(project, annotator, rounds=2, initial_clicks=first, steps=1)
    assert [r.round for r in curve.rows] == [0, 1, 2]
    assert curve.rows[0].cumulative_clicks == 6
    for prev, row in itertools.pairwise(curve.rows):
        assert 0 < row.clicks <= 5
        assert row.cumulative_clicks == prev.cumulative_clicks + row.clicks
    for row in curve.rows:
        assert isinstance(row, EffortRow)
        assert 0.0 <= row.det <= 1.0 and row.spots > 0 and row.seconds > 0
    data = json.loads(curve.to_json(tmp_path / "curve.json"))
    assert json.loads((tmp_path / "curve.json").read_text()) == data
    assert [r["det"] for r in data["rows"]] == pytest.approx(curve.column("det").tolist())
    assert "DET" in curve.table()


def _curve(dets):
    rows = [
        EffortRow(
            round=i,
            clicks=10,
            cumulative_clicks=10 * (i + 1),
            spots=5,
            det=d,
            tra=d,
            division_f1=float("nan"),
            false_positives=0,
            misses=0,
            seconds=1.0,
        )
        for i, d in enumerate(dets)
    ]
    return EffortCurve(rows=rows, label="learned")


def test_plot_effort_curve_labels_axes_and_draws_baselines():
    fig = plot_effort_curve(
        {"learned": _curve([0.5, 0.8, 0.9])},
        baselines={"classical": {"det": 0.7}},
        metrics=("det", "tra"),
    )
    ax = fig.axes[0]
    assert "clicks" in ax.get_xlabel() and "DET" in ax.get_ylabel()
    assert tuple(ax.lines[0].get_xdata()) == (10, 20, 30)
    labels = ax.get_legend_handles_labels()[1]
    assert labels[0] == "learned" and labels[1].startswith("classical")
    assert all(float(t).is_integer() for t in ax.get_xticks())
    assert len(fig.axes[1].lines) == 1  # no TRA baseline given
    with pytest.raises(InvalidInputError, match="metrics"):
        plot_effort_curve(_curve([0.5]), metrics=("speed",))
    import matplotlib.pyplot as plt

    plt.close("all")


def test_effort_curve_with_the_classical_detector_only_improves(tmp_path, tiny):
    """No training: the same detections every round, so each round's corrections only add up."""
    cfg = ProjectConfig(detection=DetectionConfig(kind="classical"))
    project = Project.create(tmp_path / "p", tiny.image, voxel_size=tiny.voxel_size, config=cfg)
    annotator = SimulatedAnnotator(
        tiny.gt, clicks_per_round=4, frames_per_round=1, match_distance_um=MATCH_UM
    )
    curve = run_effort_curve(project, annotator, rounds=2)
    assert [r.round for r in curve.rows] == [0, 1, 2]
    assert curve.rows[0].clicks == 0 and all(r.clicks <= 4 for r in curve.rows)
    det = curve.column("det")
    assert np.all(np.isfinite(det)) and np.all(np.diff(det) >= 0)
    errors = curve.column("false_positives") + curve.column("misses")
    assert np.all(np.diff(errors) <= 0)
    if errors[0] > 0:
        assert errors[-1] < errors[0]
