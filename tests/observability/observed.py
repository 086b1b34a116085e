"""The in-process gateway with the observability installed, and readers for what it shows."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from loguru import logger
from prometheus_client.parser import text_string_to_metric_families

from nexus.observability.logs import reset_request_line
from tests.api.gateway import Gateway, gateway


@asynccontextmanager
async def observed(backends: list[dict[str, Any]], **kwargs: Any) -> AsyncIterator[Gateway]:
    """``tests.api.gateway.gateway`` (every gateway has its metrics, stats and history)."""
    async with gateway(backends, **kwargs) as gw:
        yield gw


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of a Prometheus text exposition, by (sample name, labels)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 when it does not exist (a counter never incremented)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(gw: Gateway) -> Samples:
    response = await gw.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


def _to_stderr(message: str) -> None:
    sys.stderr.write(message)  # the stderr of the moment (pytest swaps it per test)


def restore_default_logging() -> None:
    """One plain sink on stderr again, after a test configured its own."""
    logger.remove()
    logger.add(_to_stderr)
    reset_request_line()
