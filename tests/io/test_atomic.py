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


def test_refuse_existing_passes_only_what_holds_nothing(tmp_path):
    from celltrack.errors import CelltrackError
    from celltrack.io.atomic import OutputExistsError, refuse_existing

    refuse_existing(tmp_path / "absent", overwrite=False)
    (tmp_path / "empty").mkdir()
    refuse_existing(tmp_path / "empty", overwrite=False)
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(OutputExistsError, match="a file") as info:
        refuse_existing(tmp_path / "file.txt", overwrite=False)
    assert isinstance(info.value, CelltrackError) and isinstance(info.value, FileExistsError)
    with pytest.raises(OutputExistsError, match=r"holding 2 entries \(empty, file\.txt\)"):
        refuse_existing(tmp_path, overwrite=False)
    refuse_existing(tmp_path, overwrite=True)
    assert (tmp_path / "file.txt").read_text() == "x"  # checking never deletes
