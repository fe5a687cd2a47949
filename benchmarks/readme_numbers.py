"""Regenerate or check every number the README quotes from the demo and the benchmarks.

Run ``python benchmarks/readme_numbers.py`` to run ``celltrack demo`` (seed 0, as the
README says), time it (wall and CPU seconds, with the machine's load), write
``benchmarks/results/readme_demo.json`` and compare the README's demo table (between the
``<!-- demo-table:start -->`` and ``<!-- demo-table:end -->`` markers) with what the demo
printed. Options:

``--write``
    Replace the README's demo table by the one just printed (do this in the same change
    that moves a number).
``--from DIR``
    Do not run the demo: read ``DIR/demo_table.txt`` of an earlier ``celltrack demo
    --out DIR``.
``--only demo`` / ``--only tables``
    Check (or write) only the demo table, or only the tables made from the benchmarks'
    JSON.

The README's benchmark table and its ASTEC and HeLa tables are rendered by
``benchmarks/readme_rows.py`` from the JSON the scripts write to ``benchmarks/results/``
(falling back, per result file, to ``benchmarks/readme_results.json``: the results the
README was last written from, committed so that ``tests/test_readme_numbers.py`` can check
the README against them). This script compares them with the README; ``--write`` replaces
them and updates ``readme_results.json``. It also lists the result files present and the
rows whose script has no result anywhere. Exit status 1 when a table differs (without
``--write``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # when run by runpy
import readme_rows

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RESULTS = Path(__file__).resolve().parent / "results"
START, END = "<!-- demo-table:start -->", "<!-- demo-table:end -->"


def score_rows(table: str) -> str:
    """The score lines of a demo table (header and metric rows, no timings)."""
    keep = []
    for line in table.splitlines():
        if not line.strip():
            break  # the blank line before "time per stage"
        if line.startswith("linking time"):
            continue  # machine-dependent: reported in the JSON, not in the README table
        keep.append(line.rstrip())
    return "\n".join(keep)


def readme_block(text: str) -> str:
    """The demo table the README quotes (between the markers, without the code fence)."""
    if START not in text or END not in text:
        raise SystemExit(f"README.md has no {START} … {END} block")
    block = text.split(START, 1)[1].split(END, 1)[0]
    return "\n".join(
        line.rstrip() for line in block.strip().splitlines() if not line.startswith("```")
    )


def replace_block(text: str, rows: str) -> str:
    """README text with the demo table replaced by ``rows``."""
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n```\n{rows}\n```\n{END}{tail}"


def run_demo_timed() -> tuple[str, dict]:
    """Run the demo in a temporary folder; its table and timing."""
    from celltrack.demo import run_demo

    load = os.getloadavg()[0]
    wall, cpu = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as out:
        report = run_demo(out, seed=0, progress=False)
    timing = {
        "wall_s": round(time.perf_counter() - wall, 1),
        "cpu_s": round(time.process_time() - cpu, 1),
        "load_average_1min_before": round(load, 2),
        "load_average_1min_after": round(os.getloadavg()[0], 2),
        "stage_seconds": {k: round(v, 1) for k, v in report.stage_seconds.items()},
    }
    return report.table(), timing


def benchmark_results() -> list[dict]:
    """One entry per JSON under benchmarks/results/ (name, machine, when written)."""
    rows = []
    for path in sorted(RESULTS.glob("*.json")):
        try:
            payload = json.loads(path.read_text())
        except json.JSONDecodeError:
            payload = {}
        if not isinstance(payload, dict):
            payload = {}
        rows.append(
            {
                "result": path.name,
                "machine": payload.get("machine", "?"),
                "written": time.strftime("%Y-%m-%d %H:%M", time.gmtime(path.stat().st_mtime)),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update README.md's demo table")
    parser.add_argument(
        "--from",
        dest="source",
        type=Path,
        default=None,
        help="read DIR/demo_table.txt instead of running the demo",
    )
    parser.add_argument("--only", choices=["demo", "tables"], default=None)
    args = parser.parse_args(argv)
    status = 0 if args.only == "tables" else check_demo(args)
    if args.only != "demo":
        status = max(status, check_tables(args.write))
    return status


def check_demo(args: argparse.Namespace) -> int:
    """Run (or read) the demo and compare, or with ``--write`` replace, the README table."""
    if args.source is not None:
        table = (args.source / "demo_table.txt").read_text()
        timing = {"source": str(args.source)}
    else:
        table, timing = run_demo_timed()
        RESULTS.mkdir(parents=True, exist_ok=True)
        payload = {
            "machine": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "table": table,
            **timing,
        }
        (RESULTS / "readme_demo.json").write_text(json.dumps(payload, indent=2))
    print(table)
    print(f"\ntiming: {json.dumps(timing)}")

    text = README.read_text(encoding="utf-8")
    rows = score_rows(table)
    quoted = readme_block(text)
    status = 0
    if quoted == rows:
        print("\nREADME demo table: matches the demo")
    elif args.write:
        README.write_text(replace_block(text, rows), encoding="utf-8")
        print("\nREADME demo table: updated")
    else:
        print(
            "\nREADME demo table DIFFERS from the demo:\n--- README\n"
            + quoted
            + "\n--- demo\n"
            + rows
        )
        status = 1
    return status


def check_tables(write: bool, results_dir: Path | None = None) -> int:
    """Compare (``write``: replace) the README's tables made from benchmark JSON (read from
    ``results_dir``, default ``benchmarks/results``)."""
    fresh = readme_rows.load_results(results_dir or readme_rows.RESULTS)
    results = {**readme_rows.load_snapshot(), **fresh}
    text = README.read_text(encoding="utf-8")
    rendered, missing = readme_rows.render_readme(text, results)
    status = 0
    if rendered == text:
        print("\nREADME benchmark tables: match the results")
    elif write:
        README.write_text(rendered, encoding="utf-8")
        used = {s for row in readme_rows.ROWS for s in row.sources if s in results}
        snapshot = {name: results[name] for name in sorted(used)}
        readme_rows.SNAPSHOT.write_text(json.dumps(snapshot, indent=1, default=str) + "\n")
        print(f"\nREADME benchmark tables: updated (results in {readme_rows.SNAPSHOT.name})")
    else:
        for start, end, *_ in readme_rows.TABLES:
            if start in missing:
                continue
            old = readme_rows.readme_table(text, start, end)
            new = readme_rows.readme_table(rendered, start, end)
            if old != new:
                print(f"\nREADME table {start} DIFFERS from the results:\n--- README\n{old}"
                      f"\n--- results\n{new}")
        status = 1
    for start in missing:
        print(f"  (no result for the table at {start}: left as it is)")

    results_here = benchmark_results()
    print("\nbenchmark results here:")
    for r in results_here:
        print(f"  {r['result']:<28} {r['written']}  {r['machine']}")
    for row in readme_rows.ROWS:
        if row.sources[0] not in results:
            print(f"  (no {row.sources[0]}.json: run python benchmarks/{row.script})")
    return status


if __name__ == "__main__":
    sys.exit(main())
