"""Property-based fuzzing of every reader and of load_config (hypothesis, derandomized).

For each reader, a valid input must read and round-trip, and corrupt, truncated, oversized
and odd inputs (generated from a seed by :mod:`celltrack.io._fuzz`) must give a clean
``celltrack.errors`` exception naming the input, the place and the fix, or a valid result.
The counts are printed at the end of the run (tests/io/conftest.py).
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
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_valid_input_reads_and_round_trips(name, tmp_path):
    outcome = run_case(TARGETS[name], 0, workdir=tmp_path, corrupt_input=False)
    TALLY.add(name, outcome)
    assert outcome.kind == "ok", outcome.detail


def _fuzz_test(names: list[str], examples: int):
    """A test that feeds ``examples`` seeded corruptions to each reader in ``names``."""

    @pytest.mark.parametrize("name", names)
    @settings(FUZZ, max_examples=examples)
    @given(seed=st.integers(0, 2**32 - 1))
    def test(name, seed, tmp_path):
        logging.disable(logging.CRITICAL)  # tifffile/zarr log every corruption they meet
        try:
            outcome = run_case(TARGETS[name], seed, workdir=tmp_path, limit_s=10.0)
        finally:
            logging.disable(logging.NOTSET)
        TALLY.add(name, outcome)
        assert outcome.kind in ("ok", "rejected"), outcome.detail

    return test


# CSV (with parent_id) and JSON annotations
test_fuzz_annotations = _fuzz_test(['csv', 'csv_parent', 'json'], 12)
# YAML, TOML and JSON configs (load_config)
test_fuzz_config = _fuzz_test(['config_yaml', 'config_toml', 'config_json'], 12)
# CTC folders (read_ctc)
test_fuzz_ctc = _fuzz_test(['ctc'], 12)
# GEFF stores (read_geff)
test_fuzz_geff = _fuzz_test(['geff'], 6)
# movies through as_movie
test_fuzz_movie = _fuzz_test(['as_movie'], 15)
# TIFF files (read_image)
test_fuzz_tiff = _fuzz_test(['tiff'], 15)
# folders of TIFF frames (read_image)
test_fuzz_tiff_folder = _fuzz_test(['tiff_folder'], 12)
# TrackMate / MaMuT XML (read_trackmate)
test_fuzz_trackmate = _fuzz_test(['trackmate'], 15)
# any tracks file (read_tracks)
test_fuzz_tracks = _fuzz_test(['read_tracks'], 10)
# Zarr and OME-Zarr images (read_image)
test_fuzz_zarr = _fuzz_test(['zarr', 'ome_zarr'], 12)


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
