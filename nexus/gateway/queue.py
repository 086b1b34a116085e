"""The request queue (``[queue]``): when every backend that could serve a request is at its
``max_concurrent``, the request waits here instead of failing, served by priority then arrival.

Only capacity makes a request wait: an unknown model, a privacy or tier rule, or unhealthy
backends are answered at once (the Rust Nexus queues them all, and stalls them for 30 s).

A waiting request is planned again, in queue order, whenever an in-flight slot frees on this
process (:meth:`RequestQueue.slot_freed`, told by the registry) and every :data:`POLL_SECONDS`
(a slot freed by another replica, a cooldown that ended). The first waiter whose new plan has a
candidate is admitted with a lease already taken on that candidate, so neither a later waiter nor
a request arriving in between can take the slot. A new plan refused for another reason than
capacity ends the wait with that refusal; the plan comes from the same planner, so privacy and
tier hold as for any request.

A wait ends with an :class:`Admitted` plan, a :class:`~nexus.routing.Rejection`, or a
:class:`Refused` (the queue is full, the wait reached ``max_wait_seconds``, or the gateway is
shutting down). A waiter whose task is cancelled (its client left) is removed at once.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from nexus.backends.registry import Lease, Registry
from nexus.config.kinds import Priority
from nexus.config.model import QueueConfig
from nexus.routing import Rejection, RoutePlan

#: Seconds between two plannings of the waiters when no local slot frees.
POLL_SECONDS = 0.1
#: How a wait can end, as counted in :meth:`RequestQueue.summary` and the metrics.
ENDED = ("served", "rejected", "full", "timeout", "shutdown", "left")

Replan = Callable[[], RoutePlan | Rejection]
#: Told when a wait ends: the priority, how it ended ("served", "rejected" or an
#: :class:`Ending`), and the seconds waited.
WaitObserver = Callable[[str, str, float], None]


class Ending(StrEnum):
    """Why a wait ended without a backend."""

    FULL = "full"  # max_size requests were already waiting
    TIMEOUT = "timeout"  # max_wait_seconds passed
    SHUTDOWN = "shutdown"  # the gateway is draining


@dataclass(frozen=True, slots=True)
class Admitted:
    """A slot freed: ``plan`` holds a candidate, and ``lease`` is already taken on its first."""

    plan: RoutePlan
    lease: Lease
    waited_s: float


@dataclass(frozen=True, slots=True)
class Refused:
    ending: Ending
    waited_s: float


Result = Admitted | Rejection | Refused


@dataclass(eq=False, slots=True)
class Ticket:
    """One request's place: kept across waits (a request refused by another replica's admission
    waits again without losing its turn). Make it with :meth:`RequestQueue.ticket`."""

    priority: Priority
    seq: int
    deadline: float  # loop time
    enqueued: float
    replan: Replan | None = None
    future: asyncio.Future[Result] | None = field(default=None, repr=False)

    @property
    def order(self) -> tuple[int, int]:
        return self.priority.rank, self.seq


class RequestQueue:
    """The waiting requests of one process, in (priority, arrival) order."""

    def __init__(
        self, config: QueueConfig, registry: Registry, *, observe: WaitObserver | None = None
    ) -> None:
        self.config = config
        self._registry = registry
        self._observe = observe
        self._waiting: list[Ticket] = []
        self._seq = itertools.count()
        self._closed = False
        self._poller: asyncio.Task[None] | None = None
        self.version = 0  # moves whenever a request enters or leaves the queue
        self.ended = Counter[str]()  # waits by how they ended, since start
        self._served_wait = 0.0  # seconds the served waits took, in total

    @property
    def enabled(self) -> bool:
        return self.config.active

    def depth(self) -> dict[str, int]:
        """Waiting requests per priority (every priority present)."""
        counts = dict.fromkeys((p.value for p in Priority), 0)
        for ticket in self._waiting:
            counts[ticket.priority.value] += 1
        return counts

    def summary(self) -> dict[str, Any]:
        """For ``/v1/stats`` and the dashboard."""
        depth, served = self.depth(), self.ended["served"]
        return {
            "enabled": self.enabled,
            "max_size": self.config.max_size,
            "max_wait_seconds": self.config.max_wait_seconds,
            "waiting": sum(depth.values()),
            "by_priority": depth,
            "ended": {how: self.ended[how] for how in ENDED},
            "mean_wait_seconds": round(self._served_wait / served, 3) if served else None,
        }

    def ticket(self, priority: Priority) -> Ticket:
        now = asyncio.get_running_loop().time()
        return Ticket(priority, next(self._seq), now + self.config.max_wait_seconds, now)

    async def wait(self, ticket: Ticket, replan: Replan) -> Result:
        """Wait until ``replan`` gives a plan with a free slot, or the wait ends otherwise."""
        loop = asyncio.get_running_loop()
        if self._closed or len(self._waiting) >= self.config.max_size:
            ending = Ending.SHUTDOWN if self._closed else Ending.FULL
            return self._ended(ticket, Refused(ending, loop.time() - ticket.enqueued))
        ticket.replan, ticket.future = replan, loop.create_future()
        bisect.insort(self._waiting, ticket, key=lambda t: t.order)
        self.version += 1
        self._start_polling()
        try:
            async with asyncio.timeout_at(ticket.deadline):
                return self._ended(ticket, await ticket.future)
        except TimeoutError:
            result = _admitted(ticket) or Refused(Ending.TIMEOUT, loop.time() - ticket.enqueued)
            return self._ended(ticket, result)  # admitted just as the time ran out: served
        except asyncio.CancelledError:  # the client left: a slot it was given is freed
            if (admitted := _admitted(ticket)) is not None:
                admitted.lease.release()
            self._observed(ticket, "left", loop.time() - ticket.enqueued)
            raise
        finally:
            if ticket in self._waiting:
                self._waiting.remove(ticket)
                self.version += 1

    def _ended(self, ticket: Ticket, result: Result) -> Result:
        if isinstance(result, Admitted):
            self._served_wait += result.waited_s
            self._observed(ticket, "served", result.waited_s)
        elif isinstance(result, Refused):
            self._observed(ticket, result.ending.value, result.waited_s)
        else:
            waited = asyncio.get_running_loop().time() - ticket.enqueued
            self._observed(ticket, "rejected", waited)
        return result

    def _observed(self, ticket: Ticket, how: str, waited: float) -> None:
        self.ended[how] += 1
        if self._observe is not None:
            self._observe(ticket.priority.value, how, waited)

    def slot_freed(self) -> None:
        """A lease ended: admit the first waiter that can now be served (one slot freed; the
        poll admits any further ones)."""
        if self._waiting:
            self._dispatch(first_only=True)

    def close(self) -> None:
        """Draining: every waiter is answered with :attr:`Ending.SHUTDOWN`; later waits too."""
        self._closed = True
        now = asyncio.get_running_loop().time()
        for ticket in list(self._waiting):
            if ticket.future is not None and not ticket.future.done():
                self._settle(ticket, Refused(Ending.SHUTDOWN, now - ticket.enqueued))

    def _dispatch(self, *, first_only: bool = False) -> None:
        """Plan the waiters again in queue order; admit those with a free slot."""
        now = asyncio.get_running_loop().time()
        for ticket in list(self._waiting):
            assert ticket.replan is not None and ticket.future is not None
            if ticket.future.done():  # cancelled: its client left, its task has yet to run
                continue
            result = ticket.replan()
            if isinstance(result, RoutePlan):
                lease = self._registry.lease(result.candidates[0].backend.name)
                self._settle(ticket, Admitted(result, lease, now - ticket.enqueued))
                if first_only:
                    return
            elif not result.busy:
                self._settle(ticket, result)

    def _settle(self, ticket: Ticket, result: Result) -> None:
        self._waiting.remove(ticket)
        self.version += 1
        assert ticket.future is not None
        ticket.future.set_result(result)

    def _start_polling(self) -> None:
        if self._poller is None or self._poller.done():
            loop = asyncio.get_running_loop()
            self._poller = loop.create_task(self._poll(), name="queue-poll")

    async def _poll(self) -> None:
        while self._waiting:
            await asyncio.sleep(POLL_SECONDS)
            if self._waiting:
                self._dispatch()


def _admitted(ticket: Ticket) -> Admitted | None:
    """The admission ``ticket`` was given, if its wait was settled that way."""
    future = ticket.future
    if future is None or not future.done() or future.cancelled():
        return None
    result = future.result()
    return result if isinstance(result, Admitted) else None
