"""Importing celltrack.io and celltrack.eval loads no heavy dependency before it is used."""

import json
import subprocess
import sys

# Loaded only inside the functions that need them. scipy.sparse was to be allowed while
# celltrack.graph imported it at the top; graph no longer does, so it is checked too.
HEAVY = (
    "tifffile",
    "zarr",
    "geff",
    "scipy.sparse",
    "scipy.optimize",
    "scipy.spatial",
    "networkx",
    "matplotlib",
    "pandas",
    "torch",
)


def _loaded_after(statement: str) -> list[str]:
    code = (
        f"import json, sys\n{statement}\n"
        f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_io_and_eval_import_no_heavy_dependency():
    assert _loaded_after("import celltrack.io, celltrack.eval") == []


def test_the_check_sees_a_heavy_import():
    # guards the test above against passing vacuously
    assert _loaded_after("import celltrack.io\nimport tifffile") == ["tifffile"]
