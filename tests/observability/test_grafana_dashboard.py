"""The Grafana dashboard shipped in ``docker/grafana/``: a dashboard Grafana can import (panels
with a templated Prometheus datasource and PromQL targets), whose every query names a metric a
real gateway's ``/metrics`` exposes, with the labels it uses; and the optional compose profile
that provisions it."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.api.gateway import CHAT, chat_body, fleet, gateway
from tests.conftest import REPO
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import FakeModel

GRAFANA = REPO / "docker" / "grafana"
DASHBOARD = GRAFANA / "nexus-dashboard.json"

METRIC = re.compile(r"\bnexus_[a-z0-9_]+")
#: ``metric{label="v", other=~"w"}``: the selector's label names (quoted values blanked first).
SELECTOR = re.compile(r"\b(nexus_[a-z0-9_]+)\s*\{([^}]*)\}")
MATCHER = re.compile(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)\s*\"\"")
#: ``sum by (a, b) (...)`` or ``sum(...) by (a, b)``; ``without`` likewise.
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
#: Vector matching: the labels must exist on a metric of the expression.
MATCHING = re.compile(r"\b(?:on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
LEGEND = re.compile(r"\{\{\s*(\w+)\s*\}\}")
LABEL_VALUES = re.compile(r"label_values\(\s*(nexus_[a-z0-9_]+)[^,]*,\s*(\w+)\s*\)")


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels(container: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows' panels (collapsed rows keep theirs) included."""
    for panel in container.get("panels", []):
        yield panel
        yield from panels(panel)


def targets() -> list[tuple[str, dict[str, Any]]]:
    """(panel title, target) for every PromQL target of every panel."""
    return [
        (panel["title"], target)
        for panel in panels(dashboard())
        for target in panel.get("targets", [])
    ]


def expressions() -> list[str]:
    """Every PromQL of the dashboard: panel targets and the template variables' queries."""
    variables = [
        v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        for v in dashboard()["templating"]["list"]
        if v["type"] == "query"
    ]
    return [target["expr"] for _, target in targets()] + variables


def names(labels: str) -> set[str]:
    return {label.strip() for label in labels.split(",") if label.strip()}


def blank_strings(expr: str) -> str:
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)


def argument_of(expr: str, match: re.Match[str]) -> str:
    """The parenthesised argument a ``by (...)``/``without (...)`` clause groups: the one right
    after it (``sum by (x) (...)``), else the one right before it (``sum(...) by (x)``)."""
    after = expr[match.end() :].lstrip()
    if after.startswith("("):
        return balanced(after)
    before = expr[: match.start()].rstrip()
    assert before.endswith(")"), f"no argument for {match.group(0)!r} in {expr!r}"
    return balanced(before[::-1], opening=")", closing="(")[::-1]


def balanced(text: str, opening: str = "(", closing: str = ")") -> str:
    depth = 0
    for index, char in enumerate(text):
        depth += (char == opening) - (char == closing)
        if depth == 0:
            return text[: index + 1]
    raise AssertionError(f"unbalanced parentheses in {text!r}")


# ---------------------------------------------------------------------------------------------
# The dashboard's shape


def test_the_dashboard_is_a_grafana_dashboard() -> None:
    board = dashboard()
    assert board["title"] and board["uid"] and board["schemaVersion"] >= 36
    assert "id" not in board or board["id"] is None, "an id would clash on import"
    ids = [panel["id"] for panel in panels(board)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    assert all(isinstance(i, int) for i in ids)
    shown = [panel for panel in panels(board) if panel["type"] != "row"]
    assert len(shown) >= 12
    for panel in shown:
        title = panel.get("title")
        assert title, f"panel {panel['id']} has no title"
        assert set(panel["gridPos"]) == {"x", "y", "w", "h"}, title
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, title
        assert panel["targets"], f"{title}: no target"
        for target in panel["targets"]:
            assert target["expr"].strip(), f"{title}: a target without expr"
            assert target["datasource"] == panel["datasource"], title
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), f"{title}: duplicate refId"


def test_the_datasource_is_a_variable_so_it_imports_anywhere() -> None:
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    text = DASHBOARD.read_text()
    # no datasource uid of one Grafana instance: the variable, or Grafana's built-in annotations
    uids = set(re.findall(r'"uid":\s*"([^"]*)"', text)) - {dashboard()["uid"]}
    assert uids <= {"${datasource}", "-- Grafana --"}


def test_the_dashboard_covers_what_the_gateway_measures() -> None:
    queried = {family(name) for expr in expressions() for name in METRIC.findall(expr)}
    wanted = {
        "nexus_requests_total",
        "nexus_request_duration_seconds",
        "nexus_time_to_first_byte_seconds",
        "nexus_failovers_total",
        "nexus_fallbacks_total",
        "nexus_in_flight",
        "nexus_backends_healthy",
        "nexus_backends_total",
        "nexus_cost_estimated_usd_total",
        "nexus_tenant_cost_usd_total",
        "nexus_tokens_total",
        "nexus_queue_depth",
        "nexus_queue_wait_seconds",
        "nexus_budget_spending_usd",
        "nexus_budget_limit_usd",
        "nexus_budget_status",
        "nexus_backend_error_rate",
        "nexus_backend_ttft_seconds",
        "nexus_backend_ejected",
    }
    assert wanted <= queried
    joined = "\n".join(expressions())
    for quantile in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({quantile}" in joined
    assert "nexus_request_duration_seconds_bucket" in joined
    assert "nexus_time_to_first_byte_seconds_bucket" in joined


def family(name: str) -> str:
    """A histogram's series name (``_bucket``, ``_sum``, ``_count``) as its metric's name."""
    return re.sub(r"_(bucket|sum|count)$", "", name)


# ---------------------------------------------------------------------------------------------
# Every query against a real scrape


@pytest.fixture
async def scraped(start_fake, tmp_path, monkeypatch) -> dict[str, set[str]]:
    """A gateway that served every kind of request, scraped: the label names of each series
    name Prometheus stores (a histogram's ``_bucket``/``_sum``/``_count``, a counter's ``_total``;
    not the bare family name, which no query can select)."""
    monkeypatch.chdir(tmp_path)  # the budget's usage ledger (nexus-usage.db)
    (flaky, cloud), backends = fleet(start_fake, "flaky", "cloud")
    backends[1].update(type="openai", api_key_env="CLOUD_KEY")  # priced: cost, tenant cost
    flaky.respond(500, path=CHAT, times=1)  # the first request fails over (quality: an error)
    gpu = start_fake(FakeOpenAI)
    gpu.set_models(FakeModel("q"))
    gpu.delay(0.2, path=CHAT, times=2)
    backends.append({"name": "gpu", "type": "vllm", "url": gpu.url, "max_concurrent": 1})
    sections: dict[str, Any] = {
        "routing": {"budget": {"monthly_limit_usd": 100}, "fallbacks": {"big": ["m"]}},
        "pricing": {"m": {"input_per_1k": 1.0, "output_per_1k": 1.0}},
        "quality": {"min_requests": 1},  # an error rate from the first attempt
    }
    async with gateway(backends, environ={"CLOUD_KEY": "sk-test"}, **sections) as gw:
        failover = await gw.client.post(CHAT, json=chat_body())
        stream = await gw.client.post(CHAT, json=chat_body(stream=True))
        fallback = await gw.client.post(CHAT, json=chat_body("big"))
        unknown = await gw.client.post(CHAT, json=chat_body("nope"))
        # two at once on one slot: the second waits in the queue
        queued = await asyncio.gather(
            *(gw.client.post(CHAT, json=chat_body("q")) for _ in range(2))
        )
        gpu.break_stream_after(2)
        broken = await gw.client.post(CHAT, json=chat_body("q", stream=True))
        scrape = await gw.client.get("/metrics")
        queue = gw.app.gateway.queue.summary()
    assert failover.headers["x-nexus-route-reason"] == "failover"
    assert failover.headers["x-nexus-backend"] == "cloud"
    assert stream.status_code == 200 and stream.text.rstrip().endswith("data: [DONE]")
    assert fallback.headers["x-nexus-fallback-model"] == "m"
    assert unknown.status_code == 404
    assert [r.status_code for r in queued] == [200, 200] and queue["ended"]["served"] == 1
    assert broken.status_code == 200 and "[DONE]" not in broken.text
    assert scrape.status_code == 200
    labels: dict[str, set[str]] = {}
    for metric in text_string_to_metric_families(scrape.text):
        for sample in metric.samples:
            labels.setdefault(sample.name, set()).update(sample.labels)
    return labels


def test_the_scrape_holds_a_sample_of_every_metric(scraped) -> None:
    """The fixture exercises every metric, so the checks below see each one's labels."""
    queried = {name for expr in expressions() for name in METRIC.findall(expr)}
    assert queried, "no query names a nexus_ metric"
    missing = sorted(name for name in queried if name not in scraped)
    assert not missing, f"queried but not in /metrics: {missing}"


def test_every_selector_label_exists_on_its_metric(scraped) -> None:
    for expr in expressions():
        for name, matchers in SELECTOR.findall(blank_strings(expr)):
            used = set(MATCHER.findall(matchers))
            assert used, f"unparsed selector {name}{{{matchers}}} in {expr!r}"
            unknown = used - scraped[name]
            assert not unknown, f"{name} has no label {sorted(unknown)} (in {expr!r})"


def test_every_grouping_label_exists_on_the_metrics_it_groups(scraped) -> None:
    for expr in expressions():
        for match in GROUPING.finditer(expr):
            grouped = names(match.group(1))
            for name in METRIC.findall(argument_of(expr, match)):
                unknown = grouped - scraped[name]
                assert not unknown, f"{name} has no label {sorted(unknown)} (in {expr!r})"
        for match in MATCHING.finditer(expr):
            present = set().union(*(scraped[name] for name in METRIC.findall(expr)))
            assert names(match.group(1)) <= present, expr


def test_legends_and_label_values_name_existing_labels(scraped) -> None:
    for title, target in targets():
        legend = target.get("legendFormat", "")
        present = set().union(*(scraped[name] for name in METRIC.findall(target["expr"])))
        for label in LEGEND.findall(legend):
            assert label in present, f"{title}: legend {{{{{label}}}}} is no label of its query"
    for expr in expressions():
        for name, label in LABEL_VALUES.findall(expr):
            assert label in scraped[name], expr


# ---------------------------------------------------------------------------------------------
# Provisioning (docker compose --profile monitoring)


def test_the_compose_profile_provisions_the_dashboard() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert "profiles" not in services["nexus"], "Nexus itself always starts"
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"]
    mounts = {
        source.removeprefix("./"): target.split(":")[0]
        for service in ("prometheus", "grafana")
        for source, target in (v.split(":", 1) for v in services[service]["volumes"])
        if source.startswith("./")
    }
    for source in mounts:
        assert (REPO / source).exists(), source
    assert mounts["docker/grafana/prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    prometheus = yaml.safe_load((REPO / "docker/grafana/prometheus.yml").read_text())
    [job] = prometheus["scrape_configs"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert job["static_configs"][0]["targets"] == ["nexus:8000"]
    for kind in ("datasources", "dashboards"):
        assert mounts[f"docker/grafana/provisioning/{kind}"] == f"/etc/grafana/provisioning/{kind}"
    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/nexus.yml").read_text())
    [provider] = providers["providers"]
    assert mounts["docker/grafana/nexus-dashboard.json"].startswith(provider["options"]["path"])
    sources = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    [source] = sources["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
