"""Fuzz every celltrack reader with corrupt inputs and print the outcome counts.

Each case makes a small valid input from a seed (TIFF, TIFF folder, Zarr, OME-Zarr, CSV,
JSON, TrackMate XML, CTC folder, GEFF, YAML/TOML/JSON config), damages it
(:func:`celltrack.io._fuzz.corrupt`) and reads it. A reader must either return a valid
result that round-trips or raise a ``celltrack.errors`` exception naming the input;
anything else is a crash (or a hang past the time limit). Deterministic: seeds
``0..n-1`` per target.

Usage::

    python benchmarks/fuzz_readers.py --cases 300          # every target (the README's row)
    python benchmarks/fuzz_readers.py --cases 50 --target csv geff --show 5
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path

from _common import write_json

from celltrack.io._fuzz import TARGETS, Tally, run_case


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100, help="cases per target")
    parser.add_argument("--target", nargs="*", default=sorted(TARGETS), choices=sorted(TARGETS))
    parser.add_argument("--valid", type=int, default=3, help="uncorrupted cases per target")
    parser.add_argument("--limit", type=float, default=10.0, help="seconds before a hang")
    parser.add_argument("--show", type=int, default=3, help="crash examples shown per target")
    args = parser.parse_args(argv)
    logging.disable(logging.CRITICAL)
    warnings.simplefilter("ignore")  # zarr and numpy warn about every corrupt store
    tally = Tally()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ct-fuzz-") as tmp:
        for name in args.target:
            target = TARGETS[name]
            for seed in range(args.valid):
                outcome = run_case(target, seed, workdir=Path(tmp), corrupt_input=False,
                                   limit_s=args.limit)
                if outcome.kind != "ok":
                    outcome.kind = "crash"  # a valid input must read
                tally.add(name, outcome)
            for seed in range(args.cases):
                tally.add(name, run_case(target, 10_000 + seed, workdir=Path(tmp),
                                         limit_s=args.limit))
    seconds = time.perf_counter() - start
    print(tally.table())
    print(f"({seconds:.1f} s)")
    for name, examples in sorted(tally.examples.items()):
        for text in examples[: args.show]:
            print(f"\n[{name}] {text}")
    totals = tally.totals()
    bad = sum(totals[k] for k in ("crash", "hang", "unnamed"))
    write_json("fuzz_readers", {
        "cases_per_target": args.cases, "valid_per_target": args.valid, "limit_s": args.limit,
        "targets": sorted(tally.counts), "counts": tally.counts, "totals": totals,
        "seconds": round(seconds, 1),
    })
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
