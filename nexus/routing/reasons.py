"""The enumerations that explain routing: why a backend was skipped, why a stage exists, and the
``X-Nexus-Route-Reason`` values. Decisions are made on these members, never on message text.
"""

from __future__ import annotations

from enum import StrEnum


class SkipReason(StrEnum):
    """Why a backend was not a candidate, in the order the checks run (the first failing wins)."""

    UNKNOWN_MODEL = "unknown_model"  # the backend does not list the model
    PRIVACY_ZONE = "privacy_zone"  # open backend, restricted requirement
    TIER = "tier"  # below the required tier
    NO_VISION = "no_vision"
    NO_TOOLS = "no_tools"
    NO_JSON_MODE = "no_json_mode"
    CONTEXT_LENGTH = "context_length"  # input tokens exceed the model's context length
    UNHEALTHY = "unhealthy"
    HEALTH_UNKNOWN = "health_unknown"  # not probed successfully yet
    COOLING_DOWN = "cooling_down"  # after a 429, until its Retry-After
    MODEL_FAILING = "model_failing"  # this model failed here repeatedly: out for a while
    OUTLIER = "outlier"  # quality tracking ejected this model here, or it is on probation
    AT_CAPACITY = "at_capacity"  # in_flight >= max_concurrent
    BUDGET = "budget"  # a cloud backend, while a spend budget keeps the request local


#: Skips that make a more preferred backend's absence a failover.
HEALTH_SKIPS = frozenset(
    {
        SkipReason.UNHEALTHY,
        SkipReason.HEALTH_UNKNOWN,
        SkipReason.COOLING_DOWN,
        SkipReason.MODEL_FAILING,
        SkipReason.OUTLIER,
    }
)


class RouteReason(StrEnum):
    """The ``X-Nexus-Route-Reason`` values (README, "HTTP API")."""

    CAPABILITY_MATCH = "capability-match"
    CAPACITY_OVERFLOW = "capacity-overflow"
    PRIVACY_REQUIREMENT = "privacy-requirement"
    BUDGET_LIMIT = "budget-limit"  # a spend budget moved the request off a cloud backend
    FAILOVER = "failover"


class Role(StrEnum):
    """Why a model was planned: the one requested, a configured fallback, a flexible substitute."""

    REQUESTED = "requested"
    FALLBACK = "fallback"
    SUBSTITUTE = "substitute"
