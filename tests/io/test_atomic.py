import pytest

from celltrack.io.atomic import atomic_path, atomic_write_text


def test_atomic_file_and_folder(tmp_path):
    target = tmp_path / "a.txt"
    atomic_write_text(target, "one")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "one"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]
    folder = tmp_path / "store.zarr"
    for content in ("v1", "v2"):
        with atomic_path(folder) as tmp:
            tmp.mkdir()
            (tmp / "data").write_text(content)
    assert (folder / "data").read_text() == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "store.zarr"]
