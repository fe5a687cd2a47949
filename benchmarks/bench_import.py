"""Import cost: ``import celltrack`` (and its light subpackages) against ``import numpy, pydantic``.

Each import runs in a fresh interpreter, ``--repeats`` times; the table gives the median wall
time and its ratio to the ``numpy, pydantic`` baseline, plus the heavy modules each import
pulled in (there should be none). Writes ``benchmarks/results/import.json``.

Usage: ``python benchmarks/bench_import.py [--repeats 15]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HEAVY = ("torch", "ortools", "pandas", "scipy.spatial", "scipy.sparse", "scipy.optimize",
         "matplotlib", "zarr", "tifffile", "geff", "networkx", "dask", "yaml")

TARGETS = {
    "numpy, pydantic (baseline)": "import numpy, pydantic",
    "celltrack": "import celltrack",
    "celltrack.graph": "import celltrack.graph",
    "celltrack.io": "import celltrack.io",
    "celltrack.eval": "import celltrack.eval",
    "celltrack.solve": "import celltrack.solve",
    "celltrack.config (all stage configs)": (
        "import celltrack.config; from celltrack.config import PipelineConfig; PipelineConfig()"
    ),
}


def _once(code: str) -> tuple[float, list[str]]:
    probe = (
        "import sys, time; t0 = time.perf_counter(); "
        f"{code}; dt = time.perf_counter() - t0; "
        f"print(dt); print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    lines = out.stdout.strip().splitlines()
    return float(lines[0]), [m for m in lines[1].split(",") if m] if len(lines) > 1 else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    rows = {}
    for name, code in TARGETS.items():
        times, heavy = [], []
        for _ in range(args.repeats):
            seconds, heavy = _once(code)
            times.append(seconds)
        rows[name] = {"median_s": statistics.median(times), "heavy_modules": heavy}
    base = rows["numpy, pydantic (baseline)"]["median_s"]
    print(f"{'import':<40} {'median ms':>10} {'× baseline':>11}  heavy modules loaded")
    for name, row in rows.items():
        row["ratio"] = row["median_s"] / base
        heavy = ", ".join(row["heavy_modules"]) or "none"
        print(f"{name:<40} {1e3 * row['median_s']:>10.1f} {row['ratio']:>11.2f}  {heavy}")
    out = Path(__file__).parent / "results" / "import.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
