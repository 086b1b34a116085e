"""/metrics: pinned names and labels, and values that match the requests a test sends."""

from __future__ import annotations

from nexus.backends.quality import QualityStore
from nexus.backends.registry import Registry
from nexus.backends.state import ModelInfo, ProbeResult
from nexus.backends.transitions import Thresholds
from nexus.config.model import BackendConfig, RoutingConfig
from nexus.config.quality import QualityConfig
from nexus.observability.events import Completed
from nexus.observability.labels import ModelLabels, status_class
from nexus.observability.metrics import Metrics
from nexus.routing import RoutingPolicy
from tests.api.gateway import CHAT, chat_body
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import FakeModel
from tests.observability.observed import observed, parse, scrape, value

#: The public surface: every metric, its type and its label names. Changing it is a contract change.
PINNED = {
    "nexus_requests_total": ("counter", {"backend", "model", "status", "route_reason", "api"}),
    "nexus_request_duration_seconds": ("histogram", {"backend", "model"}),
    "nexus_time_to_first_byte_seconds": ("histogram", {"backend", "model"}),
    "nexus_streams_total": ("counter", {"backend", "model"}),
    "nexus_stream_breaks_total": ("counter", {"backend"}),
    "nexus_tokens_total": ("counter", {"backend", "model", "type"}),
    "nexus_cost_estimated_usd_total": ("counter", {"backend", "model"}),
    "nexus_fallbacks_total": ("counter", {"model", "fallback_model"}),
    "nexus_failovers_total": ("counter", {"model"}),
    "nexus_planner_decision_seconds": ("histogram", set()),
    "nexus_backends_total": ("gauge", set()),
    "nexus_backends_healthy": ("gauge", set()),
    "nexus_in_flight": ("gauge", {"backend"}),
    "nexus_queue_wait_seconds": ("histogram", {"priority", "outcome"}),
    "nexus_queue_depth": ("gauge", {"priority"}),
    "nexus_tenant_requests_total": ("counter", {"tenant", "status"}),
    "nexus_tenant_cost_usd_total": ("counter", {"tenant"}),
    "nexus_budget_limit_usd": ("gauge", {"budget"}),
    "nexus_budget_spending_usd": ("gauge", {"budget"}),
    "nexus_budget_status": ("gauge", {"budget"}),
    "nexus_backend_attempts": ("gauge", {"backend", "model", "window"}),
    "nexus_backend_error_rate": ("gauge", {"backend", "model", "window"}),
    "nexus_backend_ttft_seconds": ("gauge", {"backend", "model", "window"}),
    "nexus_backend_ejected": ("gauge", {"backend", "model"}),
}


def event(**overrides: object) -> Completed:
    values: dict[str, object] = {
        "request_id": "r1",
        "endpoint": "chat",
        "model": "m",
        "backend": "a",
        "location": "cloud",
        "route_reason": "capability-match",
        "status": 200,
        "stream": False,
        "started_at": 1_700_000_000.0,
        "duration_s": 0.25,
        "ttfb_s": 0.1,
        "failed_attempts": 0,
        "fallback_model": None,
        "cost_usd": None,
    }
    values.update(overrides)
    return Completed(**values)  # type: ignore[arg-type]


def registry(*names: str, models: tuple[str, ...] = ("m",)) -> Registry:
    configs = [
        BackendConfig.model_validate({"name": n, "type": "vllm", "url": "http://x"}) for n in names
    ]
    reg = Registry(configs, thresholds=Thresholds(3, 2))
    for name in names:
        probe = ProbeResult(ok=True, models=tuple(ModelInfo(m) for m in models), latency_ms=5)
        reg.record_probe(name, probe, next_probe_at=None)
    return reg


def metrics_for(reg: Registry, **routing: object) -> Metrics:
    policy = RoutingPolicy(RoutingConfig.model_validate(routing))
    return Metrics(reg.snapshot, ModelLabels(lambda: (reg, policy)))


def test_metric_names_types_and_labels_are_pinned() -> None:
    metrics = metrics_for(registry("a"), fallbacks={"m": ["m2"]})
    metrics.completed(
        event(stream=True, stream_broken=True, cost_usd=0.5, input_tokens=3, output_tokens=4)
    )
    metrics.completed(
        event(fallback_model="m2", failed_attempts=1, failovers=1, route_reason="failover")
    )
    metrics.planner_decision(1e-5)
    metrics.queue_wait("high", "served", 0.2)
    metrics.watch_queue(lambda: {"high": 1, "normal": 0, "low": 0})
    metrics.watch_budgets(lambda: [("gateway/month", 10.0, 7.5, 1)])
    quality = QualityStore(QualityConfig(min_requests=1), clock=lambda: 1000.0)
    quality.record_success("a", "m", ttft_s=0.1, total_s=1.0, output_tokens=None, stream=False)
    metrics.watch_quality(quality)
    found: dict[str, tuple[str, set[str]]] = {}
    for family in metrics.registry.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        labels = {
            key
            for sample in family.samples
            if not sample.name.endswith("_created")
            for key in sample.labels
        }
        found[name] = (family.type, labels - {"le"})
    assert found == PINNED


def test_cost_tokens_fallbacks_and_stream_breaks_from_events() -> None:
    metrics = metrics_for(registry("a"), fallbacks={"m": ["m2"]})
    metrics.completed(event(cost_usd=0.0042, input_tokens=10, output_tokens=5))
    metrics.completed(event(cost_usd=0.001, input_tokens=7, stream=True, stream_broken=True))
    metrics.completed(event(fallback_model="m2", route_reason="failover"))
    metrics.completed(event(status=429, input_tokens=100))  # tokens of failed requests: not counted
    samples = parse(metrics.exposition().decode())
    ab = {"backend": "a", "model": "m"}
    assert round(value(samples, "nexus_cost_estimated_usd_total", **ab), 6) == 0.0052
    assert value(samples, "nexus_tokens_total", **ab, type="input") == 17
    assert value(samples, "nexus_tokens_total", **ab, type="output") == 5
    assert value(samples, "nexus_streams_total", **ab) == 1
    assert value(samples, "nexus_stream_breaks_total", backend="a") == 1
    assert value(samples, "nexus_fallbacks_total", model="m", fallback_model="m2") == 1
    reasons = {"backend": "a", "model": "m", "route_reason": "capability-match"}
    assert value(samples, "nexus_requests_total", api="chat", **reasons, status="2xx") == 2
    assert value(samples, "nexus_requests_total", api="chat", **reasons, status="4xx") == 1


def test_model_labels_are_bounded_to_known_models() -> None:
    reg = registry("a", models=("served",))
    policy = RoutingPolicy(RoutingConfig.model_validate({"aliases": {"fast": "served"}}))
    labels = ModelLabels(lambda: (reg, policy))
    assert labels("served") == "served"
    assert labels("fast") == "fast"
    assert labels("anything a client typed") == "other"
    assert labels("-") == "none"
    reg.record_probe("a", ProbeResult(ok=True, models=(ModelInfo("new"),)), next_probe_at=None)
    assert labels("new") == "new", "a model probed later becomes known"


def test_status_classes() -> None:
    assert [status_class(s) for s in (200, 404, 503, 42)] == ["2xx", "4xx", "5xx", "other"]


def test_backend_gauges_are_read_at_scrape_time() -> None:
    reg = registry("a", "b")
    metrics = metrics_for(reg)
    lease = reg.lease("a")
    samples = parse(metrics.exposition().decode())
    assert value(samples, "nexus_in_flight", backend="a") == 1
    assert value(samples, "nexus_in_flight", backend="b") == 0
    assert value(samples, "nexus_backends_total") == 2
    assert value(samples, "nexus_backends_healthy") == 2
    lease.release()
    assert value(parse(metrics.exposition().decode()), "nexus_in_flight", backend="a") == 0


async def test_values_match_success_failover_stream_and_errors(start_fake) -> None:
    bad, good = start_fake(FakeOpenAI), start_fake(FakeOpenAI)
    for fake in (bad, good):
        fake.set_models(FakeModel("m"))
    bad.server_error(500)  # fails twice; below the failure threshold (3) it stays healthy
    backends = [
        {"name": "a", "type": "vllm", "url": bad.url, "priority": 1},
        {"name": "b", "type": "vllm", "url": good.url, "priority": 2},
    ]
    async with observed(backends) as gw:
        ok = await gw.client.post(CHAT, json=chat_body())
        stream = await gw.client.post(CHAT, json=chat_body(stream=True))
        unknown = await gw.client.post(CHAT, json=chat_body("nope"))
        malformed = await gw.client.post(CHAT, content=b"{")
        samples = await scrape(gw)
    assert [r.status_code for r in (ok, stream, unknown, malformed)] == [200, 200, 404, 400]
    served = {"backend": "b", "model": "m", "status": "2xx", "route_reason": "failover"}
    assert value(samples, "nexus_requests_total", api="chat", **served) == 2
    unknown_labels = {"backend": "none", "model": "other", "status": "4xx", "route_reason": "none"}
    assert value(samples, "nexus_requests_total", api="chat", **unknown_labels) == 1
    malformed_labels = {**unknown_labels, "model": "none"}
    assert value(samples, "nexus_requests_total", api="chat", **malformed_labels) == 1
    assert sum(v for (name, _), v in samples.items() if name == "nexus_requests_total") == 4
    bm = {"backend": "b", "model": "m"}
    assert value(samples, "nexus_request_duration_seconds_count", **bm) == 2
    assert value(samples, "nexus_time_to_first_byte_seconds_count", **bm) == 2
    assert value(samples, "nexus_streams_total", **bm) == 1
    assert value(samples, "nexus_failovers_total", model="m") == 2
    assert value(samples, "nexus_tokens_total", **bm, type="input") > 0
    assert value(samples, "nexus_planner_decision_seconds_count") >= 3
    assert value(samples, "nexus_backends_total") == 2
    assert value(samples, "nexus_backends_healthy") == 2
    assert value(samples, "nexus_in_flight", backend="a") == 0


async def test_upstream_errors_and_broken_streams_are_counted(start_fake) -> None:
    fake = start_fake(FakeOpenAI)
    fake.set_models(FakeModel("m"))
    async with observed([{"name": "a", "type": "vllm", "url": fake.url}]) as gw:
        fake.break_stream_after(2)
        broken = await gw.client.post(CHAT, json=chat_body(stream=True))
        fake.reset()
        fake.server_error(500)
        failed = await gw.client.post(CHAT, json=chat_body())
        samples = await scrape(gw)
    assert (broken.status_code, failed.status_code) == (200, 500)
    labels = {"backend": "a", "model": "m", "route_reason": "capability-match"}
    assert value(samples, "nexus_requests_total", api="chat", **labels, status="2xx") == 1
    assert value(samples, "nexus_requests_total", api="chat", **labels, status="5xx") == 1
    assert value(samples, "nexus_stream_breaks_total", backend="a") == 1
    assert value(samples, "nexus_failovers_total", model="m") == 0


def test_requests_are_counted_by_client_api() -> None:
    metrics = metrics_for(registry("a"))
    metrics.completed(event(endpoint="messages"))
    metrics.completed(event(endpoint="messages", status=503, backend=None))
    metrics.completed(event(endpoint="responses"))
    samples = parse(metrics.exposition().decode())
    labels = {"backend": "a", "model": "m", "status": "2xx", "route_reason": "capability-match"}
    assert value(samples, "nexus_requests_total", **labels, api="messages") == 1
    assert value(samples, "nexus_requests_total", **labels, api="responses") == 1
    down = {**labels, "backend": "none", "status": "5xx"}
    assert value(samples, "nexus_requests_total", **down, api="messages") == 1
