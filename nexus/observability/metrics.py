"""Prometheus metrics, on a :class:`CollectorRegistry` owned by the app (never the global one).

Every metric is defined here. Per-request metrics come from
:class:`~nexus.observability.events.Completed` events (every response of the inference endpoints,
errors and streams included); backend gauges are read from the registry snapshot at scrape time;
the planner's decision time comes from :meth:`nexus.gateway.Gateway.plan`. Label values are bounded
(:mod:`nexus.observability.labels`): backend names, known models, status classes, route reasons.

=======================================  =========  ============================================
metric                                   type       labels
=======================================  =========  ============================================
nexus_requests_total                     counter    backend, model, status, route_reason
nexus_request_duration_seconds           histogram  backend, model
nexus_time_to_first_byte_seconds         histogram  backend, model
nexus_streams_total                      counter    backend, model
nexus_stream_breaks_total                counter    backend
nexus_tokens_total                       counter    backend, model, type (input | output)
nexus_cost_estimated_usd_total           counter    backend, model
nexus_fallbacks_total                    counter    model, fallback_model
nexus_failovers_total                    counter    model
nexus_planner_decision_seconds           histogram  (none)
nexus_backends_total                     gauge      (none)
nexus_backends_healthy                   gauge      (none)
nexus_in_flight                          gauge      backend
nexus_queue_depth                        gauge      priority
nexus_queue_wait_seconds                 histogram  priority, outcome
nexus_tenant_requests_total              counter    tenant, status
nexus_tenant_cost_usd_total              counter    tenant
nexus_budget_limit_usd                   gauge      budget
nexus_budget_spending_usd                gauge      budget
nexus_budget_status                      gauge      budget (0 ok, 1 soft limit, 2 hard limit)
nexus_backend_attempts                   gauge      backend, model, window (5m, 1h, 24h)
nexus_backend_error_rate                 gauge      backend, model, window (from min_requests)
nexus_backend_ttft_seconds               gauge      backend, model, window (mean)
nexus_backend_ejected                    gauge      backend, model (1 ejected, else 0)
=======================================  =========  ============================================
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from nexus.backends.quality import QualityStore
from nexus.backends.quality_view import PairStatus
from nexus.backends.quality_windows import WINDOWS
from nexus.backends.state import Snapshot, Status
from nexus.observability.events import Completed
from nexus.observability.labels import NONE, backend_label, status_class

#: Seconds, for whole requests and time to first byte (local models answer in milliseconds,
#: long generations take minutes).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
#: Seconds, for one routing decision (microseconds normally).
PLANNER_BUCKETS = (1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 5e-2)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True, slots=True)
class _Series:
    """The labelled children one request updates, cached per label combination (``labels()``
    validates and locks on every call; a dict lookup does not)."""

    requests: Counter
    duration: Histogram
    ttfb: Histogram
    streams: Counter
    input_tokens: Counter
    output_tokens: Counter
    cost: Counter


class Metrics:
    """The observer that turns request events into metrics, and the app's metrics registry."""

    def __init__(self, snapshot: Callable[[], Snapshot], model_label: Callable[[str], str]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._model_label = model_label
        self._series: dict[tuple[str, str, str, str, str], _Series] = {}
        self._define_per_request(self.registry)
        self._define_per_event(self.registry)
        self.registry.register(BackendGauges(snapshot))

    def _define_per_request(self, r: CollectorRegistry) -> None:
        """The metrics every request updates (cached together in :class:`_Series`)."""
        by_model = ["backend", "model"]
        self._requests = Counter(
            "nexus_requests_total",
            "Responses of the inference endpoints, errors and streams included, by client API.",
            ["backend", "model", "status", "route_reason", "api"],
            registry=r,
        )
        self._duration = Histogram(
            "nexus_request_duration_seconds",
            "Time from the request's arrival until its response (or stream) ended.",
            by_model,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._ttfb = Histogram(
            "nexus_time_to_first_byte_seconds",
            "Time until the backend's first body byte (a stream's first chunk) was ready.",
            by_model,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._streams = Counter(
            "nexus_streams_total", "Streaming responses (SSE).", by_model, registry=r
        )
        self._tokens = Counter(
            "nexus_tokens_total",
            "Tokens of successful responses: input as Nexus counted them, output from usage.",
            ["backend", "model", "type"],
            registry=r,
        )
        self._cost = Counter(
            "nexus_cost_estimated_usd_total",
            "Estimated cost of cloud requests in USD (an upper bound for streams).",
            by_model,
            registry=r,
        )

    def _define_per_event(self, r: CollectorRegistry) -> None:
        """Metrics of what happens to some requests only, and of the planner."""
        self._breaks = Counter(
            "nexus_stream_breaks_total",
            "Streams the backend broke after they had started.",
            ["backend"],
            registry=r,
        )
        self._fallbacks = Counter(
            "nexus_fallbacks_total",
            "Requests served by a fallback or substitute model.",
            ["model", "fallback_model"],
            registry=r,
        )
        self._failovers = Counter(
            "nexus_failovers_total",
            "Moves from a failed attempt to another candidate.",
            ["model"],
            registry=r,
        )
        self._planner = Histogram(
            "nexus_planner_decision_seconds",
            "Time of one routing decision (the planner alone).",
            buckets=PLANNER_BUCKETS,
            registry=r,
        )
        self._tenant_requests = Counter(
            "nexus_tenant_requests_total",
            "Requests per client (tenant; 'default' without client keys).",
            ["tenant", "status"],
            registry=r,
        )
        self._tenant_cost = Counter(
            "nexus_tenant_cost_usd_total",
            "Estimated cost (X-Nexus-Cost-Estimated) per client.",
            ["tenant"],
            registry=r,
        )
        self._queue_wait = Histogram(
            "nexus_queue_wait_seconds",
            "Time requests waited in the queue, by how the wait ended "
            "(served, rejected, full, timeout, shutdown, left).",
            ["priority", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )

    def completed(self, event: Completed) -> None:
        model = self._model_label(event.model)
        backend = backend_label(event.backend)
        code = status_class(event.status)
        key = (backend, model, code, event.route_reason or NONE, event.endpoint)
        series = self._series.get(key) or self._new_series(key)
        series.requests.inc()
        series.duration.observe(event.duration_s)
        if event.ttfb_s is not None:
            series.ttfb.observe(event.ttfb_s)
        if event.stream:
            series.streams.inc()
        if event.stream_broken:
            self._breaks.labels(backend).inc()
        if event.cost_usd:
            series.cost.inc(event.cost_usd)
        if code == "2xx":
            if event.input_tokens:
                series.input_tokens.inc(event.input_tokens)
            if event.output_tokens:
                series.output_tokens.inc(event.output_tokens)
        if event.fallback_model is not None:
            self._fallbacks.labels(model, self._model_label(event.fallback_model)).inc()
        moves = event.failovers
        if moves:
            self._failovers.labels(model).inc(moves)
        tenant = event.tenant or "default"
        self._tenant_requests.labels(tenant, code).inc()
        if event.cost_usd:
            self._tenant_cost.labels(tenant).inc(event.cost_usd)

    def queue_wait(self, priority: str, outcome: str, seconds: float) -> None:
        """Record the end of one wait in the queue."""
        self._queue_wait.labels(priority, outcome).observe(seconds)

    def watch_budgets(self, budgets: Callable[[], Iterable[tuple[str, float, float, int]]]) -> None:
        """Expose ``budgets()`` rows (label, limit USD, spent USD, status 0/1/2) as gauges."""
        self.registry.register(BudgetGauges(budgets))

    def watch_quality(self, store: QualityStore) -> None:
        """Expose the quality store's figures per backend, model and window."""
        self.registry.register(QualityGauges(store))

    def watch_queue(self, depth: Callable[[], Mapping[str, int]]) -> None:
        """Expose ``depth()`` (waiting requests per priority) as ``nexus_queue_depth``."""
        self.registry.register(QueueGauge(depth))

    def planner_decision(self, seconds: float) -> None:
        """Record one routing decision that took ``seconds``."""
        self._planner.observe(seconds)

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric now."""
        return generate_latest(self.registry)

    def _new_series(self, key: tuple[str, str, str, str, str]) -> _Series:
        backend, model = key[:2]
        series = _Series(
            requests=self._requests.labels(*key),
            duration=self._duration.labels(backend, model),
            ttfb=self._ttfb.labels(backend, model),
            streams=self._streams.labels(backend, model),
            input_tokens=self._tokens.labels(backend, model, "input"),
            output_tokens=self._tokens.labels(backend, model, "output"),
            cost=self._cost.labels(backend, model),
        )
        self._series[key] = series
        return series


class BackendGauges:
    """Backend counts and in-flight requests, read from the registry snapshot at scrape time."""

    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot

    def describe(self) -> Iterable[Metric]:
        return self._families(None)

    def collect(self) -> Iterable[Metric]:
        return self._families(self._snapshot())

    @staticmethod
    def _families(snapshot: Snapshot | None) -> list[Metric]:
        backends = () if snapshot is None else snapshot.backends
        healthy = sum(1 for backend in backends if backend.status is Status.HEALTHY)
        in_flight = GaugeMetricFamily(
            "nexus_in_flight",
            "Requests in flight per backend, streams included.",
            labels=["backend"],
        )
        for backend in backends:
            in_flight.add_metric([backend.name], backend.in_flight)
        return [
            GaugeMetricFamily("nexus_backends_total", "Backends known.", value=len(backends)),
            GaugeMetricFamily("nexus_backends_healthy", "Healthy backends.", value=healthy),
            in_flight,
        ]


class QueueGauge:
    """Requests waiting in the queue per priority, read at scrape time."""

    def __init__(self, depth: Callable[[], Mapping[str, int]]) -> None:
        self._depth = depth

    def describe(self) -> Iterable[Metric]:
        return [self._family({})]

    def collect(self) -> Iterable[Metric]:
        return [self._family(self._depth())]

    @staticmethod
    def _family(depth: Mapping[str, int]) -> Metric:
        family = GaugeMetricFamily(
            "nexus_queue_depth", "Requests waiting for a backend slot.", labels=["priority"]
        )
        for priority, count in depth.items():
            family.add_metric([priority], count)
        return family


class BudgetGauges:
    """Each spend budget's limit, spending and status (0 ok, 1 soft, 2 hard), at scrape time."""

    def __init__(self, rows: Callable[[], Iterable[tuple[str, float, float, int]]]) -> None:
        self._rows = rows

    def describe(self) -> Iterable[Metric]:
        return self._families(())

    def collect(self) -> Iterable[Metric]:
        return self._families(self._rows())

    @staticmethod
    def _families(rows: Iterable[tuple[str, float, float, int]]) -> list[Metric]:
        limit = GaugeMetricFamily("nexus_budget_limit_usd", "Budget (USD).", labels=["budget"])
        spent = GaugeMetricFamily(
            "nexus_budget_spending_usd", "Spent in the budget's period (USD).", labels=["budget"]
        )
        status = GaugeMetricFamily(
            "nexus_budget_status", "0 ok, 1 past the soft limit, 2 spent.", labels=["budget"]
        )
        for label, limit_usd, spent_usd, code in rows:
            limit.add_metric([label], limit_usd)
            spent.add_metric([label], spent_usd)
            status.add_metric([label], code)
        return [limit, spent, status]


class QualityGauges:
    """Attempts, error rate and mean TTFT per (backend, model) and window, and whether each pair
    is ejected now (1; 0 when ok or recovering), at scrape time."""

    def __init__(self, store: QualityStore) -> None:
        self._store = store

    def describe(self) -> Iterable[Metric]:
        return self._families(None)

    def collect(self) -> Iterable[Metric]:
        return self._families(self._store)

    @staticmethod
    def _families(store: QualityStore | None) -> list[Metric]:
        labels = ["backend", "model", "window"]
        attempts = GaugeMetricFamily(
            "nexus_backend_attempts", "Attempts in the window (quality).", labels=labels
        )
        rates = GaugeMetricFamily(
            "nexus_backend_error_rate", "Failed share of attempts in the window.", labels=labels
        )
        ttft = GaugeMetricFamily(
            "nexus_backend_ttft_seconds", "Mean time to first token in the window.", labels=labels
        )
        ejected = GaugeMetricFamily(
            "nexus_backend_ejected",
            "1 while the backend's model is ejected for its quality, else 0 (ok or recovering).",
            labels=["backend", "model"],
        )
        pairs = store.pairs() if store is not None else []
        for backend, model in pairs:
            assert store is not None
            status = store.state(backend, model).status
            ejected.add_metric([backend, model], 1 if status is PairStatus.EJECTED else 0)
            for window in WINDOWS:
                figures = store.figures(backend, model, window)
                key = [backend, model, window]
                attempts.add_metric(key, figures.attempts)
                if figures.error_rate is not None:
                    rates.add_metric(key, figures.error_rate)
                if figures.ttft_ms is not None:
                    ttft.add_metric(key, figures.ttft_ms / 1000)
        return [attempts, rates, ttft, ejected]
