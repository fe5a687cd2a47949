"""Property-based fuzzing of as_movie on paths.

Corrupt inputs must give a clean celltrack error naming the input, or a valid result.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from celltrack.io._fuzz import TALLY, TARGETS, Outcome, run_case

FUZZ = settings(
    derandomize=True,
    max_examples=15,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.mark.parametrize("name", ['as_movie'])
def test_valid_input_reads_and_round_trips(name, tmp_path):
    outcome = run_case(TARGETS[name], 0, workdir=tmp_path, corrupt_input=False)
    TALLY.add(name, outcome)
    assert outcome.kind == "ok", outcome.detail


@pytest.mark.parametrize("name", ['as_movie'])
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


_DTYPES = ["uint8", "uint16", "int32", "float32", "float64", "bool", "complex64", "object", "U3"]


@settings(FUZZ, max_examples=60)
@given(
    shape=st.lists(st.integers(0, 4), min_size=1, max_size=6),
    dtype=st.sampled_from(_DTYPES),
    axes=st.one_of(st.none(), st.none(), st.text(alphabet="TZCYXQ", min_size=0, max_size=6)),
    voxel=st.one_of(st.sampled_from([[1.0, 1.0, 1.0], [2.0, 0.5, 0.5]]), st.none(),
                    st.lists(st.floats(allow_nan=True), min_size=0, max_size=4)),
)
def test_as_movie_on_odd_arrays(shape, dtype, axes, voxel):
    from celltrack.errors import CelltrackError
    from celltrack.io import ImageSeries, as_movie

    array = np.zeros(shape, dtype=dtype)
    try:
        movie = as_movie(array, axes=axes, voxel_size=voxel)
    except CelltrackError as err:
        TALLY.add("as_movie_array", Outcome("rejected", str(err)))
        return
    TALLY.add("as_movie_array", Outcome("ok"))
    assert isinstance(movie, ImageSeries) and len(movie.shape) == 4
    assert np.all(np.isfinite(movie.voxel_size)) and np.all(movie.voxel_size > 0)
    frame = movie[0]
    assert frame.shape == movie.shape[1:] and frame.dtype == movie.dtype
