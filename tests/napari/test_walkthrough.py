"""A scripted session in a real napari viewer: every step a person takes, through the widget
and the layers' own events, checked against the Project's saved state."""

from __future__ import annotations

import numpy as np
import pytest

from celltrack.io import read_tracks, write_image
from celltrack.napari.layers import TAG_COLORS
from celltrack.napari.widget import CelltrackWidget
from celltrack.project import Project

JOB_TIMEOUT_MS = 120_000


def _press(layer, key: str) -> None:
    """Run the spots layer's key binding for ``key`` (what a key press in napari calls)."""
    from napari.utils.key_bindings import KeyBinding

    layer.keymap[KeyBinding.from_str(key)](layer)


def _wait(qtbot, widget: CelltrackWidget) -> None:
    qtbot.waitUntil(lambda: widget.jobs.running is None, timeout=JOB_TIMEOUT_MS)
    assert widget.jobs.last_error is None, widget.jobs.last_error


def _colour_pixels(image: np.ndarray, rgb) -> int:
    """Pixels of an RGBA screenshot whose hue is that of ``rgb`` (saturated, not grey)."""
    px = image[..., :3].astype(float) / 255
    target = np.asarray(rgb[:3], float)
    sat = px.max(-1) - px.min(-1)
    direction = (px - px.mean(-1, keepdims=True)) * (target - target.mean())[None, None]
    return int(np.count_nonzero((sat > 0.15) & (direction.sum(-1) > 0.02)))


@pytest.mark.timeout(600)
def test_annotate_train_predict_proofread_link_export(
    viewer, qtbot, tmp_path, tiny_movie, tiny_project_config
):
    movie = write_image(
        tiny_movie.image, tmp_path / "movie.ome.zarr", voxel_size=tiny_movie.voxel_size
    )
    widget = CelltrackWidget(viewer)
    viewer.window.add_dock_widget(widget)
    session = widget.create_project(
        tmp_path / "p.ctproj", movie, None, config=tiny_project_config()
    )
    project = session.project
    layer = session.spots_layer
    assert viewer.layers["movie"].scale.tolist() == [1.0, 2.0, 1.0, 1.0]  # µm per voxel

    # 1. a person clicks nuclei in frame 0 (napari's add mode appends a point each click)
    gt = tiny_movie.gt.subgraph(nodes=tiny_movie.gt.t == 0)
    layer.mode = "add"
    for zyx in gt.positions:
        layer.add(np.r_[0.0, zyx])
    layer.mode = "select"
    assert project.tag_counts(0)["fn"] == gt.num_nodes
    assert np.allclose(np.sort(project.spots(0).positions, 0), np.sort(gt.positions, 0))
    # shift-drag sets the radius: a 4 µm drag → radius 4 µm
    new = session.add_by_drag(np.r_[1.0, gt.positions[0]], np.r_[1.0, gt.positions[0] + [0, 4, 0]])
    cov = project.annotations.nodes["covariance"][project.annotations.index_of([new])[0]]
    assert np.allclose(np.diag(cov), 16.0)
    session.undo()
    assert new not in project.annotations.ids.tolist()

    # 2. train the detector in the background: the viewer keeps working, the loss shows
    losses = []
    widget.prior.setChecked(False)  # no self-supervised prior: 100 supervised steps only
    widget.jobs.progress.connect(lambda e: losses.append(e.info.get("loss")))
    assert widget.train("detection", "incremental", 100)
    assert not widget.train("detection", "incremental", 100)  # one job at a time
    _wait(qtbot, widget)
    assert (project.folder / "models" / "detection.pt").is_file()
    assert len([v for v in losses if v is not None]) == 100
    assert widget.loss.text().startswith("loss: ")

    # 3. predict every frame; new predictions are unlabeled, shown grey
    widget.predict("all frames")
    _wait(qtbot, widget)
    counts = project.tag_counts()
    assert counts["unlabeled"] > 0, counts
    assert len(layer.data) == project.annotations.num_nodes

    # 4. proofread with keys: accept two predictions of frame 1, reject one
    g = project.annotations
    pred = np.flatnonzero((np.asarray(g.nodes["tag"]).astype(str) == "unlabeled") & (g.t == 1))
    assert pred.size >= 3, "the tiny detector found too few nuclei in frame 1"
    layer.selected_data = set(pred[:2].tolist())
    _press(layer, "a")
    layer.selected_data = {int(pred[2])}
    _press(layer, "r")
    tags = dict(zip(project.annotations.ids.tolist(), project.annotations.nodes["tag"].astype(str)))
    assert [tags[i] for i in g.ids[pred[:3]]] == ["tp", "tp", "fp"]
    assert np.allclose(layer.face_color[pred[0]], TAG_COLORS["tp"])
    assert np.allclose(layer.face_color[pred[2]], TAG_COLORS["fp"])

    # 5. delete (napari's delete key) and move (dragging) go through the project too
    victim = int(g.ids[pred[3]]) if pred.size > 3 else None
    if victim is not None:
        layer.selected_data = {int(pred[3])}
        layer.remove_selected()
        assert victim not in project.annotations.ids.tolist()
    row = int(np.flatnonzero(session.ids == g.ids[pred[0]])[0])
    moved = np.array(layer.data)
    moved[row, 2] += 1.5  # 1.5 µm along y
    layer.data = moved
    after = project.annotations
    y_after = after.nodes["y"][after.index_of([g.ids[pred[0]]])[0]]
    assert np.isclose(y_after, g.nodes["y"][pred[0]] + 1.5)

    # 6. link a nucleus of frame 0 to one of frame 1 with the l key, then undo / redo
    child = int(g.ids[pred[0]])
    frame0 = project.spots(0)
    nearest = np.argmin(np.linalg.norm(frame0.positions - g.positions[pred[0]], axis=1))
    parent = int(frame0.ids[nearest])
    layer.selected_data = {int(np.flatnonzero(session.ids == parent)[0])}
    _press(layer, "l")
    viewer.dims.set_current_step(0, 1)
    layer.selected_data = {int(np.flatnonzero(session.ids == child)[0])}
    _press(layer, "l")
    links = project.approved_links()
    assert (parent, child) in set(zip(*(links.ids[i] for i in links.edge_index())))
    assert "links" in viewer.layers
    assert session.undo() and project.approved_links().num_edges == 0
    assert session.redo() and project.approved_links().num_edges == 1

    # 7. train the flow, link with the learned ILP costs, then with greedy; tracks appear
    widget.train("motion", "batch", 1)
    _wait(qtbot, widget)
    assert (project.folder / "models" / "flow.pt").is_file()
    widget.link("ilp", learn_costs=True)
    _wait(qtbot, widget)
    assert project.config.linker.kind == "ilp"
    assert project.tracks is not None and project.tracks.num_edges > 0
    assert "tracks" in viewer.layers
    assert widget.status.text().startswith("linked:")

    # 8. export: GEFF, CTC and TrackMate XML read back with the same links
    edges = project.tracks.num_edges
    for name, fmt in (("tracks.geff", "geff"), ("ctc", "ctc"), ("tracks.xml", "trackmate")):
        out = widget.export(tmp_path / name, fmt)
        back = read_tracks(out, voxel_size=tiny_movie.voxel_size)
        assert back.num_edges == edges, fmt

    # 9. the viewer shows it: screenshots with spots coloured by tag, and the tracks
    import imageio.v3 as iio

    viewer.window.resize(1400, 900)
    viewer.dims.set_current_step(0, 1)
    for name in ("links", "tracks"):  # colours from the spots alone
        viewer.layers[name].visible = False
    for node, tag in ((g.ids[pred[0]], "tp"), (g.ids[pred[2]], "fp")):
        viewer.dims.set_point(1, after.nodes["z"][after.index_of([node])[0]])  # its z (µm)
        shot = viewer.screenshot(canvas_only=True, flash=False)
        iio.imwrite(tmp_path / f"viewer_{tag}.png", shot)
        assert shot.shape[0] > 100 and shot[..., :3].std() > 5
        assert _colour_pixels(shot, TAG_COLORS[tag]) > 200, tag
    viewer.layers["tracks"].visible = True
    shot = viewer.screenshot(canvas_only=True, flash=False)
    iio.imwrite(tmp_path / "viewer_tracks.png", shot)
    assert _colour_pixels(shot, TAG_COLORS["fp"]) > 200

    # everything was saved as it happened: a reopened project has the same state
    again = Project.open(project.folder)
    assert again.annotations.equals(project.annotations)
