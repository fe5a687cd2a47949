"""The example scripts and the quickstart notebook run end to end on tiny settings.

The tiny settings are not smoke tests: each must still find ≥ 80 % of the nuclei of its
own data (DET ≥ 0.8), which is checked here.
"""

from __future__ import annotations

import ast
import json
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _det(out: str) -> float:
    """The DET a script printed (``DET 0.xxx``)."""
    return float(re.findall(r"DET (\d\.\d+)", out)[-1])


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
    assert _det(out) >= 0.8, out
    assert "WARNING" not in out
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
    assert _det(out) >= 0.8, out
    assert "WARNING" not in out
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
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
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
    assert namespace["scores"].det >= 0.8, namespace["scores"]
    assert (tmp_path / "tracks.geff").is_dir() and (tmp_path / "ctc").is_dir()


def test_readme_demo_table_is_checked_by_readme_numbers(tmp_path):
    """The README's demo table sits between markers that benchmarks/readme_numbers.py
    compares with the demo's output (and regenerates with --write)."""
    root = EXAMPLES.parent
    tool = runpy.run_path(str(root / "benchmarks" / "readme_numbers.py"))
    readme = (root / "README.md").read_text(encoding="utf-8")
    quoted = tool["readme_block"](readme)
    lines = quoted.splitlines()
    assert lines[0].split() == ["greedy", "flow_nn", "ilp"]
    assert [line.split()[0] for line in lines[1:4]] == ["DET", "TRA", "LNK"]
    printed = quoted + "\nlinking time (s)   0.1  0.2  0.3\n\ntime per stage (s): detect 1.0\n"
    assert tool["score_rows"](printed) == quoted  # timings are not README numbers
    changed = quoted.replace("DET ", "DET*", 1)
    assert tool["readme_block"](tool["replace_block"](readme, changed)) == changed
    # --from DIR: a demo table unlike the README's fails the check, --write fixes a copy
    (tmp_path / "demo_table.txt").write_text(changed + "\n")
    readme_copy = tmp_path / "README.md"
    readme_copy.write_text(readme, encoding="utf-8")
    main = tool["main"]
    main.__globals__["README"] = readme_copy
    demo_only = ["--only", "demo"]
    assert main(["--from", str(tmp_path), *demo_only]) == 1
    assert main(["--from", str(tmp_path), "--write", *demo_only]) == 0
    assert tool["readme_block"](readme_copy.read_text(encoding="utf-8")) == changed
    assert main(["--from", str(tmp_path), *demo_only]) == 0
