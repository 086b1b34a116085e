"""Routing: what a request needs (:mod:`.requirements`), the administrator's rules
(:mod:`.policy`), and the pure planner (:mod:`.planner`) that turns both and a backend snapshot
into a :class:`RoutePlan` or a :class:`Rejection`.
"""

from nexus.routing.planner import plan, recovery_time
from nexus.routing.policy import Constraint, RoutingPolicy
from nexus.routing.reasons import Role, RouteReason, SkipReason
from nexus.routing.requirements import (
    CloudUse,
    RequestKind,
    Requirements,
    TierMode,
    requirements_from,
)
from nexus.routing.route import Candidate, Decision, Rejection, RoutePlan, Stage

__all__ = [
    "Candidate",
    "CloudUse",
    "Constraint",
    "Decision",
    "Rejection",
    "RequestKind",
    "Requirements",
    "Role",
    "RouteReason",
    "RoutePlan",
    "RoutingPolicy",
    "SkipReason",
    "Stage",
    "TierMode",
    "plan",
    "recovery_time",
    "requirements_from",
]
