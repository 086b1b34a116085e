"""Order the backends that can serve a request. Pure: every input is an argument.

Each function takes the eligible backends in configuration order and returns them in the order
they should be attempted:

- ``smart``: highest score first, where (like the reference project, but with floats)
  ``score = (p * w_priority + l * w_load + t * w_latency) / 100`` with
  ``p = 100 - min(priority, 100)`` (lower priority value is preferred; values above 100 score 0),
  ``l = 100 - min(in_flight, 100)`` and ``t = 100 - min(latency_ms / 10, 100)`` (an unknown
  latency scores 100), then multiplied by ``1 - penalty``, the backend's quality penalty for the
  model (:mod:`nexus.backends.quality`; 0 without one). Equal scores keep configuration order.
- ``round_robin``: configuration order rotated by ``rotation``; the caller keeps one counter per
  model and passes its value, so no state lives here.
- ``priority_only``: ascending ``priority``; equal priorities keep configuration order.
- ``random``: a uniform shuffle drawn from ``rng`` (``random.Random(rotation)`` when none is given).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from nexus.backends.state import BackendView
from nexus.config.model import Strategy
from nexus.routing.policy import Weights

_SCALE = 100.0


def smart_score(backend: BackendView, weights: Weights) -> float:
    """The smart score of ``backend`` (higher is better), between 0 and the sum of the weights."""
    priority = _SCALE - min(max(backend.priority, 0), _SCALE)
    load = _SCALE - min(backend.in_flight, _SCALE)
    latency = _SCALE - min((backend.latency_ms or 0.0) / 10.0, _SCALE)
    total = priority * weights.priority + load * weights.load + latency * weights.latency
    return total / _SCALE


def smart(
    pool: Sequence[BackendView], weights: Weights, penalties: Mapping[str, float] | None = None
) -> list[BackendView]:
    if not penalties:
        return sorted(pool, key=lambda backend: -smart_score(backend, weights))
    return sorted(
        pool,
        key=lambda backend: (
            -smart_score(backend, weights) * (1.0 - penalties.get(backend.name, 0.0))
        ),
    )


def round_robin(pool: Sequence[BackendView], rotation: int) -> list[BackendView]:
    if not pool:
        return []
    start = rotation % len(pool)
    return [*pool[start:], *pool[:start]]


def priority_only(pool: Sequence[BackendView]) -> list[BackendView]:
    return sorted(pool, key=lambda backend: backend.priority)


def shuffled(pool: Sequence[BackendView], rng: random.Random) -> list[BackendView]:
    return rng.sample(list(pool), len(pool))


def rank(
    strategy: Strategy,
    pool: Sequence[BackendView],
    *,
    weights: Weights,
    rotation: int = 0,
    rng: random.Random | None = None,
    penalties: Mapping[str, float] | None = None,
) -> list[BackendView]:
    """``pool`` (configuration order) in the order ``strategy`` attempts it. ``penalties``
    (backend name -> quality penalty, smart only)."""
    if len(pool) < 2:
        return list(pool)
    if strategy is Strategy.SMART:
        return smart(pool, weights, penalties)
    if strategy is Strategy.PRIORITY_ONLY:
        return priority_only(pool)
    if strategy is Strategy.ROUND_ROBIN:
        return round_robin(pool, rotation)
    return shuffled(pool, rng if rng is not None else random.Random(rotation))
