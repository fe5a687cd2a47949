"""Imports cost what they use: the light entry points load no heavy dependency."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = (
    "torch", "ortools", "pandas", "scipy.spatial", "scipy.sparse", "scipy.optimize",
    "matplotlib", "zarr", "tifffile", "geff", "networkx", "dask", "yaml",
)


def _loaded_after(code: str) -> set[str]:
    probe = f"import sys; {code}; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize(
    "code",
    [
        "import celltrack",
        "import celltrack.graph",
        "from celltrack.graph import TrackGraph, build_candidates",
        "from celltrack import load_config, save_config, Config",
    ],
)
def test_light_imports_load_nothing_heavy(code):
    assert _loaded_after(code) == set()


def test_building_a_graph_and_its_tracklets_loads_only_scipy_sparse():
    code = (
        "from celltrack.graph import TrackGraph; "
        "g = TrackGraph({'id': [0, 1], 't': [0, 1], 'z': [0., 0], 'y': [0., 0], 'x': [0., 0]},"
        " {'source': [0], 'target': [1]}); g.tracklets()"
    )
    assert _loaded_after(code) == {"scipy.sparse"}


def test_the_dask_executor_without_the_extra_names_the_install(monkeypatch):
    from celltrack.errors import DependencyError
    from celltrack.solve.blockwise.executors import DaskExecutor

    monkeypatch.setitem(sys.modules, "distributed", None)  # as if not installed
    with pytest.raises(DependencyError, match=r"celltrack\[dask\]"):
        DaskExecutor("tcp://127.0.0.1:1")
