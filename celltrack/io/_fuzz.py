"""Corrupt inputs for every reader, and the rule each reader must follow on them.

Used by the property-based tests (``tests/io/test_fuzz_*.py``) and by
``benchmarks/fuzz_readers.py``. A *target* makes a small valid input (a file or folder)
from a seed, reads it, and checks what came back. :func:`corrupt` damages an input in
place (deleted, truncated, overwritten or inserted bytes, odd tokens in text, odd values
in JSON metadata), and :func:`run_case` reads it and classifies the outcome:

``ok``
    the reader returned a valid result (lineage rules, finite positions, positive
    definite covariances, frames of the announced dtype and shape) that round-trips
    through a writer;
``rejected``
    a :class:`celltrack.errors.CelltrackError` whose message names the input;
``unnamed``
    a celltrack error whose message does not name the input;
``crash``
    any other exception, or a result that breaks the rules or does not round-trip;
``hang``
    the reader ran past the time limit.

Only :mod:`random` and numpy generators with explicit seeds are used, so every case is
reproducible from ``(target, seed)``.
"""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import signal
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from celltrack.errors import CelltrackError
from celltrack.graph.tags import LINKABLE

__all__ = ["ODD_TOKENS", "TALLY", "TARGETS", "Outcome", "Tally", "Target", "corrupt", "run_case"]

#: text that replaces a token of a text file
ODD_TOKENS = (
    "nan", "inf", "-inf", "-1", "0", "1.5", "1e30", "-1e308", "9223372036854775808",
    "18446744073709551616", "9007199254740993", "", "abc", "\u00ff\u00fe", "1,2", '"',
    "\x00", "true", "[]", "{}", "-0", "1e-320", "x" * 2000, "0x10", "\ud800",
)
#: values that replace a value inside JSON metadata
ODD_JSON: tuple[Any, ...] = (
    None, -1, 0, 1.5, 2**64, -(2**63) - 1, "", "abc", [], {}, [0], [[[[[[]]]]]], True,
    "NaN", 1e308, [1, 2, 3, 4, 5, 6, 7, 8], {"a": 1}, [-1.0, -1.0, -1.0], [0, 0, 0, 0],
)


@dataclass
class Outcome:
    """How one read of one (possibly corrupt) input ended."""

    kind: str
    detail: str = ""
    seconds: float = 0.0


#: outcome kinds of a case, in the table's column order
OUTCOME_KINDS = ("ok", "rejected", "unnamed", "crash", "hang")


@dataclass
class Tally:
    """Counts of outcomes per target (inputs tried, clean rejections, crashes, ...)."""

    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, target: str, outcome: Outcome) -> None:
        row = self.counts.setdefault(target, {})
        row[outcome.kind] = row.get(outcome.kind, 0) + 1
        if outcome.kind in ("crash", "hang", "unnamed"):
            self.examples.setdefault(target, []).append(outcome.detail)

    def totals(self) -> dict[str, int]:
        """Outcome counts over all targets, every kind included (0 when none)."""
        total = dict.fromkeys(OUTCOME_KINDS, 0)
        for row in self.counts.values():
            for kind, count in row.items():
                total[kind] = total.get(kind, 0) + count
        return total

    def table(self) -> str:
        kinds = OUTCOME_KINDS
        lines = [f"{'target':<14}{'tried':>7}" + "".join(f"{k:>10}" for k in kinds)]
        for name, row in sorted(self.counts.items()):
            tried = sum(row.values())
            lines.append(f"{name:<14}{tried:>7}" + "".join(f"{row.get(k, 0):>10}" for k in kinds))
        total = self.totals()
        lines.append(f"{'all':<14}{sum(total.values()):>7}"
                     + "".join(f"{total[k]:>10}" for k in kinds))
        return "\n".join(lines)


@dataclass
class Target:
    """A reader under test: how to make a valid input, read it, and check the result."""

    name: str
    make: Callable[[Path, int], Path]
    read: Callable[[Path], Any]
    check: Callable[[Any, Path], None]


# ---------------------------------------------------------------------------- corruption
def _files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.is_file())


def _mutate_json(data: Any, rng: random.Random) -> Any:
    """Replace or drop one value somewhere in a JSON tree."""
    holders: list[tuple[Any, Any]] = []
    stack = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for k, v in node.items():
                holders.append((node, k))
                stack.append(v)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                holders.append((node, i))
                stack.append(v)
    if not holders:
        return rng.choice(ODD_JSON)
    holder, key = rng.choice(holders)
    if isinstance(holder, dict) and rng.random() < 0.25:
        del holder[key]
    else:
        holder[key] = rng.choice(ODD_JSON)
    return data


def _corrupt_file(file: Path, rng: random.Random) -> str:
    data = file.read_bytes()
    op = rng.choice(("truncate", "flip", "insert", "token", "json", "delete", "empty", "nonutf8"))
    if op == "json":
        try:
            tree = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            op = "token"
        else:
            file.write_text(json.dumps(_mutate_json(tree, rng)))
            return f"json value in {file.name}"
    if op == "delete":
        file.unlink()
        return f"deleted {file.name}"
    if op == "empty":
        file.write_bytes(b"")
        return f"emptied {file.name}"
    if op == "truncate":
        cut = rng.randrange(0, max(len(data), 1))
        file.write_bytes(data[:cut])
        return f"truncated {file.name} to {cut} bytes"
    if op == "flip":
        buf = bytearray(data or b"\0")
        for _ in range(rng.randint(1, 8)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        file.write_bytes(bytes(buf))
        return f"flipped bytes in {file.name}"
    if op == "insert":
        at = rng.randrange(0, len(data) + 1)
        junk = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        file.write_bytes(data[:at] + junk + data[at:])
        return f"inserted bytes in {file.name}"
    if op == "nonutf8":
        at = rng.randrange(0, len(data) + 1)
        file.write_bytes(data[:at] + b"\xff\xfe\xc3" + data[at:])
        return f"non-UTF-8 bytes in {file.name}"
    text = data.decode("utf-8", errors="surrogateescape")
    tokens = [i for i, ch in enumerate(text)
              if ch.isalnum() and (i == 0 or not text[i - 1].isalnum())]
    if not tokens:
        file.write_bytes(data + rng.choice(ODD_TOKENS).encode("utf-8", "surrogatepass"))
        return f"appended a token to {file.name}"
    start = rng.choice(tokens)
    end = start
    while end < len(text) and (text[end].isalnum() or text[end] in ".-+"):
        end += 1
    odd = rng.choice(ODD_TOKENS)
    file.write_bytes(text[:start].encode("utf-8", "surrogateescape")
                     + odd.encode("utf-8", "surrogatepass")
                     + text[end:].encode("utf-8", "surrogateescape"))
    return f"token {text[start:end][:20]!r} -> {odd[:20]!r} in {file.name}"


def corrupt(root: Path, rng: random.Random, n: int | None = None) -> list[str]:
    """Damage the file or folder ``root`` in place; returns what was done.

    Metadata files (``.zarray``, ``.zattrs``, ``zarr.json``, track files) are picked
    more often than chunks, since they are where sizes and types come from.
    """
    done = []
    for _ in range(n or rng.choice((1, 1, 1, 2, 3))):
        files = _files(root)
        if not files:
            break
        weights = [
            5.0 if f.name in (".zarray", ".zattrs", ".zgroup", "zarr.json") or f.suffix in (
                ".txt", ".csv", ".json", ".xml", ".yaml", ".toml") else 1.0
            for f in files
        ]
        file = rng.choices(files, weights)[0]
        done.append(_corrupt_file(file, rng))
    return done


# ---------------------------------------------------------------------------- running
class _Timeout(BaseException):
    pass


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    def fire(signum: int, frame: Any) -> None:
        raise _Timeout

    if not hasattr(signal, "setitimer"):
        yield
        return
    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _names(root: Path) -> set[str]:
    names = {str(root), root.name}
    if root.is_dir():
        names.update(p.name for p in root.rglob("*"))
    return {n for n in names if n}


def run_case(
    target: Target,
    seed: int,
    *,
    workdir: Path | None = None,
    corrupt_input: bool = True,
    limit_s: float = 10.0,
) -> Outcome:
    """Make a valid input from ``seed``, corrupt it, read it, and classify the outcome."""
    rng = random.Random(seed)
    own = workdir is None
    base = Path(tempfile.mkdtemp(prefix="ct-fuzz-")) if own else Path(workdir)
    case = base / f"{target.name}-{seed}"
    case.mkdir(parents=True, exist_ok=True)
    try:
        path = target.make(case, seed)
        names = _names(path)
        what = corrupt(path, rng) if corrupt_input else ["valid input"]
        label = f"{target.name} seed {seed}: {'; '.join(what)}"
        start = time.perf_counter()
        try:
            with _time_limit(limit_s):
                result = target.read(path)
                target.check(result, case)
        except _Timeout:
            return Outcome("hang", f"{label}: over {limit_s} s", time.perf_counter() - start)
        except CelltrackError as err:
            message = str(err)
            named = any(n in message for n in names)
            return Outcome("rejected" if named else "unnamed", f"{label}: {message[:300]}",
                           time.perf_counter() - start)
        except Exception as err:  # the point: anything else is a bug
            tb = traceback.format_exception(type(err), err, err.__traceback__)[-3:]
            return Outcome("crash", f"{label}: {type(err).__name__}: {err!s:.200} "
                                    f"{''.join(tb)[-400:]}", time.perf_counter() - start)
        return Outcome("ok", label, time.perf_counter() - start)
    finally:
        if own:
            shutil.rmtree(base, ignore_errors=True)
        else:
            shutil.rmtree(case, ignore_errors=True)


# ---------------------------------------------------------------------------- valid inputs
def _graph(seed: int, covariance: bool = True):
    from celltrack.geometry import covariance_from_radii
    from celltrack.graph.trackgraph import TrackGraph

    rng = np.random.default_rng(seed)
    ids, ts, pos, src, tgt = [], [], [], [], []
    next_id = int(rng.integers(0, 1000))
    for _ in range(int(rng.integers(1, 4))):
        alive = [(next_id, rng.uniform(2, 30, 3))]
        ids.append(next_id)
        ts.append(0)
        pos.append(alive[0][1])
        next_id += 1
        for t in range(1, int(rng.integers(2, 5))):
            born = []
            for parent, p in alive:
                for _ in range(2 if rng.random() < 0.2 else 1):
                    q = np.clip(p + rng.normal(0, 1.0, 3), 2, 30)
                    ids.append(next_id)
                    ts.append(t)
                    pos.append(q)
                    src.append(parent)
                    tgt.append(next_id)
                    born.append((next_id, q))
                    next_id += 1
            alive = born
    n = len(ids)
    p = np.asarray(pos)
    nodes: dict[str, Any] = {"id": np.asarray(ids), "t": np.asarray(ts), "z": p[:, 0],
                             "y": p[:, 1], "x": p[:, 2], "score": rng.uniform(0, 1, n),
                             "tag": rng.choice(list(LINKABLE), n)}
    if covariance:
        nodes["covariance"] = covariance_from_radii(rng.uniform(1, 2, (n, 3)))
    edges = {"source": np.asarray(src, np.int64), "target": np.asarray(tgt, np.int64),
             "approved": rng.random(len(src)) < 0.5}
    return TrackGraph(nodes, edges)


def _check_graph(graph: Any, case: Path) -> None:
    from celltrack.geometry import bad_covariances
    from celltrack.graph.trackgraph import TrackGraph
    from celltrack.io.geff_io import read_geff, write_geff

    if not isinstance(graph, TrackGraph):
        raise AssertionError(f"reader returned {type(graph).__name__}")
    graph.validate(forest=True)
    if not np.all(np.isfinite(graph.positions)):
        raise AssertionError("non-finite positions accepted")
    if "covariance" in graph.nodes and np.any(bad_covariances(graph.nodes["covariance"])):
        raise AssertionError("invalid covariance accepted")
    out = case / "roundtrip.geff"
    try:
        write_geff(graph, out, overwrite=True)
    except CelltrackError:
        return  # a column the store cannot hold is refused cleanly: fine
    back = read_geff(out)
    if not back.equals(graph, atol=1e-9):
        raise AssertionError("the graph read does not round-trip through GEFF")


def _check_image(series: Any, case: Path) -> None:
    from celltrack.io.images import ImageSeries, read_image, write_image

    if not isinstance(series, ImageSeries):
        raise AssertionError(f"reader returned {type(series).__name__}")
    t_n = series.shape[0]
    if np.prod(series.shape, dtype=np.float64) > 2e6:
        frames = [0]
    else:
        frames = sorted({0, t_n - 1})
    for t in frames:
        frame = series[t]
        if frame.dtype != series.dtype or frame.shape != series.shape[1:]:
            raise AssertionError(
                f"frame {t} is {frame.dtype} {frame.shape}, series says {series.dtype} "
                f"{series.shape[1:]}"
            )
    if np.prod(series.shape, dtype=np.float64) <= 2e6:
        out = case / "roundtrip.zarr"
        write_image(series, out, overwrite=True)
        back = read_image(out)
        if not np.array_equal(back.to_numpy(), series.to_numpy()):
            raise AssertionError("the image read does not round-trip through Zarr")


def _movie(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(1, 4)), int(rng.integers(1, 3)), 8, 8)
    return rng.integers(0, 1000, shape).astype(np.uint16)


def _make_tiff(case: Path, seed: int) -> Path:
    import tifffile

    movie = _movie(seed)
    path = case / "movie.tif"
    tifffile.imwrite(path, movie[:, :, None], imagej=True, resolution=(2.0, 2.0),
                     metadata={"axes": "TZCYX", "spacing": 1.5, "unit": "um"})
    return path


def _make_folder(case: Path, seed: int) -> Path:
    import tifffile

    movie = _movie(seed)
    folder = case / "frames"
    folder.mkdir()
    for t, frame in enumerate(movie):
        tifffile.imwrite(folder / f"t{t:03d}.tif", frame[:, None], imagej=True,
                         resolution=(2.0, 2.0), metadata={"axes": "ZCYX", "spacing": 1.5,
                                                          "unit": "um"})
    return folder


def _make_zarr(ome: bool) -> Callable[[Path, int], Path]:
    def make(case: Path, seed: int) -> Path:
        from celltrack.io.zarr_image import write_image

        return write_image(_movie(seed), case / "movie.zarr", voxel_size=(1.5, 0.5, 0.5),
                           ome=ome)

    return make


def _make_csv(case: Path, seed: int) -> Path:
    from celltrack.io.annotations import write_annotations

    return write_annotations(_graph(seed), case / "spots.csv")


def _make_csv_parent(case: Path, seed: int) -> Path:
    g = _graph(seed, covariance=False)
    parent = {int(t): int(s) for s, t in zip(g.edges["source"], g.edges["target"])}
    lines = ["id,t,z,y,x,radius,parent_id"]
    for i, t, z, y, x in zip(g.ids, g.t, *g.positions.T):
        lines.append(f"{i},{t},{z:.3f},{y:.3f},{x:.3f},1.5,{parent.get(int(i), '')}")
    path = case / "parents.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _make_json(case: Path, seed: int) -> Path:
    from celltrack.io.annotations import write_annotations

    return write_annotations(_graph(seed), case / "spots.json")


def _make_xml(case: Path, seed: int) -> Path:
    g = _graph(seed, covariance=False)
    spots = "".join(
        f'<SpotsInFrame frame="{t}"><Spot ID="{i}" name="s" FRAME="{t}" POSITION_X="{x:.3f}" '
        f'POSITION_Y="{y:.3f}" POSITION_Z="{z:.3f}" RADIUS="1.5" QUALITY="{q:.3f}"/></SpotsInFrame>'
        for i, t, z, y, x, q in zip(g.ids, g.t, *g.positions.T, g.nodes["score"])
    )
    edges = "".join(f'<Edge SPOT_SOURCE_ID="{s}" SPOT_TARGET_ID="{t}"/>'
                    for s, t in zip(g.edges["source"], g.edges["target"]))
    text = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<TrackMate version="7">'
        f'<Model spatialunits="micron" timeunits="frame"><AllSpots nspots="{g.num_nodes}">'
        f'{spots}</AllSpots><AllTracks><Track name="T" TRACK_ID="0">{edges}</Track></AllTracks>'
        '</Model><Settings><ImageData filename="x.tif" width="32" height="32" nslices="32" '
        'nframes="5" pixelwidth="1.0" pixelheight="1.0" voxeldepth="1.0"/></Settings></TrackMate>\n'
    )
    path = case / "tracks.xml"
    path.write_text(text)
    return path


def _make_ctc(case: Path, seed: int) -> Path:
    from celltrack.io.ctc import write_ctc

    g = _graph(seed, covariance=False)
    shape = (int(g.t.max()) + 1, 12, 12, 12)
    from celltrack.graph.trackgraph import TrackGraph

    nodes = {k: np.asarray(v) for k, v in g.nodes.items() if k not in ("tag", "score")}
    for axis, hi in zip("zyx", (11, 11, 11)):
        nodes[axis] = np.clip(np.round(nodes[axis] / 3.0), 0, hi)
    small = TrackGraph(nodes, dict(g.edges))
    centre = np.stack([small.t, small.nodes["z"], small.nodes["y"], small.nodes["x"]], 1)
    _, first = np.unique(centre, axis=0, return_index=True)
    if first.size != small.num_nodes:  # two nodes on one voxel: keep a clean input
        small = small.subgraph(np.isin(np.arange(small.num_nodes), first))
    return write_ctc(small, case / "01_RES", shape=shape, voxel_size=(1.0, 1.0, 1.0), radius=1.0)


def _make_geff(case: Path, seed: int) -> Path:
    from celltrack.io.geff_io import write_geff

    return write_geff(_graph(seed), case / "tracks.geff")


def _make_config(suffix: str) -> Callable[[Path, int], Path]:
    def make(case: Path, seed: int) -> Path:
        from celltrack.config import PipelineConfig, save_config

        return save_config(PipelineConfig(), case / f"config{suffix}")

    return make


def _read_config(path: Path) -> Any:
    from celltrack.config import PipelineConfig, load_config

    return load_config(path, PipelineConfig)


def _check_config(cfg: Any, case: Path) -> None:
    from celltrack.config import PipelineConfig, load_config, save_config

    if not isinstance(cfg, PipelineConfig):
        raise AssertionError(f"load_config returned {type(cfg).__name__}")
    for suffix in (".yaml", ".json"):
        back = load_config(save_config(cfg, case / f"again{suffix}"), PipelineConfig)
        if back != cfg:
            raise AssertionError(f"the config does not round-trip through {suffix}")


def _read_image(path: Path) -> Any:
    from celltrack.io.images import read_image

    return read_image(path)


def _read_movie(path: Path) -> Any:
    from celltrack.io.movie import as_movie

    return as_movie(path)


def _read_annotations(path: Path) -> Any:
    from celltrack.io.annotations import read_annotations

    return read_annotations(path)


def _read_trackmate(path: Path) -> Any:
    from celltrack.io.trackmate import read_trackmate

    return read_trackmate(path)


def _read_ctc(path: Path) -> Any:
    from celltrack.io.ctc import read_ctc

    return read_ctc(path)


def _read_geff(path: Path) -> Any:
    from celltrack.io.geff_io import read_geff

    return read_geff(path)


def _read_tracks(path: Path) -> Any:
    from celltrack.io.tracks import read_tracks

    return read_tracks(path, voxel_size=(1.0, 1.0, 1.0))


def _make_any_tracks(case: Path, seed: int) -> Path:
    makers = (_make_csv, _make_json, _make_xml, _make_ctc, _make_geff, _make_csv_parent)
    return makers[seed % len(makers)](case, seed)


#: every reader under test, by name
TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("tiff", _make_tiff, _read_image, _check_image),
        Target("tiff_folder", _make_folder, _read_image, _check_image),
        Target("zarr", _make_zarr(False), _read_image, _check_image),
        Target("ome_zarr", _make_zarr(True), _read_image, _check_image),
        Target("as_movie", lambda c, s: (_make_folder, _make_zarr(True), _make_tiff)[s % 3](c, s),
               _read_movie, _check_image),
        Target("csv", _make_csv, _read_annotations, _check_graph),
        Target("csv_parent", _make_csv_parent, _read_annotations, _check_graph),
        Target("json", _make_json, _read_annotations, _check_graph),
        Target("trackmate", _make_xml, _read_trackmate, _check_graph),
        Target("ctc", _make_ctc, _read_ctc, _check_graph),
        Target("geff", _make_geff, _read_geff, _check_graph),
        Target("read_tracks", _make_any_tracks, _read_tracks, _check_graph),
        Target("config_yaml", _make_config(".yaml"), _read_config, _check_config),
        Target("config_toml", _make_config(".toml"), _read_config, _check_config),
        Target("config_json", _make_config(".json"), _read_config, _check_config),
    )
}


#: the counts of this process (the tests add to it; ``tests/io/conftest.py`` prints it)
TALLY = Tally()
