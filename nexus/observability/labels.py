"""Bounded label values for metrics and stats: never raw user input.

A model label is a model the gateway knows (served by a backend, listed in a backend's fixed
``models``, or named by an alias or fallback), else ``other``; ``none`` when the request could not
be parsed. A status label is its class (``2xx`` ...). A backend label is a configured or
discovered backend name, ``none`` when no backend was chosen.
"""

from __future__ import annotations

from collections.abc import Callable

from nexus.backends.registry import Registry
from nexus.routing import RoutingPolicy

NONE = "none"
OTHER = "other"
#: What :class:`~nexus.observability.events.Completed` carries when the body was not parsed.
UNPARSED_MODEL = "-"


_CLASSES = {status: f"{status // 100}xx" for status in range(100, 600)}


def status_class(status: int) -> str:
    """``200`` -> ``"2xx"``; anything outside 100-599 -> ``"other"``."""
    return _CLASSES.get(status, OTHER)


def backend_label(backend: str | None) -> str:
    return NONE if backend is None else backend


class ModelLabels:
    """Maps a requested model name to a bounded label.

    The set of known models is rebuilt from the registry and the routing policy only when a name
    is not in it yet, so the usual case is one set lookup. A model that was known stays known.
    """

    def __init__(self, sources: Callable[[], tuple[Registry, RoutingPolicy]]) -> None:
        self._sources = sources
        self._known: set[str] = set()

    def __call__(self, model: str) -> str:
        if model in self._known:
            return model
        if model == UNPARSED_MODEL:
            return NONE
        registry, policy = self._sources()
        if policy.mentions(model):  # aliases and fallbacks
            self._known.add(model)
            return model
        self._known |= _served(registry)
        return model if model in self._known else OTHER


def _served(registry: Registry) -> set[str]:
    """Every model a backend serves now or lists in its fixed ``models``."""
    known = {model for backend in registry.snapshot().backends for model in backend.models}
    for config in registry.configs():
        known.update(config.models or ())
    return known
