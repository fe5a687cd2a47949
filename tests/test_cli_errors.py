"""Every CLI command: bad input gives one ``error:`` line and exit 2; a bug keeps its traceback."""

from __future__ import annotations

import pytest

from celltrack import cli


def _bad_inputs(tmp_path):
    corrupt = tmp_path / "corrupt.csv"
    corrupt.write_bytes(b"id,t,z,y,x\n1,0,abc,0,0\n")
    config = tmp_path / "bad.yaml"
    config.write_text("data:\n  image: 3\nno_such_key: 1\n")
    existing = tmp_path / "exists.csv"
    existing.write_text("id,t,z,y,x\n1,0,0,0,0\n")
    return {
        "track (missing config)": ["track", str(tmp_path / "missing.yaml")],
        "track (bad config)": ["track", str(config)],
        "config init (exists)": ["config", "init", str(existing)],
        "evaluate (missing file)": ["evaluate", str(tmp_path / "gt.geff"), str(corrupt)],
        "evaluate (corrupt file)": ["evaluate", str(corrupt), str(corrupt)],
        "export (corrupt input)": ["export", str(corrupt), str(tmp_path / "out.geff")],
        "export (exists, no --force)": ["export", str(existing), str(existing)],
    }


def test_every_command_turns_bad_input_into_one_error_line(tmp_path, capsys):
    for name, argv in _bad_inputs(tmp_path).items():
        status = cli.main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert status == 2, f"{name}: exit status {status}"
        assert len(err) >= 1 and err[0].startswith("error: "), f"{name}: {err}"
        assert "Traceback" not in "\n".join(err), name


def test_a_bug_is_not_disguised_as_bad_input(tmp_path, monkeypatch):
    def broken(args):
        raise RuntimeError("a bug in celltrack")

    monkeypatch.setattr(cli, "_cmd_export", broken)
    with pytest.raises(RuntimeError, match="a bug in celltrack"):
        cli.main(["export", str(tmp_path / "a.csv"), str(tmp_path / "b.csv")])
