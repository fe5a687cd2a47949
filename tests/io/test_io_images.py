"""Lazy image reading (TIFF, TIFF folders, Zarr, OME-Zarr) and Zarr writing."""

from __future__ import annotations

import pickle
import tracemalloc

import numpy as np
import pytest
import tifffile
import zarr

from celltrack.errors import FormatError, InvalidInputError, ShapeError
from celltrack.io.images import ImageSeries, read_image, write_image


def _movie(shape=(3, 4, 10, 12), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 1000, shape).astype(np.uint16)


def _imagej(path, data, axes, spacing=2.0, px=0.5, unit="um"):
    meta = {"axes": axes, "unit": unit}
    if spacing is not None:
        meta["spacing"] = spacing
    tifffile.imwrite(path, data, imagej=True, resolution=(1 / px, 1 / px), metadata=meta)
    return path


def test_imagej_hyperstack_with_channel(tmp_path):
    data = np.random.default_rng(1).integers(0, 500, (3, 4, 2, 10, 12)).astype(np.uint16)
    path = _imagej(tmp_path / "h.tif", data, "TZCYX")
    with pytest.raises(InvalidInputError, match="channel"):
        read_image(path)
    img = read_image(path, channel=1)
    assert isinstance(img, ImageSeries)
    assert img.shape == (3, 4, 10, 12) and len(img) == 3 and img.dtype == np.uint16
    assert np.allclose(img.voxel_size, [2.0, 0.5, 0.5])
    assert np.array_equal(img[2], data[2, :, 1])
    assert np.array_equal(img[-1], data[2, :, 1])
    assert np.array_equal(img[0:2], data[0:2, :, 1])
    assert np.array_equal(img[1, 2:3, :4], data[1, 2:3, 1, :4])
    assert np.array_equal(img.to_numpy(), data[:, :, 1])
    assert np.array_equal(np.stack(list(img)), data[:, :, 1])
    with pytest.raises(IndexError):
        img[3]


def test_single_volume_and_2d_time_series(tmp_path):
    vol = _movie((1, 4, 10, 12))[0]
    img = read_image(_imagej(tmp_path / "zyx.tif", vol, "ZYX"))
    assert img.shape == (1, 4, 10, 12)
    assert np.array_equal(img[0], vol)
    movie2d = _movie((5, 10, 12))
    img2 = read_image(_imagej(tmp_path / "tyx.tif", movie2d, "TYX", spacing=None))
    assert img2.shape == (5, 1, 10, 12)
    assert np.allclose(img2.voxel_size, [1.0, 0.5, 0.5])  # z irrelevant for Z = 1
    assert np.array_equal(img2[3][0], movie2d[3])


def test_plain_multipage_axes_override_and_voxel_size_required(tmp_path):
    data = _movie((6, 10, 12))
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, data, photometric="minisblack")
    with pytest.raises(InvalidInputError, match="voxel_size"):
        read_image(path)
    as_stack = read_image(path, voxel_size=(2, 1, 1))
    assert as_stack.shape == (1, 6, 10, 12)  # unlabelled pages default to Z
    as_movie = read_image(path, voxel_size=(1, 1, 1), axes="TYX")
    assert as_movie.shape == (6, 1, 10, 12)
    assert np.array_equal(as_movie[4, 0], data[4])
    with pytest.raises(ShapeError):
        read_image(path, voxel_size=(1, 1, 1), axes="TZYX")


@pytest.mark.parametrize("bad", [(1.0, 1.0), (np.nan, 1, 1), (1, -1, 1), (0, 1, 1)])
def test_bad_voxel_size(tmp_path, bad):
    path = _imagej(tmp_path / "h.tif", _movie(), "TZYX")
    with pytest.raises(InvalidInputError):
        read_image(path, voxel_size=bad)


def test_user_voxel_size_overrides_metadata(tmp_path):
    img = read_image(_imagej(tmp_path / "h.tif", _movie(), "TZYX"), voxel_size=(3, 0.2, 0.2))
    assert np.allclose(img.voxel_size, [3, 0.2, 0.2])


def test_corrupt_and_truncated_tiff(tmp_path):
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"II*\x00" + b"\x07" * 50)
    with pytest.raises(FormatError, match=r"junk\.tif"):
        read_image(junk, voxel_size=(1, 1, 1))
    data = _movie((4, 2, 64, 64))
    path = tmp_path / "cut.tif"
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "TZYX"})
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(FormatError, match=r"cut\.tif"):
        img = read_image(path, voxel_size=(1, 1, 1))
        for t in range(len(img)):
            img[t]
    with pytest.raises(FormatError, match="no such"):
        read_image(tmp_path / "absent.tif")


def test_folder_of_frames_sorted_numerically(tmp_path):
    data = _movie((12, 3, 8, 9))
    folder = tmp_path / "frames"
    folder.mkdir()
    for t in range(12):
        # t10 must sort after t9
        tifffile.imwrite(folder / f"t{t}.tif", data[t], photometric="minisblack")
    img = read_image(folder, voxel_size=(2, 1, 1))
    assert img.shape == (12, 3, 8, 9)
    assert np.array_equal(img.to_numpy(), data)
    tifffile.imwrite(folder / "t12.tif", data[0, :, :4], photometric="minisblack")
    with pytest.raises(FormatError, match=r"t12\.tif"):
        read_image(folder, voxel_size=(2, 1, 1))


def test_folder_of_2d_frames(tmp_path):
    data = _movie((3, 8, 9))
    for t in range(3):
        tifffile.imwrite(tmp_path / f"t{t:03d}.tif", data[t])
    img = read_image(tmp_path, voxel_size=(1, 0.3, 0.3))
    assert img.shape == (3, 1, 8, 9)
    assert np.array_equal(img[2][0], data[2])


def test_ome_zarr_roundtrip_from_tiff(tmp_path):
    data = _movie()
    src = read_image(_imagej(tmp_path / "h.tif", data, "TZYX"))
    out = write_image(src, tmp_path / "movie.ome.zarr")
    arr = zarr.open_group(str(out), mode="r")["0"]
    assert arr.chunks == (1, 4, 10, 12)
    ms = zarr.open_group(str(out), mode="r").attrs["multiscales"][0]
    assert ms["datasets"][0]["coordinateTransformations"][0]["scale"] == [1.0, 2.0, 0.5, 0.5]
    back = read_image(out)
    assert back.shape == data.shape
    assert np.allclose(back.voxel_size, [2.0, 0.5, 0.5])
    assert np.array_equal(back.to_numpy(), data)


def test_plain_zarr_and_arrays(tmp_path):
    data = _movie()
    with pytest.raises(InvalidInputError):
        write_image(data, tmp_path / "a.zarr")
    out = write_image(data, tmp_path / "a.zarr", voxel_size=(1, 2, 2), ome=False)
    back = read_image(out)
    assert np.allclose(back.voxel_size, [1, 2, 2])
    assert np.array_equal(back[1], data[1])
    mem = read_image(data, voxel_size=(1, 1, 1))
    assert np.array_equal(mem[2], data[2])
    two = np.stack([data[0], data[0] * 2])
    czyx = read_image(two, axes="CZYX", channel=1, voxel_size=(1, 1, 1))
    assert czyx.shape == (1, 4, 10, 12)
    assert np.array_equal(czyx[0], data[0] * 2)
    with pytest.raises(ShapeError):
        write_image(data[0], tmp_path / "b.zarr", voxel_size=(1, 1, 1))


def test_frames_load_on_demand(tmp_path):
    data = _movie((16, 8, 64, 64))  # 1 MiB per frame
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "TZYX"})
    frame_bytes = data[0].nbytes
    tracemalloc.start()
    img = read_image(path, voxel_size=(1, 1, 1))
    _, peak_open = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    frame = img[7]
    _, peak_frame = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert np.array_equal(frame, data[7])
    assert peak_open < frame_bytes  # opening reads no pixels
    assert peak_frame < 4 * frame_bytes  # one frame, not the 16 MiB movie


def test_series_pickles(tmp_path):
    img = read_image(_imagej(tmp_path / "h.tif", _movie(), "TZYX"))
    clone = pickle.loads(pickle.dumps(img))
    assert np.array_equal(clone[1], img[1])
    img.close()
    assert np.array_equal(img[0], clone[0])  # reopens after close


def test_truncated_plain_multipage(tmp_path):
    path = tmp_path / "plain_cut.tif"
    tifffile.imwrite(path, _movie((8, 32, 32)), photometric="minisblack")
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(FormatError, match=r"plain_cut\.tif"):
        read_image(path, voxel_size=(1, 1, 1))


def test_ome_tiff_physical_sizes(tmp_path):
    data = _movie()
    path = tmp_path / "m.ome.tif"
    meta = {"axes": "TZYX", "PhysicalSizeX": 0.25, "PhysicalSizeY": 0.25, "PhysicalSizeZ": 1.5}
    tifffile.imwrite(path, data, ome=True, photometric="minisblack", metadata=meta)
    img = read_image(path)
    assert img.shape == data.shape
    assert np.allclose(img.voxel_size, [1.5, 0.25, 0.25])
    assert np.array_equal(img[2], data[2])


def test_ome_zarr_v05_with_channels_and_nanometres(tmp_path):
    data = np.random.default_rng(3).integers(0, 9, (2, 3, 4, 5, 6)).astype(np.uint8)  # t c z y x
    root = zarr.open_group(str(tmp_path / "v05.zarr"), mode="w", zarr_format=3)
    root.attrs["ome"] = {
        "version": "0.5",
        "multiscales": [
            {
                "axes": [
                    {"name": "t", "type": "time", "unit": "second"},
                    {"name": "c", "type": "channel"},
                    {"name": "z", "type": "space", "unit": "nanometer"},
                    {"name": "y", "type": "space", "unit": "nanometer"},
                    {"name": "x", "type": "space", "unit": "nanometer"},
                ],
                "datasets": [
                    {"path": "s0", "coordinateTransformations": [
                        {"type": "scale", "scale": [1.0, 1.0, 2000.0, 500.0, 500.0]}]},
                    {"path": "s1", "coordinateTransformations": [
                        {"type": "scale", "scale": [1.0, 1.0, 2000.0, 1000.0, 1000.0]}]},
                ],
            }
        ],
    }
    root.create_array("s0", data=data, chunks=(1, 1, 4, 5, 6))
    root.create_array("s1", data=data[..., ::2, ::2], chunks=(1, 1, 4, 3, 3))
    img = read_image(tmp_path / "v05.zarr", channel=2)
    assert img.shape == (2, 4, 5, 6)
    assert np.allclose(img.voxel_size, [2.0, 0.5, 0.5])
    assert np.array_equal(img[1], data[1, 2])
    low = read_image(tmp_path / "v05.zarr", channel=0, level=1)
    assert low.shape == (2, 4, 3, 3)
    assert np.allclose(low.voxel_size, [2.0, 1.0, 1.0])
