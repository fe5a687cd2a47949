"""Property-based fuzzing of read_tracks (format told by content).

Corrupt inputs must give a clean celltrack error naming the input, or a valid result.
"""

from __future__ import annotations

import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from celltrack.io._fuzz import TALLY, TARGETS, run_case

FUZZ = settings(
    derandomize=True,
    max_examples=10,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.mark.parametrize("name", ['read_tracks'])
def test_valid_input_reads_and_round_trips(name, tmp_path):
    outcome = run_case(TARGETS[name], 0, workdir=tmp_path, corrupt_input=False)
    TALLY.add(name, outcome)
    assert outcome.kind == "ok", outcome.detail


@pytest.mark.parametrize("name", ['read_tracks'])
@FUZZ
@given(seed=st.integers(0, 2**32 - 1))
def test_corrupt_input_is_rejected_cleanly_or_reads_validly(name, seed, tmp_path):
    logging.disable(logging.CRITICAL)  # tifffile/zarr log every corruption they meet
    try:
        outcome = run_case(TARGETS[name], seed, workdir=tmp_path, limit_s=10.0)
    finally:
        logging.disable(logging.NOTSET)
    TALLY.add(name, outcome)
    assert outcome.kind in ("ok", "rejected"), outcome.detail
