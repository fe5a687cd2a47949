"""The plugin as napari finds it, and the core library without it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_manifest_is_valid_and_names_importable_contributions():
    import npe2

    import celltrack.napari

    path = Path(celltrack.napari.__file__).with_name("napari.yaml")
    manifest = npe2.PluginManifest.from_file(path)
    commands = {c.id: c.python_name for c in manifest.contributions.commands}
    assert set(commands) == {"celltrack.widget", "celltrack.sample_embryo"}
    for python_name in commands.values():
        module, name = python_name.split(":")
        assert callable(getattr(__import__(module, fromlist=[name]), name))


def test_installed_entry_point_finds_the_manifest():
    from importlib.metadata import entry_points

    (ep,) = [e for e in entry_points(group="napari.manifest") if e.name == "celltrack"]
    assert ep.value == "celltrack.napari:napari.yaml"


def test_core_works_without_napari_and_the_plugin_says_what_to_install():
    block = "import sys; sys.modules['napari'] = None; sys.modules['qtpy'] = None; "
    core = "import celltrack, celltrack.project, celltrack.pipeline, celltrack.cli; print('ok')"
    out = subprocess.run([sys.executable, "-c", block + core], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
    plugin = (
        "from celltrack.errors import DependencyError\n"
        "try:\n    import celltrack.napari.widget\nexcept DependencyError as e:\n    print(e)"
    )
    out = subprocess.run(
        [sys.executable, "-c", block + "\n" + plugin], capture_output=True, text=True
    )
    assert 'pip install "celltrack[napari]"' in out.stdout, out.stderr


def test_sample_data_is_a_scaled_movie():
    from celltrack.napari.sample import synthetic_embryo

    ((data, kwargs, kind),) = synthetic_embryo()
    assert kind == "image" and data.ndim == 4
    assert kwargs["scale"] == (1.0, 2.0, 1.0, 1.0)
