"""Shared pieces of the io tests: the fuzz counts table printed at the end of a run."""

from __future__ import annotations

from typing import Any


def pytest_terminal_summary(terminalreporter: Any) -> None:
    from celltrack.io._fuzz import TALLY

    if TALLY.counts:
        terminalreporter.write_sep("-", "reader fuzzing: inputs tried / outcomes")
        terminalreporter.write_line(TALLY.table())
