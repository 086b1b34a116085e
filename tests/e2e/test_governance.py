"""Governance through a real `nexus serve`, driven by the official `openai` SDK: client keys as
tenants (``[[clients]]``) with a privacy ceiling and a rate limit, and the gateway's spend budget
(``[routing.budget]``) over the usage ledger in SQLite -- its soft limit, each hard-limit action,
spend equal to the cost headers the clients were told, and a ledger that survives a clean restart
and a SIGKILL.

Prices are forced (``[pricing]``, 10 USD per 1k tokens: one cent a token) so that a few requests
to the fake cloud backend cross a small budget, and every cost is a whole number of cents: the
cost headers (4 decimals) and the ledger's micro-dollars compare exactly."""

from __future__ import annotations

import math
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest
from openai._legacy_response import LegacyAPIResponse

from tests.e2e.configs import CHAT, Gateway, backend, nexus_toml, toml_value, wait_until
from tests.e2e.serving import nexus_serve
from tests.fakes.fixtures import StartFake
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import FakeModel

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

HELLO: list[Any] = [{"role": "user", "content": "hello"}]
CLOUD_KEY = "sk-e2e-cloud-key-0123456789abcdef"
SECRET_KEY = "nx-secret-tenant-key-0001"
TEAM_KEY = "nx-team-tenant-key-0002"
ENV = {"E2E_CLOUD_KEY": CLOUD_KEY, "SECRET_KEY": SECRET_KEY, "TEAM_KEY": TEAM_KEY}
CLOUD_ONLY = "big"
#: One cent a token: "hello" is 4 prompt tokens and "echo: hello" 2 completion tokens for the
#: fake, so one such request costs 0.06 USD.
CENT_A_TOKEN = {"input_per_1k": 10.0, "output_per_1k": 10.0}
PRICING = {"m": CENT_A_TOKEN, CLOUD_ONLY: CENT_A_TOKEN, "gpt-4o-mini": CENT_A_TOKEN}
HELLO_MICROS = 60_000


def micros(cost_header: str) -> int:
    return round(float(cost_header) * 1_000_000)


@contextmanager
def governed(
    directory: Path,
    backends: Sequence[Mapping[str, Any]],
    clients: Sequence[Mapping[str, Any]] = (),
    **sections: Mapping[str, Any],
) -> Iterator[Gateway]:
    """`nexus serve` on ``backends``, ``[[clients]]`` and ``sections`` (``[state] usage_path``
    always in ``directory``), once the first probe cycle has set every backend's status."""
    directory.mkdir(parents=True, exist_ok=True)
    state = {"usage_path": str(directory / "usage.db"), **sections.pop("state", {})}
    text = nexus_toml(backends, state=state, **sections)
    for client in clients:
        text += "[[clients]]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in client.items())
    path = directory / "nexus.toml"
    path.write_text(text, encoding="utf-8")
    with nexus_serve("--config", str(path), cwd=directory, env=ENV) as served:
        gw = Gateway(served)
        wait_until(lambda: "unknown" not in statuses(gw).values(), what="first probe cycle")
        yield gw


def statuses(gw: Gateway) -> dict[str, str]:
    """Backend statuses, read with TEAM_KEY (a tenant "team" wherever clients are configured;
    without client keys any key is accepted)."""
    answer = httpx.get(f"{gw.url}/v1/backends", headers=bearer(TEAM_KEY), timeout=5)
    return {entry["name"]: entry["status"] for entry in answer.json()["data"]}


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


@contextmanager
def sdk(
    gw: Gateway, key: str, max_retries: int = 0, timeout: float = 10
) -> Iterator[tuple[openai.OpenAI, list[tuple[float, httpx2.Response]]]]:
    """An `openai.OpenAI` client on ``gw`` with ``key``, and every HTTP response it received
    (retries included) with the monotonic time it came in, in order."""
    seen: list[tuple[float, httpx2.Response]] = []

    def hook(response: httpx2.Response) -> None:
        seen.append((time.monotonic(), response))

    http = httpx2.Client(event_hooks={"response": [hook]}, timeout=timeout)
    with (
        http,
        openai.OpenAI(
            base_url=f"{gw.url}/v1",
            api_key=key,
            max_retries=max_retries,
            http_client=http,
            timeout=timeout,
        ) as client,
    ):
        yield client, seen


def cloud_and_local(start_fake: StartFake) -> tuple[FakeOpenAI, FakeOpenAI, list[dict[str, Any]]]:
    """A fake cloud (OpenAI, needs its key) serving m, big and gpt-4o-mini, preferred; a fake
    local vLLM serving m."""
    cloud, local = start_fake(FakeOpenAI), start_fake(FakeOpenAI)
    cloud.api_key = CLOUD_KEY
    cloud.set_models(FakeModel("m"), FakeModel(CLOUD_ONLY), FakeModel("gpt-4o-mini"))
    local.set_models(FakeModel("m"))
    backends = [
        backend("cloud", cloud.url, "openai", api_key_env="E2E_CLOUD_KEY", priority=1),
        backend("box", local.url, priority=90),
    ]
    return cloud, local, backends


def chat(client: openai.OpenAI, model: str = "m", **extra: Any) -> LegacyAPIResponse[Any]:
    return client.chat.completions.with_raw_response.create(model=model, messages=HELLO, **extra)


# -- 1. privacy ---------------------------------------------------------------------------------


def test_a_restricted_tenant_never_reaches_the_cloud_whatever_it_asks(
    tmp_path: Path, start_fake: StartFake
) -> None:
    cloud, local, backends = cloud_and_local(start_fake)
    clients = [
        {"name": "secret", "api_key_env": "SECRET_KEY", "privacy": "restricted"},
        {"name": "team", "api_key_env": "TEAM_KEY"},
    ]
    loosen = {"X-Nexus-Privacy-Zone": "open"}
    routing = {"strategy": "priority_only"}
    with governed(tmp_path, backends, clients, routing=routing) as gw:
        with sdk(gw, SECRET_KEY) as (client, _):
            plain = chat(client)
            asks_open = chat(client, extra_headers=loosen)
            streamed = chat(client, stream=True, extra_headers=loosen)
            chunks = list(streamed.parse())
            embedded = client.embeddings.with_raw_response.create(
                model="m", input="x", extra_headers=loosen
            )
            with pytest.raises(openai.InternalServerError) as cloud_only:
                client.chat.completions.create(model=CLOUD_ONLY, messages=HELLO)
            with pytest.raises(openai.InternalServerError) as cloud_only_open:
                client.chat.completions.create(
                    model=CLOUD_ONLY, messages=HELLO, extra_headers=loosen
                )
        by_x_api_key = httpx.post(
            f"{gw.url}{CHAT}",
            json={"model": CLOUD_ONLY, "messages": HELLO},
            headers={"x-api-key": SECRET_KEY, **loosen},
            timeout=10,
        )
        secret_reached_cloud = [r for r in cloud.requests if r.method != "GET"]  # not the probe
        with sdk(gw, TEAM_KEY) as (client, _):  # the same requests of an open tenant go out
            team = chat(client)
            team_cloud_only = chat(client, model=CLOUD_ONLY)

    for answer in (plain, asks_open, streamed, embedded):
        assert answer.http_response.status_code == 200
        assert answer.headers["x-nexus-backend"] == "box"
        assert answer.headers["x-nexus-backend-type"] == "local"
        assert answer.headers["x-nexus-privacy-zone"] == "restricted"
        assert answer.headers["x-nexus-route-reason"] == "privacy-requirement"
    assert plain.parse().choices[0].message.content == "echo: hello"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: hello"
    for error in (cloud_only.value, cloud_only_open.value):
        assert error.status_code == 503
        assert error.response.json()["context"]["privacy_zone_required"] == "restricted"
        assert error.response.headers["x-nexus-backend"] == "none"
    assert by_x_api_key.status_code == 503
    assert by_x_api_key.json()["context"]["privacy_zone_required"] == "restricted"
    assert secret_reached_cloud == [], "the cloud received nothing from the restricted tenant"
    assert len(local.requests_to(CHAT)) == 3 and len(local.requests_to("/v1/embeddings")) == 1
    assert team.headers["x-nexus-backend"] == "cloud"
    assert team_cloud_only.headers["x-nexus-backend"] == "cloud"
    received = cloud.requests_to(CHAT)
    assert len(received) == 2, "only the open tenant's two requests"
    assert all(r.headers["authorization"] == f"Bearer {CLOUD_KEY}" for r in received)


# -- 2. rate limit ------------------------------------------------------------------------------


def test_rpm_429_with_openai_headers_and_the_sdk_retry_waits_retry_after_ms(
    tmp_path: Path, start_fake: StartFake
) -> None:
    local = start_fake(FakeOpenAI)
    local.set_models(FakeModel("m"))
    clients: list[dict[str, Any]] = [
        {"name": "ci", "api_key_env": "SECRET_KEY", "rpm": 30},
        {"name": "team", "api_key_env": "TEAM_KEY"},
    ]
    with (
        governed(tmp_path, [backend("box", local.url)], clients) as gw,
        sdk(gw, SECRET_KEY) as (client, seen),
        ThreadPoolExecutor(10) as pool,
    ):
        assert [m.id for m in client.models.list()] == ["m"], "connections warm, not limited"
        list(pool.map(lambda _: client.models.list(), range(10)))
        # the bucket refills 0.5 requests a second from its first request on, so the 30 are sent
        # at once: the sooner the 31st, the closer its wait to 2 s
        burst_started = time.monotonic()
        answers = list(pool.map(lambda _: chat(client), range(30)))
        burst_ended = time.monotonic()
        with pytest.raises(openai.RateLimitError) as refused:
            chat(client)
        del seen[:]
        retried_started = time.monotonic()
        retried = chat(client.with_options(max_retries=2))
        elapsed = time.monotonic() - retried_started

    assert [a.http_response.status_code for a in answers] == [200] * 30
    remaining = sorted(int(a.headers["x-ratelimit-remaining-requests"]) for a in answers)
    assert remaining == list(range(30)), "one bucket: each request took one"
    for answer in answers:
        assert answer.headers["x-ratelimit-limit-requests"] == "30"
        assert answer.headers["x-ratelimit-reset-requests"].endswith("s")
    first = next(a for a in answers if a.headers["x-ratelimit-remaining-requests"] == "29")
    assert first.headers["x-ratelimit-reset-requests"] == "2s", "one request: 2 s to refill"
    error = refused.value
    assert error.status_code == 429
    assert error.code == "rate_limit_exceeded"
    headers = error.response.headers
    assert headers["x-ratelimit-limit-requests"] == "30"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-reset-requests"].endswith("s")
    assert "x-ratelimit-limit-tokens" not in headers, "no tpm: no tokens headers"
    refused_ms = int(headers["retry-after-ms"])
    assert 0 < refused_ms <= 2000, refused_ms
    assert headers["retry-after"] == str(math.ceil(refused_ms / 1000))
    # the SDK's own retry: one 429, a wait of its retry-after-ms, then the answer
    assert [r.status_code for _, r in seen] == [429, 200]
    told_at, told = seen[0]
    told_ms = int(told.headers["retry-after-ms"])
    assert told.headers["x-ratelimit-remaining-requests"] == "0"
    # 0.5 requests a second since the bucket's first request (sent between burst_started and
    # burst_ended): the wait is 2 s less the time since then, to the millisecond
    since_first = (told_at - burst_started, retried_started - burst_ended)
    assert 2000 - since_first[0] * 1000 - 2 <= told_ms <= 2000 - since_first[1] * 1000 + 2, (
        told_ms,
        since_first,
    )
    assert told_ms / 1000 - 0.005 <= elapsed <= told_ms / 1000 + 1.5, (told_ms, elapsed)
    burst = burst_ended - burst_started
    assert 1.5 <= elapsed <= 6.0, f"waited {elapsed:.2f} s (the burst took {burst:.2f} s)"
    assert retried.http_response.status_code == 200
    assert retried.headers["x-ratelimit-remaining-requests"] == "0"
    assert len(local.requests_to(CHAT)) == 31, "refused requests never reached the backend"


# -- 3. soft limit --------------------------------------------------------------------------------


def budget(limit: float, action: str = "warn", soft: float = 50) -> dict[str, Any]:
    values = {"monthly_limit_usd": limit, "soft_limit_percent": soft, "hard_limit_action": action}
    return {"strategy": "priority_only", "budget": values}


def test_past_the_soft_limit_cloud_traffic_moves_to_the_local_backend(
    tmp_path: Path, start_fake: StartFake
) -> None:
    cloud, local, backends = cloud_and_local(start_fake)
    # soft limit 0.10 USD: the second cloud request (0.12 USD spent) crosses it
    with (
        governed(tmp_path, backends, routing=budget(0.2), pricing=PRICING) as gw,
        sdk(gw, "anything") as (client, _),
    ):
        before = [chat(client), chat(client)]
        after = [chat(client), chat(client, stream=True, max_tokens=5)]
        list(after[1].parse())
        cloud_only = chat(client, model=CLOUD_ONLY)
        still_local = chat(client)

    for answer in before:
        assert answer.headers["x-nexus-backend"] == "cloud"
        assert answer.headers["x-nexus-cost-estimated"] == "0.0600"
        assert "x-nexus-budget-status" not in answer.headers
    for answer in (*after, still_local):
        assert answer.http_response.status_code == 200
        assert answer.headers["x-nexus-backend"] == "box"
        assert answer.headers["x-nexus-route-reason"] == "budget-limit"
        assert answer.headers["x-nexus-budget-status"] == "soft_limit"
        assert "x-nexus-cost-estimated" not in answer.headers, "local: free"
    assert cloud_only.headers["x-nexus-backend"] == "cloud", "nothing local serves it"
    assert cloud_only.headers["x-nexus-budget-status"] == "soft_limit"
    assert len(cloud.requests_to(CHAT)) == 3
    assert len(local.requests_to(CHAT)) == 3


# -- 4. hard-limit actions ------------------------------------------------------------------------


def seconds_to_next_month() -> float:
    now = datetime.now(UTC)
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    return (datetime(year, month, 1, tzinfo=UTC) - now).total_seconds()


@pytest.mark.parametrize("action", ["block_all", "block_cloud", "warn"])
def test_each_hard_limit_action_once_priced_cloud_requests_spent_the_budget(
    tmp_path: Path, start_fake: StartFake, action: str
) -> None:
    cloud, local, backends = cloud_and_local(start_fake)
    # 0.10 USD, soft at 0.05: the first cloud-only request (0.06) is past the soft limit, the
    # second (0.12) spends it
    with (
        governed(tmp_path, backends, routing=budget(0.1, action), pricing=PRICING) as gw,
        sdk(gw, "anything") as (client, _),
        sdk(gw, "anything", max_retries=2) as (retrying, seen),
    ):
        spending = [chat(client, model=CLOUD_ONLY) for _ in range(2)]
        assert [a.headers.get("x-nexus-budget-status") for a in spending] == [None, "soft_limit"]
        assert all(a.headers["x-nexus-backend"] == "cloud" for a in spending)
        sent_to_cloud = len(cloud.requests_to(CHAT))
        if action == "block_all":
            refusals = []
            for model in ("m", CLOUD_ONLY):
                with pytest.raises(openai.RateLimitError) as refused:
                    retrying.chat.completions.create(model=model, messages=HELLO)
                refusals.append(refused.value)
            assert len(seen) == 2, "Retry-After is the 1st of next month: the SDK does not retry"
            for error in refusals:
                assert error.status_code == 429
                assert error.code == "insufficient_quota"
                message = error.response.json()["error"]["message"]
                assert message.startswith(
                    "the gateway's monthly budget of 0.10 USD is spent (0.12 USD); requests are "
                    "refused until it renews on the 1st (00:00 UTC)"
                ), message
                assert error.response.headers["x-nexus-budget-status"] == "hard_limit"
                left = int(error.response.headers["retry-after"])
                assert abs(left - seconds_to_next_month()) <= 60, left
                assert error.response.headers["x-should-retry"] == "false"
            # the anthropic SDK sleeps any Retry-After it gets (weeks here) unless told not to
            claude = anthropic.Anthropic(base_url=gw.url, api_key="anything", timeout=10)
            started = time.monotonic()
            with pytest.raises(anthropic.RateLimitError):
                claude.messages.create(model="m", max_tokens=5, messages=HELLO)
            assert time.monotonic() - started < 5, "the SDK did not retry"
            assert local.requests_to(CHAT) == []
        elif action == "block_cloud":
            served = chat(client)
            with pytest.raises(openai.InternalServerError) as unavailable:
                client.chat.completions.create(model=CLOUD_ONLY, messages=HELLO)
            assert served.headers["x-nexus-backend"] == "box"
            assert served.headers["x-nexus-route-reason"] == "budget-limit"
            assert served.headers["x-nexus-budget-status"] == "hard_limit"
            assert unavailable.value.status_code == 503
            assert "spend budget" in unavailable.value.message, unavailable.value.message
            assert unavailable.value.response.headers["x-nexus-budget-status"] == "hard_limit"
            assert len(local.requests_to(CHAT)) == 1
        else:
            served = chat(client, model=CLOUD_ONLY)
            kept_local = chat(client)
            assert served.http_response.status_code == 200
            assert served.headers["x-nexus-backend"] == "cloud"
            assert served.headers["x-nexus-budget-status"] == "hard_limit"
            assert served.headers["x-nexus-cost-estimated"] == "0.0600"
            assert kept_local.headers["x-nexus-backend"] == "box"
            assert kept_local.headers["x-nexus-route-reason"] == "budget-limit"
            assert kept_local.headers["x-nexus-budget-status"] == "hard_limit"
            sent_to_cloud += 1  # the warned request did go out
        assert len(cloud.requests_to(CHAT)) == sent_to_cloud
        log = gw.served.stderr()
    assert "the gateway's monthly budget is spent" in log


# -- 5. spend = the cost headers, kept across a restart ----------------------------------------


def stored(path: Path) -> dict[str, tuple[int, int]]:
    """(requests, spend_micros) per tenant in the SQLite ledger, summed over its months."""
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(
            "SELECT tenant, SUM(requests), SUM(spend_micros) FROM usage "
            "WHERE period LIKE 'm:%' GROUP BY tenant"
        ).fetchall()
    finally:
        conn.close()
    return {tenant: (int(requests), int(spent)) for tenant, requests, spent in rows}


def test_spend_is_the_sum_of_the_cost_headers_and_survives_a_clean_restart(
    tmp_path: Path, start_fake: StartFake
) -> None:
    cloud, local, backends = cloud_and_local(start_fake)
    clients = [
        {"name": "secret", "api_key_env": "SECRET_KEY"},
        {"name": "team", "api_key_env": "TEAM_KEY"},
    ]
    told: dict[str, list[int]] = {"secret": [], "team": []}
    with governed(tmp_path, backends, clients, pricing=PRICING) as gw:
        for key, tenant in ((SECRET_KEY, "secret"), (TEAM_KEY, "team")):
            with sdk(gw, key) as (client, _):
                for i in range(4):
                    text = "a question " * (i + 1)
                    messages: list[Any] = [{"role": "user", "content": text}]
                    stream = i % 2 == 1
                    answer = client.chat.completions.with_raw_response.create(
                        model="gpt-4o-mini", messages=messages, max_tokens=20, stream=stream
                    )
                    if stream:
                        list(answer.parse())  # the stream is charged when it ends
                    assert answer.headers["x-nexus-backend"] == "cloud"
                    told[tenant].append(micros(answer.headers["x-nexus-cost-estimated"]))
        code, _ = gw.served.stop()
        assert code == 0
    ledger = stored(tmp_path / "usage.db")
    total = sum(told["secret"]) + sum(told["team"])

    assert all(told["secret"] + told["team"])
    assert len(set(told["secret"])) == 4, "every request had its own cost"
    assert ledger["secret"] == (4, sum(told["secret"]))
    assert ledger["team"] == (4, sum(told["team"]))
    assert ledger["*"] == (8, total)
    # a stream is charged its upper bound: input tokens + max_tokens (20), a cent each
    assert told["secret"][1] >= 21 * 10_000

    # the restarted gateway starts from the stored spend: a budget of exactly that is spent
    limit = total / 1_000_000
    routing = budget(limit, "block_all")
    with governed(tmp_path, backends, clients, pricing=PRICING, routing=routing) as gw:
        with sdk(gw, TEAM_KEY) as (client, _), pytest.raises(openai.RateLimitError) as refused:
            client.chat.completions.create(model="m", messages=HELLO)
        gw.served.stop()
    assert refused.value.code == "insufficient_quota"
    assert f"is spent ({limit:.2f} USD)" in refused.value.message
    assert len(cloud.requests_to(CHAT)) == 8 and local.requests_to(CHAT) == []


# -- 6. SIGKILL ---------------------------------------------------------------------------------


@dataclass
class Done:
    at: float  # monotonic, once the answer was in
    cost: int  # micro-dollars


def test_sigkill_under_load_keeps_the_spend_flushed_before_it(
    tmp_path: Path, start_fake: StartFake
) -> None:
    cloud = start_fake(FakeOpenAI)
    cloud.api_key = CLOUD_KEY
    cloud.set_models(FakeModel("m"))
    cloud.delay(0.01, path=CHAT)
    backends = [backend("cloud", cloud.url, "openai", api_key_env="E2E_CLOUD_KEY")]
    routing = budget(1_000_000.0, "block_all", soft=100)
    done: list[Done] = []
    unanswered: list[openai.APIConnectionError] = []
    unexpected: list[BaseException] = []
    stop = threading.Event()

    def load(gw: Gateway) -> None:
        with sdk(gw, "anything", timeout=5) as (client, _):
            while not stop.is_set():
                try:
                    answer = chat(client)
                except openai.APIConnectionError as exc:  # killed in flight (or just after)
                    unanswered.append(exc)
                    return
                except Exception as exc:  # reported by the test, not lost in the thread
                    unexpected.append(exc)
                    return
                cost = micros(answer.headers["x-nexus-cost-estimated"])
                done.append(Done(time.monotonic(), cost))

    with governed(tmp_path, backends, routing=routing, pricing=PRICING) as gw:
        workers = [threading.Thread(target=load, args=(gw,)) for _ in range(4)]
        for worker in workers:
            worker.start()
        try:
            wait_until(lambda: len(done) >= 50, 10.0, "load running")
            time.sleep(2.5)  # a few flushes under load
            killed_at = time.monotonic()
            gw.served.process.send_signal(signal.SIGKILL)
            gw.served.process.wait(5)
        finally:
            stop.set()
            for worker in workers:
                worker.join(10)
        assert gw.served.process.returncode == -signal.SIGKILL
    assert not any(worker.is_alive() for worker in workers)
    assert unexpected == []

    requests, spent = stored(tmp_path / "usage.db")["*"]
    flushed_before = [d for d in done if d.at < killed_at - 1.5]
    answered = sum(d.cost for d in done)
    assert len(flushed_before) >= 20
    assert {d.cost for d in done} == {HELLO_MICROS}
    assert spent >= sum(d.cost for d in flushed_before), (spent, len(flushed_before), len(done))
    # never more than what was answered, plus the requests cut off in flight (charged at most
    # just before their answer was sent)
    assert spent <= answered + HELLO_MICROS * len(unanswered), (spent, len(done), len(unanswered))
    assert spent == requests * HELLO_MICROS

    # restarted on the same file, it continues from the stored spend: a budget of 0.15 USD more
    # than what is stored lets exactly three more requests (0.06 each) through
    limit = spent / 1_000_000 + 0.15
    routing = budget(limit, "block_all", soft=100)
    with (
        governed(tmp_path, backends, routing=routing, pricing=PRICING) as gw,
        sdk(gw, "anything") as (client, _),
    ):
        more = [chat(client) for _ in range(3)]
        with pytest.raises(openai.RateLimitError) as refused:
            chat(client)
        gw.served.stop()
    assert [a.http_response.status_code for a in more] == [200] * 3
    assert refused.value.code == "insufficient_quota"
    # the refused request counts as a request, at no cost
    assert stored(tmp_path / "usage.db")["*"] == (requests + 4, spent + 3 * HELLO_MICROS)
