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
