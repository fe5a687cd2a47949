"""as_movie: the one movie boundary (arrays, paths and ImageSeries → (T, Z, Y, X))."""

import numpy as np
import pytest

from celltrack.errors import InvalidInputError, ShapeError
from celltrack.io import ImageSeries, as_movie, write_image

VS = (2.0, 0.5, 0.5)


def test_4d_array_is_tzyx():
    data = np.arange(2 * 3 * 4 * 5, dtype=np.uint16).reshape(2, 3, 4, 5)
    movie = as_movie(data, voxel_size=VS)
    assert isinstance(movie, ImageSeries)
    assert movie.shape == (2, 3, 4, 5)
    assert np.array_equal(movie[1], data[1])
    assert movie.voxel_size.tolist() == list(VS)


def test_3d_array_is_2d_plus_t_with_z_1():
    data = np.random.default_rng(0).random((4, 6, 7)).astype(np.float32)
    movie = as_movie(data, voxel_size=(1.0, 0.5, 0.5))
    assert movie.shape == (4, 1, 6, 7)
    assert np.array_equal(movie[3, 0], data[3])


def test_axes_zyx_reads_one_volume():
    data = np.zeros((3, 6, 7), np.uint8)
    data[2, 1, 1] = 9
    movie = as_movie(data, axes="zyx", voxel_size=VS)
    assert movie.shape == (1, 3, 6, 7)
    assert movie[0][2, 1, 1] == 9


@pytest.mark.parametrize("shape", [(6, 7), (2, 2, 3, 4, 5)])
def test_other_dimensionalities_need_axes(shape):
    with pytest.raises(ShapeError, match=r"\(T, Z, Y, X\).*axes="):
        as_movie(np.zeros(shape), voxel_size=VS)


def test_5d_array_with_axes_picks_the_channel_axis_away():
    data = np.zeros((2, 1, 3, 4, 5))
    assert as_movie(data, axes="TCZYX", voxel_size=VS).shape == (2, 3, 4, 5)


def test_image_series_passes_through_or_takes_a_new_voxel_size():
    movie = as_movie(np.zeros((2, 3, 4, 5)), voxel_size=VS)
    assert as_movie(movie) is movie
    other = as_movie(movie, voxel_size=(1.0, 1.0, 1.0))
    assert other is not movie and other.shape == movie.shape
    assert other.voxel_size.tolist() == [1.0, 1.0, 1.0]
    assert movie.voxel_size.tolist() == list(VS)  # the original is unchanged
    with pytest.raises(InvalidInputError, match="already"):
        as_movie(movie, axes="TYX")


@pytest.mark.parametrize("values", [np.array([["a"]] * 3, dtype=object),
                                    np.zeros((2, 3, 4), dtype="U1"),
                                    np.zeros((2, 3, 4), dtype=complex)])
def test_non_numeric_pixels_are_refused(values):
    with pytest.raises(InvalidInputError, match="numbers"):
        as_movie(values, voxel_size=VS)


def test_empty_and_ragged_inputs_are_refused():
    with pytest.raises(ShapeError, match="empty"):
        as_movie(np.zeros((0, 3, 4)), voxel_size=VS)
    with pytest.raises(InvalidInputError, match="array"):
        as_movie([[1, 2], [3]], voxel_size=VS)


def test_array_without_voxel_size_is_refused():
    with pytest.raises(InvalidInputError, match="voxel_size"):
        as_movie(np.zeros((2, 3, 4)))


def test_path_reads_the_file_and_its_voxel_size(tmp_path):
    data = np.arange(2 * 1 * 4 * 5, dtype=np.uint16).reshape(2, 1, 4, 5)
    path = write_image(data, tmp_path / "m.zarr", voxel_size=VS)
    movie = as_movie(path)
    assert movie.shape == (2, 1, 4, 5)
    assert movie.voxel_size.tolist() == list(VS)
    assert np.array_equal(movie.to_numpy(), data)
    assert as_movie(str(path), voxel_size=(1, 1, 1)).voxel_size.tolist() == [1, 1, 1]
