"""The napari plugin's tests: a real viewer on a virtual screen (pytest-xvfb starts Xvfb).

Without napari (the optional ``celltrack[napari]`` extra) these tests are skipped — unless
``CELLTRACK_REQUIRE_NAPARI=1`` (set by ``.ci/run``), which turns a missing napari, Qt or
screen into a failure, so CI cannot pass without running them.
"""

from __future__ import annotations

import os

import pytest
import torch

REQUIRED = os.environ.get("CELLTRACK_REQUIRE_NAPARI") == "1"

try:
    import napari  # noqa: F401
    import pytestqt  # noqa: F401
except ImportError:
    if REQUIRED:
        raise
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture
def viewer(make_napari_viewer):
    """A shown viewer (rendering needs a screen: pytest-xvfb's virtual one in CI)."""
    if not os.environ.get("DISPLAY") and not REQUIRED:
        pytest.skip("no screen: install Xvfb (pytest-xvfb starts it)")
    return make_napari_viewer(show=True)


@pytest.fixture(scope="module")
def tiny_movie():
    from celltrack.synth import SynthConfig, make_embryo

    torch.set_num_threads(1)
    return make_embryo(SynthConfig.tiny(n_frames=3))


@pytest.fixture
def tiny_project_config(fast_config):
    """A detection and flow setup that trains in seconds on the tiny movie (no prior)."""
    return lambda: fast_config(incremental_steps=100, prior=False)

