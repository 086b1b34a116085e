"""The observers of one app (metrics, stats, history) and the label mapping they share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from nexus.backends.registry import Registry
from nexus.observability.events import Observer
from nexus.observability.history import History
from nexus.observability.labels import ModelLabels
from nexus.observability.metrics import Metrics
from nexus.observability.stats import Stats
from nexus.routing import RoutingPolicy


@dataclass(frozen=True, slots=True)
class Observability:
    """What ``/metrics``, ``/v1/stats``, ``/v1/history`` and the dashboard read."""

    metrics: Metrics
    stats: Stats
    history: History

    @classmethod
    def create(cls, sources: Callable[[], tuple[Registry, RoutingPolicy]]) -> Observability:
        """``sources`` gives the live registry and routing policy (read when needed, so the
        app's current ones count)."""
        labels = ModelLabels(sources)
        return cls(
            metrics=Metrics(lambda: sources()[0].snapshot(), labels),
            stats=Stats(labels),
            history=History(),
        )

    def observers(self) -> tuple[Observer, ...]:
        return (self.metrics, self.stats, self.history)
