"""The ``soak`` marker, and a closing line that counts the fault cases and requests judged."""

from __future__ import annotations

from collections.abc import Generator

import pytest
from _pytest.terminal import TerminalReporter

from tests.reliability.verdicts import TALLY


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "soak: a bounded soak; NEXUS_SOAK_SECONDS sets its length (default 30)"
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call" and item.path.name == "test_faults.py":
        TALLY.cases["tried"] += 1
        if report.passed and not hasattr(report, "wasxfail"):
            TALLY.cases["survived"] += 1
        elif hasattr(report, "wasxfail"):
            TALLY.cases["known bug (xfail)"] += 1
        else:
            TALLY.failed_cases.append(item.nodeid)
    return report


def pytest_terminal_summary(terminalreporter: TerminalReporter) -> None:
    write = terminalreporter.write_line
    if TALLY.cases:
        write(f"fault cases: {dict(TALLY.cases)}")
    if TALLY.requests:
        write(f"requests judged: {dict(TALLY.requests)}")
    for note in TALLY.notes:
        write(note)
    for name in TALLY.failed_cases:
        write(f"fault case not survived: {name}")
