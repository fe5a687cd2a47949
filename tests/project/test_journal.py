"""The edit journal: every edit durable in one fsynced append, replayed exactly, crash-safe."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from celltrack.errors import FormatError
from celltrack.project import Project, storage
from celltrack.project import journal as journal_mod


def _edit_mix(project: Project) -> None:
    a, b, c = project.add_spots(0, [[4.0, 10.0, 10.0], [4.0, 20.0, 20.0], [4.0, 30.0, 12.0]])
    (d,) = project.add_spots(1, [[4.0, 11.0, 10.0]], radius_um=2.5)
    project.proofread([a], "reject")
    project.add_link(b, d)
    project.move_spot(c, (4.0, 31.0, 13.0))
    project.remove_spots([c])
    project.approve_links([(b, d)], approved=False)


def test_edits_append_to_the_journal_and_leave_the_store_alone(project):
    store = project.folder / storage.ANNOTATIONS
    stamp = sorted((p.name, p.stat().st_mtime_ns) for p in store.rglob("*"))
    _edit_mix(project)
    assert sorted((p.name, p.stat().st_mtime_ns) for p in store.rglob("*")) == stamp
    lines = (project.folder / storage.JOURNAL).read_text().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == list(range(1, 8))


def test_reopening_replays_every_edit_exactly_then_compacts(project):
    _edit_mix(project)
    expected = project.annotations
    reopened = Project.open(project.folder)
    assert reopened.annotations.equals(expected)
    assert reopened.annotations.nodes["tag"].tolist() == expected.nodes["tag"].tolist()
    assert not (project.folder / storage.JOURNAL).exists()  # folded into the store
    assert Project.open(project.folder).annotations.equals(expected)


def test_a_torn_last_line_is_ignored_and_a_damaged_one_is_reported(project):
    project.add_spots(0, [[4.0, 10.0, 10.0]])
    saved = project.annotations
    path = project.folder / storage.JOURNAL
    with open(path, "ab") as fh:
        fh.write(b'{"seq": 2, "del_nodes": [')  # a kill in the middle of an append
    assert Project.open(project.folder).annotations.equals(saved)
    project = Project.open(project.folder)
    project.add_spots(0, [[4.0, 20.0, 20.0]])
    project.add_spots(0, [[4.0, 30.0, 30.0]])
    lines = path.read_bytes().split(b"\n")
    path.write_bytes(b"\n".join([lines[0][:10], *lines[1:]]))
    with pytest.raises(FormatError, match=r"line 1 is not a valid edit.*move it away"):
        Project.open(project.folder)


def test_a_kill_between_compaction_and_clearing_replays_nothing_twice(project, monkeypatch):
    _edit_mix(project)
    expected = project.annotations
    monkeypatch.setattr(journal_mod.EditJournal, "clear", lambda self: None)
    project.save()  # the store now holds every edit, but the journal still lists them
    monkeypatch.undo()
    assert (project.folder / storage.JOURNAL).exists()
    assert Project.open(project.folder).annotations.equals(expected)


def test_compaction_every_n_edits_and_on_column_changes(project, monkeypatch):
    monkeypatch.setattr("celltrack.project.project.COMPACT_EVERY", 3)
    for k in range(7):
        project.add_spots(0, [[4.0, 5.0 + 2 * k, 10.0]])
    lines = (project.folder / storage.JOURNAL).read_text().splitlines()
    assert len(lines) == 3  # compacted after the 3rd and the 6th edit... then one more
    assert Project.open(project.folder).annotations.equals(project.annotations)


def test_graph_delta_round_trips_random_edits():
    from celltrack.graph import TrackGraph

    rng = np.random.default_rng(3)
    n = 40
    old = TrackGraph(
        {"id": np.arange(n), "t": np.repeat([0, 1], n // 2), "z": rng.random(n), "y": rng.random(n),
         "x": rng.random(n), "score": np.where(rng.random(n) < 0.2, np.nan, rng.random(n))},
        {"source": np.arange(0, 20), "target": np.arange(20, 40), "approved": rng.random(20) < .5},
    ).sorted()
    for _ in range(20):
        keep = rng.random(n) < 0.9
        new = old.subgraph(nodes=keep)
        score = np.array(new.nodes["score"])
        score[rng.random(score.size) < 0.2] = rng.random()
        new.set_node_column("score", score)
        new = new.sorted()
        delta = journal_mod.graph_delta(old, new)
        replayed = journal_mod.apply_delta(old, json.loads(json.dumps(delta)))
        assert replayed.equals(new, atol=0) and replayed.attrs == new.attrs


_CHILD = textwrap.dedent(
    """
    import sys
    from celltrack.project import Project
    project = Project.open(sys.argv[1])
    for k in range(10_000):
        (new,) = project.add_spots(k % 3, [[4.0, 2.0 + (k % 40), 2.0 + (k // 40) % 40]])
        print(new, flush=True)  # printed only once the edit is durable
    """
)


@pytest.mark.parametrize("delay_s", [0.8, 1.6])
def test_sigkill_during_clicks_loses_no_returned_edit(project, delay_s):
    """A real SIGKILL at an arbitrary moment: every edit that returned survives."""
    project.save()
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(project.folder)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    time.sleep(delay_s)
    proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate(timeout=30)
    returned = [int(v) for v in out.split()]
    reopened = Project.open(project.folder)
    assert set(returned) <= set(reopened.annotations.ids.tolist())
    assert reopened.annotations.num_nodes <= len(returned) + 1  # at most the unreported one
    leftovers = [p.name for p in project.folder.iterdir() if p.name.startswith(".")]
    assert leftovers == []
