"""The README's benchmark tables are exactly what the benchmark scripts recorded.

``benchmarks/readme_rows.py`` renders them from the scripts' JSON; ``readme_results.json``
holds the JSON the README was last written from (``readme_numbers.py --write``).
"""

from __future__ import annotations

import json
import runpy
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(name="rows", scope="module")
def _rows():
    return runpy.run_path(str(ROOT / "benchmarks" / "readme_rows.py"))


def test_every_generated_table_in_the_readme_equals_the_recorded_results(rows):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    snapshot = rows["load_snapshot"](ROOT / "benchmarks" / "readme_results.json")
    for start, end, render, source in rows["TABLES"]:
        assert start in readme and end in readme, f"README lost the {start} markers"
        assert source is None or source in snapshot, f"readme_results.json lacks {source}"
        assert rows["readme_table"](readme, start, end) == render(snapshot).strip(), start


def test_each_benchmark_row_names_a_script_that_exists_and_a_recorded_result(rows):
    snapshot = rows["load_snapshot"](ROOT / "benchmarks" / "readme_results.json")
    table = rows["render_table"](snapshot)
    for row in rows["ROWS"]:
        assert (ROOT / "benchmarks" / row.script).is_file(), row.script
        line = next(li for li in table.splitlines() if li.startswith(f"| `{row.script}`"))
        assert "no result recorded" not in line, f"{row.script}: run it and --write"


def test_a_changed_result_fails_the_check_and_write_brings_the_readme_back_in_line(
    tmp_path, rows
):
    tool = runpy.run_path(str(ROOT / "benchmarks" / "readme_numbers.py"))
    readme = tmp_path / "README.md"
    shutil.copy(ROOT / "README.md", readme)
    snapshot = json.loads((ROOT / "benchmarks" / "readme_results.json").read_text())
    results = tmp_path / "results"
    results.mkdir()
    changed = snapshot["eval"] | {"speedup": 99.0}
    (results / "eval.json").write_text(json.dumps(changed))
    check = tool["check_tables"]
    check.__globals__["README"] = readme
    module = check.__globals__["readme_rows"]
    saved = module.SNAPSHOT
    module.SNAPSHOT = tmp_path / "readme_results.json"
    shutil.copy(saved, module.SNAPSHOT)
    try:
        assert check(False, results) == 1
        assert check(True, results) == 0
        assert "**99.0×**" in readme.read_text(encoding="utf-8")
        assert json.loads(module.SNAPSHOT.read_text())["eval"]["speedup"] == 99.0
        assert check(False, results) == 0
    finally:
        module.SNAPSHOT = saved


def test_the_readme_config_snippets_with_data_and_blockwise_are_valid_configs():
    import re

    import yaml

    from celltrack.config import config_from_dict
    from celltrack.config.pipeline import PipelineBlockwiseConfig, PipelineConfig

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    snippets = [s for s in re.findall(r"```yaml\n(.*?)```", readme, re.S) if "blockwise:" in s]
    assert snippets, "the README lost its blockwise example"
    for snippet in snippets:
        cfg = config_from_dict(yaml.safe_load(snippet), PipelineConfig)
        assert isinstance(cfg.blockwise, PipelineBlockwiseConfig)
        assert cfg.blockwise.predict.block_shape == (32, 128, 128)
