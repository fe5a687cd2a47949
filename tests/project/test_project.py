"""Project: folder layout, resuming, editing, crash safety, the train/predict/link cycle."""

from __future__ import annotations

import json

import numpy as np
import pytest

from celltrack.errors import CelltrackError, FormatError, GraphError, InvalidInputError, ShapeError
from celltrack.io.geff_io import read_geff
from celltrack.project import Project, ProjectConfig
from celltrack.project import storage as storage_mod


def test_create_writes_a_complete_folder_and_open_resumes(project, tiny_data):
    folder = project.folder
    manifest = json.loads((folder / "project.json").read_text())
    assert manifest["format"] == "celltrack-project" and manifest["frame"] == 0
    assert manifest["shape"] == list(tiny_data.image.shape)
    assert manifest["voxel_size"] == tiny_data.voxel_size.tolist()
    assert manifest["images"]["stored"] and (folder / "images.zarr").is_dir()
    assert (folder / "annotations.geff").is_dir() and manifest["celltrack_version"]
    np.testing.assert_array_equal(project.images[2], tiny_data.image[2])

    project.frame = 2
    ids = project.add_spots(1, [[4.0, 10.0, 10.0], [6.0, 20.0, 30.0]], radius_um=[2.0, 3.0])
    again = Project.open(folder)
    assert again.frame == 2 and again.config == project.config
    assert again.annotations.equals(project.annotations)
    assert again.spots(1).ids.tolist() == ids.tolist()
    with pytest.raises(InvalidInputError, match=r"Project\.open"):
        Project.create(folder, tiny_data.image, voxel_size=tiny_data.voxel_size)
    with pytest.raises(FormatError, match="not a celltrack project"):
        Project.open(folder / "images.zarr")


def test_create_from_a_file_and_from_a_pipeline_like_config(tmp_path, tiny_data, fast_config):
    import tifffile

    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, tiny_data.image, imagej=True, metadata={"axes": "TZYX"})

    from celltrack.pipeline import PipelineConfig

    fast = fast_config(linker={"kind": "greedy"})
    pipeline = PipelineConfig(
        detection=fast.detection, motion=fast.motion, candidates=fast.candidates, linker=fast.linker
    )
    p = Project.create(tmp_path / "q", path, voxel_size=tiny_data.voxel_size, config=pipeline)
    assert p.shape == tiny_data.image.shape and not (p.folder / "images.zarr").exists()
    assert p.config.detection == fast.detection and p.config.linker.kind == "greedy"
    np.testing.assert_array_equal(Project.open(p.folder).images[1], tiny_data.image[1])
    # a 3-D array is 2D+t (T, Y, X) here as everywhere (celltrack.io.as_movie)
    flat = Project.create(tmp_path / "r", tiny_data.image[:, 0], voxel_size=(1, 1, 1))
    assert flat.shape == (tiny_data.image.shape[0], 1, *tiny_data.image.shape[2:])
    np.testing.assert_array_equal(Project.open(flat.folder).images[1][0], tiny_data.image[1, 0])
    with pytest.raises(ShapeError, match="2D"):
        Project.create(tmp_path / "r2", np.zeros((4, 4)), voxel_size=(1, 1, 1))
    with pytest.raises(InvalidInputError, match="voxel_size"):
        Project.create(tmp_path / "s", tiny_data.image)


def test_spot_editing_rules_and_errors(project):
    a, b = project.add_spots(0, [[4.0, 10.0, 10.0], [4.0, 30.0, 30.0]], radius_um=3.0)
    c = project.add_spot(1, (4.0, 11.0, 10.0), covariance=np.diag([9.0, 4.0, 4.0]))
    g = project.annotations
    assert g.nodes["tag"].tolist() == ["fn", "fn", "fn"]  # hand-made spots are misses
    np.testing.assert_allclose(g.nodes["covariance"][0], np.eye(3) * 9.0)
    np.testing.assert_allclose(g.nodes["covariance"][2], np.diag([9.0, 4.0, 4.0]))

    project.proofread([a], "reject")
    project.proofread(b, "accept")
    project.move_spot(c, (4.0, 12.0, 10.0), radius_um=2.0)
    g = project.annotations
    assert dict(zip(g.ids.tolist(), g.nodes["tag"].tolist())) == {a: "fp", b: "tp", c: "fn"}
    assert g.nodes["y"][g.index_of([c])[0]] == 12.0
    np.testing.assert_allclose(g.nodes["covariance"][2], np.eye(3) * 4.0)

    project.add_link(b, c)
    project.remove_spots([b])
    g = project.annotations
    assert g.ids.tolist() == [a, c] and g.num_edges == 0
    assert project.add_spot(0, (4.0, 40.0, 40.0)) == c + 1  # ids are never reused

    with pytest.raises(InvalidInputError, match="outside the image"):
        project.add_spot(0, (4.0, 10.0, 480.0))
    with pytest.raises(InvalidInputError, match="frame"):
        project.add_spot(7, (4.0, 10.0, 10.0))
    with pytest.raises(InvalidInputError, match="tag"):
        project.add_spot(0, (4.0, 10.0, 10.0), tag="maybe")
    with pytest.raises(InvalidInputError, match="radius"):
        project.add_spot(0, (4.0, 10.0, 10.0), radius_um=-1.0)
    with pytest.raises(InvalidInputError, match="positive definite"):
        project.add_spot(0, (4.0, 10.0, 10.0), covariance=-np.eye(3))
    with pytest.raises(GraphError, match="not in the graph"):
        project.proofread([999], "accept")
    with pytest.raises(InvalidInputError, match="accept"):
        project.proofread([a], "approve")
    assert project.annotations.num_nodes == 3  # failed calls changed nothing


def test_link_editing_keeps_a_forest_of_approved_links(project):
    p0, p1 = project.add_spots(0, [[4.0, 10.0, 10.0], [4.0, 30.0, 30.0]])
    c0, c1, c2 = project.add_spots(1, [[4.0, 10.0, 11.0], [4.0, 30.0, 31.0], [4.0, 20.0, 20.0]])
    project.add_link(p0, c0, approved=False)
    project.add_link(p1, c0)  # replaces the unapproved link into c0
    g = project.annotations
    assert list(zip(g.edges["source"], g.edges["target"], g.edges["approved"])) == [(p1, c0, True)]
    with pytest.raises(GraphError, match="approved parent"):
        project.add_link(p0, c0)
    with pytest.raises(GraphError, match="forward in time"):
        project.add_link(c1, p0)
    project.add_link(p0, c1, approved=False)
    with pytest.raises(GraphError, match="add_link"):
        project.approve_links([(p0, c2)])
    project.approve_links([(p0, c1)])
    project.add_link(p0, c2)
    with pytest.raises(GraphError, match="two approved children"):
        project.add_link(p0, project.add_spot(1, (4.0, 40.0, 40.0)))
    project.approve_links([(p0, c2)], approved=False)
    project.remove_links([(p1, c0)])
    g = project.annotations
    got = sorted(
        zip(g.edges["source"].tolist(), g.edges["target"].tolist(), g.edges["approved"].tolist())
    )
    assert got == [(p0, c1, True), (p0, c2, False)]
    with pytest.raises(GraphError, match="do not exist"):
        project.remove_links([(p1, c0)])


def test_a_failed_write_never_loses_annotations(project, monkeypatch):
    import geff.core_io

    import celltrack.project.journal as journal_mod

    first = project.add_spots(0, [[4.0, 10.0, 10.0], [4.0, 20.0, 20.0]])
    before = project.annotations

    def disk_full(fd):
        raise OSError("disk full")

    monkeypatch.setattr(journal_mod.os, "fsync", disk_full)  # the journal append fails
    with pytest.raises(OSError, match="disk full"):
        project.add_spot(0, (4.0, 30.0, 30.0))
    with pytest.raises(OSError, match="disk full"):
        project.proofread(first, "accept")
    assert project.annotations.equals(before)  # memory unchanged too
    monkeypatch.undo()
    real = geff.core_io.write_arrays

    def crash_midway(path, *args, **kwargs):
        real(path, *args, **kwargs)  # the temporary store is complete ...
        raise OSError("disk full")  # ... then the process fails before the rename

    monkeypatch.setattr(geff.core_io, "write_arrays", crash_midway)
    with pytest.raises(OSError, match="disk full"):
        project.save()  # compaction fails: the journal keeps every edit
    monkeypatch.undo()
    leftovers = [p.name for p in project.folder.iterdir() if p.name.startswith(".")]
    assert leftovers == []
    reopened = Project.open(project.folder)
    assert reopened.annotations.equals(before)
    assert reopened.annotations.nodes["tag"].tolist() == ["fn", "fn"]


def test_an_interrupted_folder_swap_is_recovered_on_open(project):
    project.add_spots(0, [[4.0, 10.0, 10.0]])
    saved = project.annotations
    final = project.folder / "annotations.geff"
    # a crash between "move the old store aside" and "move the new one in"
    final.rename(project.folder / ".annotations.geff.old-1234abcd")
    (project.folder / ".annotations.geff.tmp-99999999").mkdir()  # incomplete new store
    reopened = Project.open(project.folder)
    assert reopened.annotations.equals(saved)
    assert sorted(p.name for p in project.folder.iterdir() if p.name.startswith(".")) == []
    assert storage_mod.recover(final) is False


def test_config_round_trips_through_the_manifest(project, fast_config):
    cfg = fast_config(linker={"kind": "ilp", "time_limit_s": 5.0})
    project.set_config(cfg)
    reopened = Project.open(project.folder)
    assert reopened.config == cfg and reopened.config.linker.kind == "ilp"
    assert isinstance(reopened.config, ProjectConfig)


def test_train_predict_proofread_cycle(project, tiny_data, monkeypatch, gt_frame):
    from celltrack.detect import DetectionTrainer

    with pytest.raises(CelltrackError, match="train_detection"):
        project.predict(0)
    with pytest.raises(InvalidInputError, match="reviewed spots"):
        project.train_detection(frame=0)
    pos, cov, _ = gt_frame(tiny_data, 0)
    project.add_spots(0, pos[:3], covariance=cov[:3])
    project.add_spots(1, pos[3:4], covariance=cov[3:4], tag="unlabeled")

    seen = []
    real = DetectionTrainer.incremental

    def spy(self, image, annotations, **kwargs):
        seen.append(annotations.nodes["tag"].tolist())
        return real(self, image, annotations, **kwargs)

    monkeypatch.setattr(DetectionTrainer, "incremental", spy)
    info = project.train_detection(frame=0)
    assert info["mode"] == "incremental" and info["steps"] == 2 and np.isfinite(info["loss"])
    assert seen == [["fn", "fn", "fn"]]  # never 'unlabeled'
    assert (project.folder / "models" / "detection.pt").is_file()

    spots = project.predict(0)
    stats = project.last_predict_stats
    assert spots.num_nodes == 3 + stats["added"] and stats["suppressed"] >= stats["matched"]
    tags = np.asarray(spots.nodes["tag"])
    assert np.count_nonzero(np.isin(tags, ["tp", "fn"])) == 3  # re-checked, never lost
    assert np.count_nonzero(tags == "tp") == stats["matched"]
    assert set(tags[spots.ids >= 4].tolist()) <= {"unlabeled"}
    # frame 1 untouched
    assert project.spots(1).nodes["tag"].tolist() == ["unlabeled"]

    new = spots.ids[np.asarray(spots.nodes["tag"]) == "unlabeled"]
    if new.size:
        project.proofread(new[:1], "reject")
    # predictions are deterministic and a reopened project loads the saved model
    again = Project.open(project.folder)
    pred_a = project.predict(0)
    pred_b = again.predict(0)
    assert pred_a.equals(pred_b)
    if new.size:
        rejected = pred_a.subgraph(nodes=pred_a.ids == new[0])
        assert rejected.nodes["tag"].tolist() in (["fp"], ["tn"])

    info = project.train_detection(incremental=False, epochs=1)
    assert info["mode"] == "batch" and info["steps"] >= 1


def test_flow_training_and_linking_with_every_linker(project, tiny_data):
    gt = tiny_data.gt
    with pytest.raises(InvalidInputError, match="approve"):
        project.train_flow()
    sub = gt.subgraph(nodes=gt.t < 3)
    sub.set_node_column("tag", np.full(sub.num_nodes, "tp"))
    sub.set_edge_column("approved", np.arange(sub.num_edges) < 2)
    ids = project.add_annotations(sub)
    src, tgt = sub.edge_index()
    gt_edges = list(zip(ids[src].tolist(), ids[tgt].tolist()))
    approved = gt_edges[:2]
    rejected = project.add_spot(1, (4.0, 1.0, 1.0), tag="fp")

    info = project.train_flow()
    assert info["links"] == 2 and info["epochs"] == 1
    assert (project.folder / "models" / "flow.pt").is_file()
    assert not (project.folder / "models" / ".flow.partial.pt").exists()

    truth = set(gt_edges)
    # (the tiny movie is all border: make track starts cost something everywhere)
    linkers = {
        "greedy": "greedy",
        "ilp": {"kind": "ilp", "border_distance_um": 0.0},
        "flow_nn": "flow_nn",
    }
    for kind, linker in linkers.items():
        result = project.link(linker, use_flow=kind == "flow_nn")
        tracks = result.graph
        pairs = set(zip(tracks.edges["source"].tolist(), tracks.edges["target"].tolist()))
        assert set(approved) <= pairs, kind  # approved links are kept
        assert rejected not in tracks.ids, kind  # rejected spots are no cells
        assert len(pairs & truth) >= 0.8 * len(truth), kind  # true positions link well
        tracks.validate(forest=True)
        if kind == "flow_nn":
            assert "parent_z" in tracks.nodes  # the flow model fed the linker
    # the links land in the annotations, non-approved, ready for approval
    g = project.annotations
    ann_pairs = dict(
        zip(
            zip(g.edges["source"].tolist(), g.edges["target"].tolist()),
            g.edges["approved"].tolist(),
        )
    )
    assert all(ann_pairs[p] for p in approved)
    assert set(ann_pairs) == pairs
    assert read_geff(project.folder / "tracks.geff").equals(project.tracks)
    assert Project.open(project.folder).tracks.equals(project.tracks)


def test_blockwise_link_and_export(project, tiny_data, tmp_path, gt_frame):
    from celltrack.io.annotations import read_annotations
    from celltrack.io.ctc import read_ctc
    from celltrack.solve import BlockwiseConfig

    with pytest.raises(CelltrackError, match="link"):
        project.export(tmp_path / "x.geff")
    for t in range(4):
        p, c, _ = gt_frame(tiny_data, t)
        project.add_spots(t, p, covariance=c, tag="tp")
    whole = project.link(kind="greedy")
    blocks = project.link(
        "greedy",
        blockwise=BlockwiseConfig(
            block_size=(2, None, None, None),
            context=(2, None, None, None),
            executor="serial",
            progress=False,
        ),
    )
    assert blocks.graph.num_edges == whole.graph.num_edges
    assert blocks.graph.equals(whole.graph, columns=False)

    geff = project.export(tmp_path / "tracks.geff")
    assert read_geff(geff).equals(project.tracks, columns=False)
    ctc = project.export(tmp_path / "ctc", format="ctc")
    back = read_ctc(ctc, voxel_size=tiny_data.voxel_size)
    assert back.num_nodes == project.tracks.num_nodes
    csv = project.export(tmp_path / "ann.csv", what="annotations")
    assert read_annotations(csv).num_nodes == project.annotations.num_nodes
    with pytest.raises(InvalidInputError, match="format"):
        project.export(tmp_path / "tracks.xyz")


def test_batch_saves_once_and_add_annotations_imports_a_graph(project, monkeypatch):
    from celltrack.graph import TrackGraph

    calls = []
    real = storage_mod.save_graph
    monkeypatch.setattr(storage_mod, "save_graph", lambda g, p: calls.append(p) or real(g, p))
    with project.batch():
        a = project.add_spot(0, (4.0, 10.0, 10.0))
        b = project.add_spot(1, (4.0, 11.0, 10.0))
        project.add_link(a, b)
        assert calls == []  # nothing written inside the block
    assert len(calls) == 1
    assert Project.open(project.folder).annotations.equals(project.annotations)
    with pytest.raises(RuntimeError, match="oops"), project.batch():
        project.proofread([a], "accept")
        raise RuntimeError("oops")
    assert Project.open(project.folder).annotations.nodes["tag"].tolist() == ["tp", "fn"]

    imported = TrackGraph(
        {
            "id": [7, 9, 11],
            "t": [0, 1, 2],
            "z": [4.0] * 3,
            "y": [20.0, 21.0, 22.0],
            "x": [30.0] * 3,
        },
        {"source": [7, 9], "target": [9, 11]},
    )
    ids = project.add_annotations(imported)
    assert ids.tolist() == [b + 1, b + 2, b + 3]
    g = project.annotations
    new = g.subgraph(nodes=ids)
    assert new.nodes["tag"].tolist() == ["fn"] * 3 and new.edges["approved"].tolist() == [True] * 2
    np.testing.assert_allclose(new.nodes["covariance"][0], np.eye(3) * 9.0)  # 3 µm spheres
    with pytest.raises(InvalidInputError, match="frames"):
        project.add_annotations(TrackGraph.from_positions([9], [[0.0, 0.0, 0.0]]))


def test_nodes_made_by_the_linker_get_fresh_ids(project):
    a = project.add_spot(0, (4.0, 20.0, 20.0), tag="tp")
    b = project.add_spot(2, (4.0, 22.0, 20.0), tag="tp")
    c = project.add_spot(1, (4.0, 40.0, 40.0), tag="fp")  # id max(a, b) + 1: a trap
    result = project.link(
        {"kind": "flow_nn", "search_depth_frames": 2, "interpolate": True}, use_flow=False
    )
    tracks = result.graph
    made = tracks.ids[np.asarray(tracks.nodes["interpolated"], bool)]
    assert made.size == 1 and made[0] not in (a, b, c)
    assert sorted(zip(tracks.edges["source"].tolist(), tracks.edges["target"].tolist())) == [
        (a, int(made[0])),
        (int(made[0]), b),
    ]
    g = project.annotations
    tags = dict(zip(g.ids.tolist(), g.nodes["tag"].tolist()))
    assert tags == {a: "tp", b: "tp", c: "fp", int(made[0]): "unlabeled"}
    assert g.num_edges == 2 and project.add_spot(0, (4.0, 5.0, 5.0)) == int(made[0]) + 1


def test_project_presets_fill_the_keys_not_set(tmp_path, tiny_data):
    from celltrack.config.flow import FlowConfig
    from celltrack.detect import DetectionConfig
    from celltrack.pipeline import PipelineConfig

    assert ProjectConfig().detection == DetectionConfig.cpu()  # 'auto': as before, any machine
    gpu = Project.create(
        tmp_path / "p",
        tiny_data.image,
        voxel_size=tiny_data.voxel_size,
        config={"preset": "default", "detection": {"train": {"epochs": 2}}},
    )
    assert gpu.config.detection.model.preset == "default" and gpu.config.motion == FlowConfig()
    assert gpu.config.detection.train.epochs == 2  # the key set wins
    assert Project.open(gpu.folder).config == gpu.config  # resolved once, stored as resolved
    # a pipeline config's explicit preset comes along; its sections given whole stay
    cpu = Project.create(
        tmp_path / "q",
        tiny_data.image,
        voxel_size=tiny_data.voxel_size,
        config=PipelineConfig(preset="cpu"),
    )
    assert cpu.config.preset == "cpu" and cpu.config.detection == DetectionConfig.cpu()


def test_classical_kind_needs_no_training(project, caplog):
    from celltrack.detect import DetectionConfig

    det = DetectionConfig.cpu().model_copy(update={"kind": "classical"})
    project.set_config(project.config.model_copy(update={"detection": det}))
    caplog.set_level("INFO", logger="celltrack.project")
    info = project.train_detection(frame=0)  # no reviewed spots: still no error
    assert info["mode"] == "classical" and info["steps"] == 0
    assert "needs no training" in caplog.text and project.detection_model is None
    pytest.importorskip("celltrack.detect.classical")
    spots = project.predict(1)
    assert spots.num_nodes > 0 and set(spots.nodes["tag"].tolist()) == {"unlabeled"}
    assert project.last_predict_stats and project.detection_model is None
