"""A 2D+t movie from a TYX TIFF: live training after a few clicks, edits during jobs."""

from __future__ import annotations

import numpy as np
import tifffile

from celltrack.napari.widget import CelltrackWidget

JOB_TIMEOUT_MS = 120_000


def test_live_training_on_a_2d_movie_and_edits_while_jobs_run(
    viewer, qtbot, tmp_path, tiny_movie, tiny_project_config
):
    movie = tiny_movie.image.max(axis=1)  # (T, Y, X): nuclei as discs
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, movie)
    widget = CelltrackWidget(viewer)
    session = widget.create_project(
        tmp_path / "p2d.ctproj", path, (1.0, 1.0, 1.0), axes="TYX", config=tiny_project_config()
    )
    project = session.project
    layer = session.spots_layer
    assert project.shape == (3, 1, 48, 48) and session.two_d
    assert layer.ndim == 3 and viewer.layers["movie"].data.shape == (3, 48, 48)

    widget.prior.setChecked(False)
    widget.live.setChecked(True)
    widget.live_every.setValue(3)
    yx = tiny_movie.gt.subgraph(nodes=tiny_movie.gt.t == 0).positions[:, 1:]
    for point in yx[:3]:  # the third click starts a live round: train, then predict frame 0
        layer.add(np.r_[0.0, point])
    assert widget.jobs.running == "live training"
    layer.add(np.r_[0.0, yx[3]])  # training reads a snapshot: clicking goes on meanwhile
    assert project.tag_counts(0)["fn"] + project.tag_counts(0)["tp"] == 4
    qtbot.waitUntil(lambda: widget.jobs.running is None, timeout=JOB_TIMEOUT_MS)
    assert widget.jobs.last_error is None, widget.jobs.last_error
    assert (project.folder / "models" / "detection.pt").is_file()
    assert project.last_predict_stats  # frame 0 was predicted and merged
    assert np.all(project.annotations.nodes["z"] == 0)
    assert len(layer.data) == project.annotations.num_nodes

    # while a job holds the annotations (prediction, linking), edits are refused and undone
    before = project.annotations
    with session.exclusive("prediction"):
        layer.add(np.r_[1.0, yx[0]])
    assert project.annotations.equals(before)
    assert len(layer.data) == before.num_nodes


def test_a_tracks_layer_from_another_tracker_is_imported_to_proofread(
    viewer, tmp_path, tiny_movie, tiny_project_config
):
    from celltrack.io import to_napari_tracks

    gt = tiny_movie.gt
    data, graph, _ = to_napari_tracks(gt, ndim=4)
    scale = (1.0, 2.0, 1.0, 1.0)  # another plugin's layer in voxels, scaled like the movie
    voxels = data.copy()
    voxels[:, 1:] /= scale
    viewer.add_tracks(voxels, graph=graph, name="trackastra", scale=scale)
    widget = CelltrackWidget(viewer)
    session = widget.create_project(
        tmp_path / "imp.ctproj", tiny_movie.image, tiny_movie.voxel_size,
        config=tiny_project_config(),
    )
    assert widget.tracks_layer.currentText() == "trackastra"
    assert widget.import_tracks("trackastra") == gt.num_nodes
    g = session.project.annotations
    assert g.num_nodes == gt.num_nodes and g.num_edges == gt.num_edges
    assert np.allclose(np.sort(g.positions, 0), np.sort(gt.positions, 0))  # µm, as the GT
    assert set(np.asarray(g.nodes["tag"]).astype(str)) == {"unlabeled"}
    assert not session.project.approved_links().num_edges  # links to proofread
    assert len(session.spots_layer.data) == gt.num_nodes and "links" in viewer.layers
    assert session.undo() and session.project.annotations.num_nodes == 0  # one step
