"""The example scripts and the quickstart notebook run end to end on tiny settings."""

from __future__ import annotations

import ast
import json
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _main(name: str):
    return runpy.run_path(str(EXAMPLES / name))["main"]


@pytest.fixture(autouse=True)
def _one_thread():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_quickstart(tmp_path, capsys):
    from celltrack.io.geff_io import read_geff
    from celltrack.project import Project

    assert _main("quickstart.py")(["--tiny", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "round 1" in out and "TRA" in out
    project = Project.open(tmp_path / "embryo.ctproj")
    counts = project.tag_counts()
    assert counts["tp"] + counts["fn"] >= 5 and counts["fp"] + counts["tp"] > 0
    assert read_geff(tmp_path / "tracks.geff").equals(project.tracks, columns=False)
    assert (project.folder / "models" / "detection.pt").is_file()


def test_train_own_data_demo(tmp_path, capsys):
    from celltrack.io.ctc import read_ctc
    from celltrack.io.geff_io import read_geff

    assert _main("train_own_data.py")(["--demo", "--tiny", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "against the truth" in out
    assert (tmp_path / "demo" / "movie.tif").is_file()
    assert (tmp_path / "demo" / "spots.csv").is_file()
    assert (tmp_path / "detection.pt").is_file()
    tracks = read_geff(tmp_path / "tracks.geff")
    assert read_ctc(tmp_path / "01_RES").num_nodes == tracks.num_nodes
    with pytest.raises(SystemExit):
        _main("train_own_data.py")(["--out", str(tmp_path)])  # neither data nor --demo


def test_link_only_ilp_runs_without_torch(tmp_path):
    code = (
        "import runpy, sys\n"
        f"main = runpy.run_path({str(EXAMPLES / 'link_only_ilp.py')!r})['main']\n"
        f"assert main(['--demo', '--tiny', '--out', {str(tmp_path)!r}]) == 0\n"
        "assert 'torch' not in sys.modules, 'linking alone must not import torch'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "ilp: optimal" in done.stdout and "ilp    vs truth" in done.stdout
    assert (tmp_path / "tracks.geff").is_dir() and (tmp_path / "detections.csv").is_file()


def test_blockwise_dask_matches_the_whole_graph(capsys):
    pytest.importorskip("distributed")
    assert _main("blockwise_dask.py")(["--tiny"]) == 0
    out = capsys.readouterr().out
    line = next(s for s in out.splitlines() if s.startswith("agreement"))
    shared, total = (int(v) for v in line.split(":")[1].split("links")[0].split(" of "))
    assert total > 0 and shared >= 0.95 * total


def test_quickstart_notebook_is_valid_and_runs(tmp_path, monkeypatch):
    nb = json.loads((EXAMPLES / "quickstart.ipynb").read_text(encoding="utf-8"))
    assert nb["nbformat"] == 4 and nb["metadata"]["kernelspec"]["language"] == "python"
    code_cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert len(code_cells) >= 5
    for cell in nb["cells"]:
        assert {"cell_type", "metadata", "source", "id"} <= set(cell)
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
    source = "\n".join("".join(c["source"]) for c in code_cells)
    ast.parse(source)
    assert "TINY = True" in source
    monkeypatch.setattr("tempfile.mkdtemp", lambda *a, **k: str(tmp_path))
    namespace: dict = {}
    for cell in code_cells:
        exec(compile("".join(cell["source"]), "quickstart.ipynb", "exec"), namespace)
    assert namespace["again"].tracks is not None
    assert (tmp_path / "tracks.geff").is_dir() and (tmp_path / "ctc").is_dir()
