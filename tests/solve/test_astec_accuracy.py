"""The tuned default ILP costs beat greedy and laptrack on real embryo motion.

One embryo (Pm04, the smallest) of the ASTEC benchmark, on a perturbation seed that was
not used for tuning; the protocol is the benchmark's own (``benchmarks/bench_astec.py``).
The data come with the project (``../shared/data/astec``, as in CI).
"""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_astec  # the benchmark defines the protocol


@pytest.fixture(scope="module")
def scores():
    gt = bench_astec.load_astec("Pm04")
    spots = bench_astec.perturb(gt, np.random.default_rng(1), jitter=2.0, drop=0.05, add=0.05)
    run = bench_astec.linkers()
    return {name: bench_astec.score(gt, run[name](spots)) for name in ("greedy", "laptrack", "ilp")}


def test_default_ilp_makes_fewer_errors_than_greedy_and_laptrack(scores):
    ilp = scores["ilp"]["errors"]
    assert ilp < 0.97 * scores["greedy"]["errors"]
    assert ilp < 0.97 * scores["laptrack"]["errors"]


def test_default_ilp_keeps_divisions_and_tracks(scores):
    # greedy (second child never) finds no division; laptrack finds some
    assert scores["ilp"]["div_F1"] > max(0.3, 1.5 * scores["laptrack"]["div_F1"])
    assert scores["ilp"]["TRA"] >= max(scores["greedy"]["TRA"], scores["laptrack"]["TRA"])
    assert scores["ilp"]["eft10"] > scores["greedy"]["eft10"] > 0
