"""Package boundaries: flow never imports detect; the stage configs never import torch."""

import ast
import subprocess
import sys
from pathlib import Path

import celltrack

ROOT = Path(celltrack.__file__).parent


def _imports(folder):
    for path in sorted((ROOT / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                yield path.name, node.module
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    yield path.name, alias.name


def test_flow_does_not_import_detect():
    bad = [(f, m) for f, m in _imports("flow") if m.startswith("celltrack.detect")]
    assert not bad, bad


def test_nn_imports_neither_stage():
    stages = ("celltrack.detect", "celltrack.flow")
    bad = [(f, m) for f, m in _imports("nn") if m.startswith(stages)]
    assert not bad, bad


def test_stage_configs_import_without_torch():
    code = (
        "import sys, celltrack.config.detection, celltrack.config.flow, celltrack.config.nn, "
        "celltrack.config.indicator, celltrack.config.movement, celltrack.config.stages, "
        "celltrack.config.pipeline, celltrack.model_kinds; "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_no_global_seeding_and_no_private_movie_helpers():
    for folder in ("nn", "detect", "flow"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text()
            for banned in ("torch.manual_seed(", "np.random.seed(", "def _as_movie"):
                assert banned not in text, f"{path.name} uses {banned}"
