"""Latency of every interactive :class:`~celltrack.project.Project` edit (issue #16).

Set-up (not timed): a project on a small blank movie of 10 frames holding ``--spots``
spots (spread evenly over the frames, imported in one ``batch``) and a chain of
non-approved links between the first third of the spots of consecutive frames. Then each
edit kind a napari click triggers is timed ``--reps`` times on that project, in this
order: ``add_spot``, ``move_spot``, ``proofread`` accept, ``proofread`` reject,
``add_link``, ``approve_links``, ``remove_links``, ``remove_spots``, and (where the
project has them) ``undo`` and ``redo``. Every edit is durable (one fsynced journal
append) before the call returns; the timing is the call itself.

The table gives the median, p90 and max milliseconds per edit and the median's share of
the 10 ms budget. ``--busy`` keeps the other CPU cores busy with spinning processes while
timing (the "other core busy" case of the issue).

``--viewer`` also times the same clicks in a napari viewer through the plugin's
:class:`~celltrack.napari.session.ProjectSession`: the Project edit plus rebuilding the
spots layer from it (what a person waits for before the colour changes). It needs
``celltrack[napari]`` and a screen (``xvfb-run -a python benchmarks/bench_edits.py
--viewer`` on a machine without one).

Usage: ``python benchmarks/bench_edits.py [--spots 10000 ...] [--reps 30] [--busy]
[--viewer] [--name edits]``. Writes ``benchmarks/results/<name>.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_json

from celltrack.graph import TrackGraph
from celltrack.project import Project

BUDGET_MS = 10.0
FRAMES = 10
MOVIE = (FRAMES, 8, 64, 64)
VOXEL = (2.0, 1.0, 1.0)
EXTENT = np.array([(MOVIE[1] - 1) * VOXEL[0], MOVIE[2] - 1, MOVIE[3] - 1], float)


def _annotations(spots: int, rng: np.random.Generator) -> TrackGraph:
    """``spots`` spots over the frames, chained (spot k of frame t → spot k of t + 1)."""
    t = np.arange(spots) % FRAMES
    ids = np.arange(spots, dtype=np.int64)
    pos = rng.uniform(0.0, 1.0, (spots, 3)) * EXTENT
    per_frame = spots // FRAMES
    chained = per_frame // 3
    k = np.arange(chained)
    src = np.concatenate([k * FRAMES + f for f in range(FRAMES - 1)])
    nodes = {"id": ids, "t": t, "z": pos[:, 0], "y": pos[:, 1], "x": pos[:, 2]}
    edges = {"source": src, "target": src + 1}
    return TrackGraph(nodes, edges)


def build(folder: Path, spots: int, seed: int = 0) -> Project:
    """A project holding ``spots`` spots and their chain of non-approved links."""
    rng = np.random.default_rng(seed)
    project = Project.create(folder, np.zeros(MOVIE, np.uint16), voxel_size=VOXEL)
    project.add_annotations(_annotations(spots, rng), tag="unlabeled", approved=False)
    return project


def _unlinked_pairs(project: Project, n: int) -> list[tuple[int, int]]:
    """``n`` (parent, child) pairs of consecutive-frame spots that have no link yet."""
    g = project.annotations
    linked = np.isin(g.ids, np.concatenate([g.edges["source"], g.edges["target"]]))
    free = g.ids[~linked]
    t = g.t[~linked]
    parents, children = free[t == 0], free[t == 1]
    m = min(n, parents.size, children.size)
    return list(zip(parents[:m].tolist(), children[:m].tolist()))


def _edits(
    project: Project, reps: int, rng: np.random.Generator
) -> dict[str, Callable[[int], Any]]:
    """One callable per edit kind; call ``i`` does the i-th repetition."""
    g = project.annotations
    ids = g.ids.copy()
    rng.shuffle(ids)
    touched = ids[: 4 * reps]  # spots moved / proofread / removed: distinct per kind
    pairs = list(zip(g.edges["source"].tolist(), g.edges["target"].tolist()))
    order = rng.permutation(len(pairs))
    approve = [pairs[i] for i in order[:reps]]
    remove = [pairs[i] for i in order[reps : 2 * reps]]
    new_links = _unlinked_pairs(project, reps)
    edits: dict[str, Callable[[int], Any]] = {
        "add_spot": lambda i: project.add_spot(
            i % FRAMES, rng.uniform(0.0, 1.0, 3) * EXTENT, radius_um=2.0
        ),
        "move_spot": lambda i: project.move_spot(
            int(touched[i]), rng.uniform(0.0, 1.0, 3) * EXTENT
        ),
        "proofread accept": lambda i: project.proofread([int(touched[reps + i])], "accept"),
        "proofread reject": lambda i: project.proofread([int(touched[2 * reps + i])], "reject"),
        "add_link": lambda i: project.add_link(*new_links[i % len(new_links)]),
        "approve_links": lambda i: project.approve_links([approve[i]]),
        "remove_links": lambda i: project.remove_links([remove[i]]),
        "remove_spots": lambda i: project.remove_spots([int(touched[3 * reps + i])]),
    }
    if hasattr(project, "undo"):
        edits["undo"] = lambda i: project.undo()
        edits["redo"] = lambda i: project.redo()
    return edits


def _time(fn: Callable[[int], Any], reps: int) -> np.ndarray:
    times = np.empty(reps)
    for i in range(reps):
        start = time.perf_counter()
        fn(i)
        times[i] = time.perf_counter() - start
    return 1e3 * times


def measure(spots: int, reps: int, seed: int = 0) -> list[dict[str, Any]]:
    """Per edit kind: median / p90 / max ms over ``reps`` edits on a ``spots``-spot project."""
    rng = np.random.default_rng(seed)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        project = build(Path(tmp) / "p", spots, seed)
        for kind, fn in _edits(project, reps, rng).items():
            ms = _time(fn, reps)
            median = float(np.median(ms))
            rows.append(
                {
                    "spots": spots,
                    "edit": kind,
                    "median_ms": median,
                    "p90_ms": float(np.percentile(ms, 90)),
                    "max_ms": float(ms.max()),
                    "of_budget": median / BUDGET_MS,
                }
            )
    return rows


def measure_viewer(spots: int, reps: int, seed: int = 0) -> list[dict[str, Any]]:
    """Per click kind: ms for the Project edit plus the spots-layer rebuild in napari."""
    import napari

    from celltrack.napari.session import ProjectSession

    rng = np.random.default_rng(seed)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        project = build(Path(tmp) / "p", spots, seed)
        viewer = napari.Viewer(show=True)
        session = ProjectSession(viewer, project)
        layer = session.spots_layer

        def select(i: int) -> None:
            layer.selected_data = {int(i * 7 % len(session.ids))}

        clicks: dict[str, Callable[[int], Any]] = {
            "click: add nucleus": lambda i: layer.add(
                np.r_[i % FRAMES, rng.uniform(0.0, 1.0, 3) * EXTENT]
            ),
            "key a: accept": lambda i: (select(i), session.proofread_selected("accept")),
            "key r: reject": lambda i: (select(i + 1), session.proofread_selected("reject")),
            "delete selected": lambda i: (select(i + 2), layer.remove_selected()),
            "key u: undo": lambda i: session.undo(),
            "layer rebuild alone": lambda i: session.refresh_spots(),
        }
        for kind, fn in clicks.items():
            ms = _time(fn, reps)
            rows.append(
                {
                    "spots": spots,
                    "edit": f"viewer {kind}",
                    "median_ms": float(np.median(ms)),
                    "p90_ms": float(np.percentile(ms, 90)),
                    "max_ms": float(ms.max()),
                    "of_budget": float(np.median(ms)) / BUDGET_MS,
                }
            )
        viewer.close()
    return rows


def _spin() -> None:  # pragma: no cover - runs in a child process
    while True:
        pass


@contextlib.contextmanager
def busy(cores: int) -> Iterator[None]:
    """Keep ``cores`` CPU cores busy for the duration of the block."""
    procs = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(cores)]
    for p in procs:
        p.start()
    try:
        yield
    finally:
        for p in procs:
            p.terminate()
            p.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spots", type=int, nargs="+", default=[10_000],
                        help="spots in the project (e.g. 1000 10000 100000)")
    parser.add_argument("--reps", type=int, default=30, help="edits timed per kind (>= 30)")
    parser.add_argument("--busy", action="store_true",
                        help="keep all other CPU cores busy while timing")
    parser.add_argument("--viewer", action="store_true",
                        help="also time the clicks in a napari viewer (needs a screen)")
    parser.add_argument("--name", default="edits", help="results file name (without .json)")
    args = parser.parse_args()
    others = max((os.cpu_count() or 1) - 1, 1)
    rows: list[dict[str, Any]] = []
    with busy(others) if args.busy else contextlib.nullcontext():
        for spots in args.spots:
            rows += measure(spots, args.reps)
            if args.viewer:
                rows += measure_viewer(spots, args.reps)
    title = f"Project edit latency, ms ({args.reps} reps, budget {BUDGET_MS:g} ms"
    print_table(rows, title + (", other cores busy)" if args.busy else ")"))
    write_json(args.name, {"reps": args.reps, "busy": args.busy, "rows": rows})


if __name__ == "__main__":
    main()
