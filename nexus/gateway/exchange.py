"""One inference request on its way through the gateway: requirements, plan, attempts, and the
report the observers get once it is over (for a stream, when the stream has ended). The report
is built from the outcome values the gateway holds, never read back off the HTTP response."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

from nexus.config.kinds import Priority, Zone
from nexus.errors import InvalidRequest
from nexus.gateway.attempts import Exhausted
from nexus.gateway.failures import (
    NO_RETRY,
    budget_spent,
    exhausted,
    invalid,
    queue_refused,
    rejected,
)
from nexus.gateway.opener import Call
from nexus.gateway.outcome import Answer, AnswerStream, Failed, Outcome, Problem
from nexus.gateway.queue import Admitted, Refused
from nexus.gateway.tenants import DEFAULT, PRIORITY_HEADER, Tenant
from nexus.headers import NexusHeaders
from nexus.observability.events import Completed
from nexus.routing import Candidate, Rejection, RequestKind, Requirements, RoutePlan
from nexus.upstream.relay import ANTHROPIC_HEADERS

if TYPE_CHECKING:
    from nexus.gateway.service import Gateway
    from nexus.observability.tracing import RequestTrace


class Exchange:
    """Made by :meth:`Gateway.exchange`; :meth:`run` it once, or end it with :meth:`refuse`
    (the request could not be read) or :meth:`client_left`. Each returns the outcome to render
    and reports the request (a stream: when it ends)."""

    __slots__ = (
        "_gateway",
        "kind",
        "path",
        "request_id",
        "model",
        "stream",
        "input_tokens",
        "tenant",
        "_started",
        "_started_at",
        "_answer",
        "_extra",
        "_outliers",
        "_charged",
        "_reserved",
        "_trace",
    )

    def __init__(self, gateway: Gateway, kind: RequestKind, path: str, request_id: str) -> None:
        self._gateway = gateway
        self.kind, self.path, self.request_id = kind, path, request_id
        self.model = "-"  # as the client asked; "-" until the body was read
        self.stream = False
        self.input_tokens: int | None = None
        self.tenant: str | None = None  # the client's tenant name, when keys are configured
        self._started = gateway.clock()
        self._started_at = time.time()
        self._answer: Answer | None = None
        self._extra: tuple[tuple[str, str], ...] = ()  # headers every answer carries
        self._charged: tuple[Tenant, int] | None = None  # rate-limited: (tenant, tokens taken)
        self._reserved = 0.0  # USD counted against the budgets while the request runs
        self._outliers: tuple[str, ...] = ()  # skipped by quality tracking in the plan used
        self._trace: RequestTrace | None = None  # the request's spans, with tracing on

    async def run(
        self,
        raw: bytes,
        body: Mapping[str, Any],
        headers: Mapping[str, str],
        tenant: Tenant | None = None,
    ) -> Outcome:
        """Route and forward the request (``body`` is ``raw`` parsed by the dialect) for
        ``tenant`` (None: no client keys are configured)."""
        gateway = self._gateway
        self.model = str(body.get("model", "-"))
        self.tenant = tenant.name if tenant is not None else None
        if gateway.tracing is not None:
            self._trace = gateway.tracing.request(self.kind, self.model, self.request_id, headers)
        try:
            requirements = gateway.requirements(body, headers, self.kind)
            priority = (tenant or DEFAULT).priority_of(headers.get(PRIORITY_HEADER))
        except (InvalidRequest, RecursionError) as exc:
            return self._finish(invalid(exc, NexusHeaders(self.request_id)))
        governed = await self._govern(tenant, requirements)
        if isinstance(governed, Failed):
            return self._finish(governed)
        requirements = governed
        self.stream, self.input_tokens = requirements.stream, requirements.input_tokens
        call = Call(
            self.path,
            raw,
            body,
            requirements.requested_model,
            requirements.stream,
            self.request_id,
            exact_input_tokens=requirements.input_tokens if requirements.tokens_exact else None,
            max_tokens=requirements.max_tokens,
            kind=self.kind,
            forwarded=_forwarded(headers) if self.kind is RequestKind.MESSAGES else (),
        )
        return await self._serve(requirements, call, priority)

    async def _serve(self, requirements: Requirements, call: Call, priority: Priority) -> Outcome:
        """Plan and attempt. When every capable backend is at capacity the request waits in the
        queue; refused by another replica's admission, it waits again, keeping its turn."""
        gateway, queue = self._gateway, self._gateway.queue
        routed: RoutePlan | Rejection = gateway.plan(requirements)
        ticket, lease, full = None, None, False
        while True:
            if queue.enabled and (full or (isinstance(routed, Rejection) and routed.busy)):
                ticket = ticket or queue.ticket(priority)
                waited = await queue.wait(ticket, partial(gateway.plan, requirements))
                if isinstance(waited, Refused):
                    return self._finish(self._queue_refused(waited, requirements))
                routed, lease = (
                    (waited.plan, waited.lease) if isinstance(waited, Admitted) else (waited, None)
                )
            if isinstance(routed, Rejection):
                return self._finish(rejected(routed, NexusHeaders(self.request_id)))
            self._outliers = routed.outliers()
            if gateway.budgets.active and not self._reserved:
                self._reserve(routed.candidates[0], call)
            result = await gateway.attempts.run(routed, call, lease=lease, trace=self._trace)
            full = isinstance(result, Exhausted) and result.at_capacity
            if not (full and queue.enabled):
                return self._ended(result, routed)

    def _ended(self, result: Answer | Exhausted, plan: RoutePlan) -> Outcome:
        gateway = self._gateway
        if isinstance(result, Exhausted):
            interval = gateway.config.health_check.interval_seconds
            snapshot = gateway.registry.snapshot()
            return self._finish(exhausted(result, plan, snapshot, health_interval=interval))
        if result.stream is not None:
            self._answer = result
            result.stream.on_end = self._stream_ended
            return self._stamped(result)
        return self._finish(result)

    async def _govern(
        self, tenant: Tenant | None, requirements: Requirements
    ) -> Requirements | Failed:
        """Apply the tenant's model list, privacy ceiling, rate limits and the spend budgets:
        the requirements as they tighten, or why the request is refused."""
        if tenant is not None:
            if not tenant.allows(requirements.requested_model, requirements.model):
                message = tenant.refusal(requirements.requested_model)
                headers = NexusHeaders(self.request_id)
                return Failed(Problem.FORBIDDEN, message, headers, param="model")
            if tenant.restricted and requirements.privacy is not Zone.RESTRICTED:
                requirements = replace(requirements, privacy=Zone.RESTRICTED)
            if tenant.limited and (refused := await self._rate(tenant, requirements)):
                return refused
        budgets = self._gateway.budgets
        if not budgets.active:
            return requirements
        standing = budgets.standing(self.tenant)
        self._extra += standing.headers()
        if standing.blocked_by is not None:
            return budget_spent(standing.blocked_by, budgets, NexusHeaders(self.request_id))
        if standing.cloud is not requirements.cloud:
            requirements = replace(requirements, cloud=standing.cloud)
        return requirements

    async def _rate(self, tenant: Tenant, requirements: Requirements) -> Failed | None:
        """Take the request from the tenant's rpm and tpm; the refusal when it is over."""
        tokens = requirements.input_tokens + (requirements.max_tokens or 0)
        verdict = await self._gateway.rate_check(tenant, tokens)
        self._extra = verdict.headers
        if verdict.allowed:
            self._charged = (tenant, tokens)
            return None
        wait, retry_after = verdict.retry_after_seconds, None
        if wait is not None:
            retry_after = math.ceil(wait)
            self._extra += (("retry-after-ms", str(math.ceil(wait * 1000))),)
        else:  # it can never fit: retrying cannot help
            self._extra += (NO_RETRY,)
        message = verdict.message or f"client '{tenant.name}' is over its rate limit"
        headers = NexusHeaders(self.request_id)
        return Failed(Problem.RATE_LIMITED, message, headers, retry_after=retry_after)

    def _queue_refused(self, refused: Refused, requirements: Requirements) -> Failed:
        now = self._gateway.plan(requirements, advance=False)
        rejection = now if isinstance(now, Rejection) else None
        config, model = self._gateway.queue.config, requirements.model
        return queue_refused(refused, rejection, config, model, NexusHeaders(self.request_id))

    def refuse(self, exc: InvalidRequest) -> Failed:
        """The request could not be read (bad JSON, a missing field, too large)."""
        failed = invalid(exc, NexusHeaders(self.request_id))
        self._report(failed)
        return failed

    def client_left(self) -> Failed:
        """The client went away before the answer started (logged as 499, never sent)."""
        failed = Failed(
            Problem.CLIENT_GONE, "the client closed the connection", NexusHeaders(self.request_id)
        )
        self._report(failed)
        return failed

    def _settle(self, outcome: Outcome, output: int | None) -> None:
        """Correct the tokens taken from the tenant's tpm: nothing for a request no backend
        answered, input plus output when the answer reported its usage."""
        assert self._charged is not None
        tenant, taken = self._charged
        if isinstance(outcome, Failed):
            self._gateway.rate_settle(tenant, taken, 0)
        elif output is not None and self.input_tokens is not None:
            self._gateway.rate_settle(tenant, taken, self.input_tokens + output)

    def _reserve(self, candidate: Candidate, call: Call) -> None:
        """Count a cloud request's upper bound against the budgets while it runs."""
        bound = self._gateway.attempts.cost_bound(candidate, call)
        if bound:
            self._reserved = bound
            self._gateway.budgets.reserve(self._owner, bound)

    @property
    def _owner(self) -> str:
        """Whose usage this request is (the tenant; ``default`` without client keys)."""
        return self.tenant or DEFAULT.name

    def _charge(self, outcome: Outcome, output: int | None) -> None:
        """Record the request in the usage ledger: tokens of an answer, the cost the client
        was told; release what :meth:`_reserve` counted."""
        gateway = self._gateway
        if self._reserved:
            gateway.budgets.release(self._owner, self._reserved)
        answered = isinstance(outcome, Answer) and outcome.status < 300
        gateway.ledger.charge(
            self._owner,
            usd=outcome.headers.cost_usd or 0.0,
            input_tokens=(self.input_tokens or 0) if answered else 0,
            output_tokens=(output or 0) if answered else 0,
        )

    def _stamped(self, outcome: Outcome) -> Outcome:
        """``outcome`` with the headers every answer of this request carries."""
        if not self._extra:
            return outcome
        headers = outcome.headers
        return replace(outcome, headers=replace(headers, extra=headers.extra + self._extra))

    def _finish(self, outcome: Outcome) -> Outcome:
        self._report(outcome)
        return self._stamped(outcome)

    def _stream_ended(self, stream: AnswerStream) -> None:
        assert self._answer is not None
        self._report(self._answer, broken=stream.failure is not None)

    def _report(self, outcome: Outcome, *, broken: bool = False) -> None:
        headers = outcome.headers
        if isinstance(outcome, Answer):
            failovers, ttfb, output = outcome.failed_attempts, outcome.ttfb_s, outcome.output_tokens
        else:  # the last failed attempt did not move on
            failovers, ttfb, output = max(0, outcome.failed_attempts - 1), None, None
        if self._charged is not None:
            self._settle(outcome, output)
        self._charge(outcome, output)
        event = Completed(
            request_id=self.request_id,
            endpoint=self.kind.value,
            model=self.model,
            backend=headers.backend,
            location=headers.location,
            route_reason=headers.route_reason,
            status=outcome.status,
            stream=self.stream,
            started_at=self._started_at,
            duration_s=self._gateway.clock() - self._started,
            ttfb_s=ttfb,
            failed_attempts=outcome.failed_attempts,
            failovers=failovers,
            fallback_model=headers.fallback_model,
            cost_usd=headers.cost_usd,
            stream_broken=broken,
            input_tokens=self.input_tokens,
            output_tokens=output,
            tenant=self.tenant,
            outliers=self._outliers,
        )
        self._gateway.observer.completed(event)
        if self._trace is not None:
            self._trace.end(event)


def _forwarded(headers: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The client's headers a native Messages backend needs (version, beta features)."""
    return tuple((name, value) for name in ANTHROPIC_HEADERS if (value := headers.get(name)))
