"""Wiring of metrics, stats, history and the dashboard into an app."""

from __future__ import annotations

from fastapi import FastAPI

from nexus.api import dashboard, metrics, stats
from nexus.backends.registry import Registry
from nexus.observability.events import Observers
from nexus.observability.hub import Observability
from nexus.routing import RoutingPolicy


def install_observability(app: FastAPI) -> None:
    """Give ``app`` (built by :func:`nexus.app.create_app`) its metrics registry, request stats
    and history, and the routes that show them: ``/metrics``, ``/v1/stats``, ``/v1/history``,
    ``/`` and ``/dashboard/*``.

    Sets ``app.state.observability`` (an :class:`Observability`), wraps ``app.state.observer``
    so the new observers hear every completed request after the existing ones, and sets
    ``app.state.planner_timing`` (read by :func:`nexus.api.route.plan_now`). Calling it again
    does nothing.
    """
    state = app.state
    if getattr(state, "observability", None) is not None:
        return

    def sources() -> tuple[Registry, RoutingPolicy]:
        return state.registry, state.policy

    hub = Observability.create(sources)
    state.observability = hub
    state.observer = Observers([state.observer, *hub.observers()])
    state.planner_timing = hub.metrics.planner_decision
    for module in (metrics, stats, dashboard):
        app.include_router(module.router)
