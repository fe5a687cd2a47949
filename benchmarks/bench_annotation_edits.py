"""Latency of one interactive edit (``Project.add_spot``) at 10 and 10,000 spots.

Compares, in one run, the edit journal (one fsynced append per edit; the default) with a
full rewrite of the GEFF store after every edit (how projects saved edits before the
journal; forced here with ``COMPACT_EVERY = 0``). Prints a table of median milliseconds per
edit and writes ``benchmarks/results/annotation_edits.json``.

Usage: ``python benchmarks/bench_annotation_edits.py [--edits 20]``
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

import celltrack.project.project as project_module
from celltrack.project import Project


def _median_edit_ms(project: Project, rng: np.random.Generator, edits: int) -> float:
    times = []
    for _ in range(edits):
        position = rng.uniform(0.0, 14.0, 3)
        start = time.perf_counter()
        project.add_spot(int(rng.integers(5)), position, radius_um=2.0)
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def measure(spots: int, edits: int, journal: bool, seed: int = 0) -> float:
    """Median ms per ``add_spot`` on a project that already holds ``spots`` spots."""
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        movie = np.zeros((5, 8, 64, 64), np.uint16)
        project = Project.create(Path(tmp) / "p", movie, voxel_size=(2.0, 1.0, 1.0))
        with project.batch():
            for k in range(0, spots, 100):
                n = min(100, spots - k)
                project.add_spots(k % 5, rng.uniform(0.0, 14.0, (n, 3)), radius_um=2.0)
        saved = project_module.COMPACT_EVERY
        project_module.COMPACT_EVERY = saved if journal else 0
        try:
            return _median_edit_ms(project, rng, edits)
        finally:
            project_module.COMPACT_EVERY = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=20, help="edits timed per setting")
    args = parser.parse_args()
    rows = []
    for spots in (10, 10_000):
        before = measure(spots, args.edits, journal=False)
        after = measure(spots, args.edits, journal=True)
        rows.append({"spots": spots, "rewrite_ms": before, "journal_ms": after,
                     "speedup": before / after})
    print(f"{'spots':>7} {'full rewrite ms':>16} {'journal ms':>11} {'speed-up':>9}")
    for r in rows:
        print(f"{r['spots']:>7} {r['rewrite_ms']:>16.1f} {r['journal_ms']:>11.1f} "
              f"{r['speedup']:>8.0f}x")
    out = Path(__file__).parent / "results" / "annotation_edits.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
