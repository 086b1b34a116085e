"""Spend budgets: the gateway's monthly budget (``[routing.budget]``) and each client's daily and
monthly budgets (``[[clients]] daily_usd``, ``monthly_usd``), against the spend in the usage
ledger (:mod:`nexus.state.ledger`, UTC days and months) plus the estimates of the requests still
running.

A budget is *ok* below its soft limit (a share of it), *soft_limit* from there, *hard_limit* once
spent. Past the soft limit a request stays on local backends when one can serve its model (the
planner skips the cloud ones, route reason ``budget-limit``); at the hard limit the budget's action
applies: ``warn`` (as the soft limit, and a warning), ``local_only`` (the gateway's
``block_cloud``: cloud backends never serve) or ``block`` (the gateway's ``block_all``: a 429
``insufficient_quota`` until the period ends). The worst of the budgets that apply decides. A
request is judged once, before it is sent: one already running is never cut off.

Spend is charged when a request ends: the cost Nexus estimated (the ``X-Nexus-Cost-Estimated``
the client received: from the usage of a JSON answer, the upper bound of a stream). While a cloud
request runs, its upper bound counts as pending, so concurrent requests see it.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from loguru import logger

from nexus.config import NexusConfig
from nexus.routing import CloudUse
from nexus.state.ledger import GLOBAL, Ledger
from nexus.state.usage_path import budgets_configured

Period = Literal["day", "month"]
Action = Literal["warn", "local_only", "block"]


class BudgetStatus(StrEnum):
    """The ``X-Nexus-Budget-Status`` values."""

    OK = "ok"
    SOFT = "soft_limit"
    HARD = "hard_limit"


_RANK = {BudgetStatus.OK: 0, BudgetStatus.SOFT: 1, BudgetStatus.HARD: 2}
#: The gateway's hard-limit actions, in the clients' words.
_EFFECTS: dict[Action, str] = {
    "warn": "requests go on (warn), local backends first",
    "local_only": "only local backends serve",
    "block": "requests are refused until it renews",
}
_GLOBAL_ACTIONS: dict[str, Action] = {
    "warn": "warn",
    "block_cloud": "local_only",
    "block_all": "block",
}


@dataclass(frozen=True, slots=True)
class Budget:
    """One limit: the gateway's month (``owner`` is :data:`GLOBAL`) or a client's day or month."""

    owner: str
    period: Period
    limit_usd: float
    soft_percent: float
    action: Action

    @property
    def label(self) -> str:
        """``gateway/month``, ``ci/day``: the metrics label."""
        return f"{'gateway' if self.owner == GLOBAL else self.owner}/{self.period}"

    def describe(self) -> str:
        which = "daily" if self.period == "day" else "monthly"
        if self.owner == GLOBAL:
            return f"the gateway's {which} budget"
        return f"the {which} budget of client '{self.owner}'"


@dataclass(frozen=True, slots=True)
class Standing:
    """Where a request stands: the worst status of its budgets, what that leaves of the cloud,
    and the budget that blocks it (None: it may go on)."""

    status: BudgetStatus = BudgetStatus.OK
    cloud: CloudUse = CloudUse.ALLOWED
    blocked_by: Budget | None = None
    spent_usd: float = 0.0

    def headers(self) -> tuple[tuple[str, str], ...]:
        """``X-Nexus-Budget-Status`` once past a soft limit; nothing below."""
        if self.status is BudgetStatus.OK:
            return ()
        return (("x-nexus-budget-status", self.status.value),)


FREE = Standing()


class Budgets:
    """The budgets of one gateway over its ledger (read through ``ledger``, which may change
    when the gateway starts). ``clock``: wall seconds (UTC days and months)."""

    def __init__(
        self,
        config: NexusConfig,
        ledger: Callable[[], Ledger],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._ledger = ledger
        self._clock = clock
        self._pending: defaultdict[str, float] = defaultdict(float)  # running cloud requests
        self._warned: set[Budget] = set()  # spent budgets whose action is warn, logged once
        self._by_tenant: dict[str, tuple[Budget, ...]] = {}
        gateway = config.routing.budget
        self.gateway_budget: Budget | None = None
        if gateway.monthly_limit_usd is not None:
            action = _GLOBAL_ACTIONS[gateway.hard_limit_action]
            self.gateway_budget = Budget(
                GLOBAL, "month", gateway.monthly_limit_usd, gateway.soft_limit_percent, action
            )
        for client in config.clients:
            limits: tuple[tuple[Period, float | None], ...] = (
                ("day", client.daily_usd),
                ("month", client.monthly_usd),
            )
            soft, action = client.soft_limit_percent, client.hard_limit_action
            self._by_tenant[client.name] = tuple(
                Budget(client.name, period, usd, soft, action)
                for period, usd in limits
                if usd is not None
            )
        self.active = budgets_configured(config)

    def budgets_of(self, tenant: str | None) -> tuple[Budget, ...]:
        """The budgets a request of ``tenant`` is judged by."""
        own = self._by_tenant.get(tenant, ()) if tenant is not None else ()
        return (*own, self.gateway_budget) if self.gateway_budget is not None else own

    def spent(self, budget: Budget) -> float:
        """USD spent in ``budget``'s current period, running requests' estimates included."""
        usage = self._ledger().usage(budget.owner, budget.period, at=self._clock())
        return usage.spend_usd + self._pending[budget.owner]

    def status(self, budget: Budget) -> BudgetStatus:
        spent = self.spent(budget)
        if spent >= budget.limit_usd:
            return BudgetStatus.HARD
        if spent >= budget.limit_usd * budget.soft_percent / 100:
            return BudgetStatus.SOFT
        return BudgetStatus.OK

    def standing(self, tenant: str | None) -> Standing:
        """How a new request of ``tenant`` stands (:data:`FREE` without budgets)."""
        worst, cloud, blocked = BudgetStatus.OK, CloudUse.ALLOWED, None
        for budget in self.budgets_of(tenant):
            status = self.status(budget)
            self._warn_once(budget, status)
            if _RANK[status] > _RANK[worst]:
                worst = status
            if status is BudgetStatus.OK:
                continue
            if status is BudgetStatus.HARD and budget.action == "block":
                blocked = blocked or budget
            elif status is BudgetStatus.HARD and budget.action == "local_only":
                cloud = CloudUse.NEVER
            elif cloud is CloudUse.ALLOWED:
                cloud = CloudUse.UNLESS_LOCAL
        if worst is BudgetStatus.OK:
            return FREE
        return Standing(worst, cloud, blocked)

    def _warn_once(self, budget: Budget, status: BudgetStatus) -> None:
        if status is not BudgetStatus.HARD:
            self._warned.discard(budget)
        elif budget not in self._warned:
            self._warned.add(budget)
            spent = f"{self.spent(budget):.2f} of {budget.limit_usd:.2f} USD"
            logger.warning(
                "{} is spent ({}): {}", budget.describe(), spent, _EFFECTS[budget.action]
            )

    def rows(self) -> list[tuple[str, float, float, int]]:
        """Every budget as (``owner/period``, limit, spent, status 0/1/2), for the metrics."""
        every = [b for own in self._by_tenant.values() for b in own]
        if self.gateway_budget is not None:
            every.append(self.gateway_budget)
        return [(b.label, b.limit_usd, self.spent(b), _RANK[self.status(b)]) for b in every]

    def seconds_left(self, budget: Budget) -> int:
        """Seconds until ``budget``'s period ends (the next UTC day or month)."""
        now = datetime.fromtimestamp(self._clock(), UTC)
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        if budget.period == "day":
            end = start.timestamp() + 86_400
        else:
            year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
            end = start.replace(year=year, month=month, day=1).timestamp()
        return max(1, int(end - now.timestamp()))

    def reserve(self, tenant: str, usd: float) -> None:
        """A cloud request of ``tenant`` may cost up to ``usd``: count it until it ends."""
        self._pending[tenant] += usd
        self._pending[GLOBAL] += usd

    def release(self, tenant: str, usd: float) -> None:
        self._pending[tenant] -= usd
        self._pending[GLOBAL] -= usd
