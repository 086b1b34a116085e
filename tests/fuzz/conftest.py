"""A closing line with the number of inputs each fuzz test sent."""

from __future__ import annotations

from _pytest.terminal import TerminalReporter

from tests.fuzz.counts import COUNTS


def pytest_terminal_summary(terminalreporter: TerminalReporter) -> None:
    if COUNTS:
        terminalreporter.write_line(f"inputs fuzzed: {dict(sorted(COUNTS.items()))}")
