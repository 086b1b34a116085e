"""Log formats: JSON lines carry timestamp, level, message and bound fields."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest
from loguru import logger

from nexus.observability.logs import configure_logging
from tests.observability.observed import restore_default_logging


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The tests point loguru at a captured stream; afterwards it goes back to stderr."""
    yield
    restore_default_logging()


def test_json_format_one_object_per_line(capfd) -> None:
    configure_logging("info", "json")
    logger.bind(request_id="req-1", backend="gpu").info("routed {}", "x")
    logger.debug("hidden below the level")
    lines = capfd.readouterr().err.splitlines()
    assert len(lines) == 1
    record = orjson.loads(lines[0])
    assert record["message"] == "routed x"
    assert record["level"] == "INFO"
    assert (record["request_id"], record["backend"]) == ("req-1", "gpu")
    assert record["timestamp"].startswith("20")


def test_pretty_format_shows_bound_fields(capfd) -> None:
    configure_logging("debug", "pretty")
    logger.bind(request_id="req-2").debug("hello {name}", name="<b>")
    err = capfd.readouterr().err
    assert "hello <b>" in err
    assert "request_id=req-2" in err
