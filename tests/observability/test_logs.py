"""Log formats: JSON lines carry timestamp, level, message and bound fields."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace

import orjson
import pytest
from loguru import logger

from nexus.observability.events import Completed, RequestLog
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


def _completed(**changes: object) -> Completed:
    event = Completed(
        request_id="req-9",
        endpoint="chat",
        model="llama3",
        backend="gpu",
        location="local",
        route_reason="capability-match",
        status=200,
        stream=False,
        started_at=0.0,
        duration_s=0.0123,
        ttfb_s=0.01,
        failed_attempts=0,
        fallback_model=None,
        cost_usd=None,
        tenant="team-a",
        outliers=("slow-gpu",),
    )
    return replace(event, **changes)  # type: ignore[arg-type]


def test_the_request_line_in_json_has_loguru_s_shape(capfd) -> None:
    configure_logging("info", "json")
    RequestLog().completed(_completed())
    logger.bind(request_id="req-9").info("through loguru")
    first, second = (orjson.loads(line) for line in capfd.readouterr().err.splitlines())
    assert first["message"] == "chat req-9 answered 200 (skipped outliers: slow-gpu)"
    assert set(first) - {"message"} >= set(second) - {"message"}, "the same keys as loguru's"
    assert first["level"] == "INFO"
    assert first["logger"] == "nexus.observability.events"
    assert first["timestamp"][:10] == second["timestamp"][:10]
    assert first["timestamp"][19] == "." and first["timestamp"][-6] in "+-", "ISO, with its zone"
    assert (first["backend"], first["route_reason"], first["status"]) == (
        "gpu",
        "capability-match",
        200,
    )
    assert (first["latency_ms"], first["tenant"], first["outliers"]) == (
        12.3,
        "team-a",
        ["slow-gpu"],
    )


def test_the_request_line_in_pretty_has_the_fields_and_no_colours_off_a_terminal(capfd) -> None:
    configure_logging("info", "pretty")
    RequestLog().completed(_completed(status=502, stream_broken=True, outliers=(), tenant=None))
    (line,) = capfd.readouterr().err.splitlines()
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} INFO    chat req-9 answered 502 \(stream broken\)"
        r" request_id=req-9 model=llama3 backend=gpu route_reason=capability-match status=502"
        r" latency_ms=12\.3 tenant=- outliers=\[\]",
        line,
    ), line


def test_no_request_line_above_info(capfd) -> None:
    configure_logging("warning", "json")
    RequestLog().completed(_completed())
    assert capfd.readouterr().err == ""


def test_before_logging_is_configured_the_request_line_goes_through_loguru() -> None:
    messages: list[str] = []
    sink = logger.add(lambda m: messages.append(m.record["message"]), level="INFO")
    try:
        RequestLog().completed(_completed())
    finally:
        logger.remove(sink)
    assert messages == ["chat req-9 answered 200 (skipped outliers: slow-gpu)"]
