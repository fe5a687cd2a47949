import numpy as np
import pytest

from celltrack import TrackGraph
from celltrack.errors import InvalidInputError, ShapeError
from celltrack.viz import plot_lineage_tree, plot_loss_curves, plot_tracks_projection, save_figure


def small_forest() -> TrackGraph:
    nodes = {
        "id": [0, 1, 2, 3, 4, 5, 6],
        "t": [0, 1, 2, 2, 3, 3, 0],
        "z": [1.0] * 7,
        "y": [5.0, 5, 4, 6, 4, 6, 9],
        "x": [5.0, 5, 4, 6, 4, 6, 9],
    }
    edges = {"source": [0, 1, 1, 2, 3], "target": [1, 2, 3, 4, 5]}
    return TrackGraph(nodes, edges)


def test_figures_are_written(tmp_path):
    g = small_forest()
    image = np.random.default_rng(0).random((4, 3, 12, 12))
    ax = plot_tracks_projection(image, g, (1.0, 1.0, 1.0), frame=3)
    assert len(ax.collections) == 2  # track tails + detections
    assert len(ax.collections[1].get_offsets()) == 2  # two cells in frame 3
    png = save_figure(ax, tmp_path / "proj.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    ax = plot_lineage_tree(g)
    # tracklets {0,1}, {2,4}, {3,5} and {6}: 4 vertical lines + 2 fork lines
    assert len(ax.lines) == 6
    save_figure(ax, tmp_path / "tree.png")
    ax = plot_loss_curves({"detection": [1.0, 0.5, 0.25], "flow": []})
    assert len(ax.lines) == 1
    save_figure(ax, tmp_path / "loss.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loss.png", "proj.png", "tree.png"]


def test_bad_input():
    g = small_forest()
    with pytest.raises(ShapeError):
        plot_tracks_projection(np.zeros((2, 2)), g, (1, 1, 1))
    with pytest.raises(InvalidInputError):
        plot_tracks_projection(np.zeros((2, 2, 4, 4)), g, (1, 1, 1), frame=5)
    with pytest.raises(InvalidInputError):
        plot_tracks_projection(np.zeros((2, 2, 4, 4)), g, (1, 1))


def test_projection_is_in_micrometres_with_scale_bar_legend_and_no_ended_tails():
    g = small_forest()
    # a track that ends at t=1 (ids 7 → 8) must leave no floating tail in frame 3
    g = g.add_nodes({"id": [7, 8], "t": [0, 1], "z": [1.0, 1.0], "y": [2.0, 2.0], "x": [8.0, 9.0]})
    g = g.add_edges({"source": [7], "target": [8]})
    image = np.random.default_rng(0).random((4, 3, 12, 10))
    ax = plot_tracks_projection(image, g, (2.0, 0.5, 0.25), frame=3)
    assert ax.get_xlabel() == "x (µm)" and ax.get_ylabel() == "y (µm)"
    assert ax.get_xlim() == (0.0, 2.5) and ax.get_ylim() == (6.0, 0.0)  # 10 × 0.25, 12 × 0.5 µm
    assert any("µm" in text.get_text() for text in ax.texts)  # the scale bar's label
    assert ax.get_legend() is not None
    segments = ax.collections[0].get_segments()
    assert len(segments) == 5  # the paths of cells 4 and 5 only, not 7 → 8
    drawn = {tuple(np.round(p, 6)) for seg in segments for p in seg}
    assert (9.0, 2.0) not in drawn and (8.0, 2.0) not in drawn


def test_lineage_tree_has_integer_frame_ticks():
    g = small_forest()
    ax = plot_lineage_tree(g)
    ticks = ax.get_yticks()
    assert np.allclose(ticks, np.round(ticks))
    assert "frame" in ax.get_ylabel()


def test_loss_curves_separate_models_and_mark_the_end_of_the_prior():
    detection = [{"mode": "prior", "step": i + 1, "loss": 1.0 / (i + 1)} for i in range(6)]
    detection += [{"mode": "batch", "step": 6 + 3 * (e + 1), "loss": 0.1} for e in range(4)]
    flow = [{"mode": "flow", "step": 5 * (e + 1), "loss": 0.2} for e in range(3)]
    ax = plot_loss_curves({"detection": detection, "flow": flow})
    panels = ax.figure.axes
    assert len(panels) == 2
    assert [p.get_title() for p in panels] == ["detection", "flow"]
    assert all(p.get_xlabel() == "optimisation step" for p in panels)
    assert any("prior ends" in t.get_text() for t in panels[0].texts)
    labels = [line.get_label() for line in panels[0].lines]
    assert "prior (per step)" in labels
    assert "batch (mean per epoch)" in labels
    assert not panels[1].texts  # one mode only: nothing to mark


def test_score_plots_use_plain_words_with_ctc_names():
    from celltrack.eval import evaluate
    from celltrack.eval.plots import plot_error_counts, plot_error_free_segments

    g = small_forest()
    scores = evaluate(g, g.subgraph(nodes=g.ids != 5), max_distance=1.0)
    ax = plot_error_counts({"a": scores, "b": scores})
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert "missed nucleus (FN)" in labels and "wrong link (ED)" in labels
    assert ax.get_legend() is not None
    ax = plot_error_free_segments(scores)
    assert "frame" in ax.get_xlabel() and ax.get_legend() is not None
