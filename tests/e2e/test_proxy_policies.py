"""Capacity overflow, privacy zones and client keys through a real `nexus serve`."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.e2e.configs import CHAT, backend, gateway, wait_until
from tests.fakes.fixtures import StartFake
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import FakeModel

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(30)]

HELLO: list[Any] = [{"role": "user", "content": "hello"}]
CLOUD_KEY = "sk-e2e-cloud-key-0123456789abcdef"
CONTEXT_KEYS = {"required_tier", "available_backends", "eta_seconds", "privacy_zone_required"}


def test_capacity_overflow_goes_to_the_next_backend(tmp_path: Path, start_fake: StartFake) -> None:
    small, big = start_fake(FakeOpenAI), start_fake(FakeOpenAI)
    for fake in (small, big):
        fake.set_models(FakeModel("m"))
    small.delay(1.0, path=CHAT, times=1)
    backends = [
        backend("small", small.url, priority=1, max_concurrent=1),
        backend("big", big.url, priority=90),
    ]
    with gateway(tmp_path, backends) as gw, gw.sdk() as (client, _):
        first: dict[str, Any] = {}

        def slow_request() -> None:
            with gw.sdk() as (own, _):
                raw = own.chat.completions.with_raw_response.create(model="m", messages=HELLO)
                first["headers"] = dict(raw.headers)

        thread = threading.Thread(target=slow_request)
        thread.start()
        try:
            wait_until(lambda: gw.in_flight()["small"] == 1, what="small at its limit")
            second = client.chat.completions.with_raw_response.create(model="m", messages=HELLO)
        finally:
            thread.join(10)
        assert not thread.is_alive()
        assert gw.in_flight() == {"small": 0, "big": 0}

    assert first["headers"]["x-nexus-backend"] == "small"
    assert first["headers"]["x-nexus-route-reason"] == "capability-match"
    assert second.headers["x-nexus-backend"] == "big"
    assert second.headers["x-nexus-route-reason"] == "capacity-overflow"
    assert second.parse().choices[0].message.content == "echo: hello"
    assert len(small.requests_to(CHAT)) == len(big.requests_to(CHAT)) == 1


@pytest.fixture
def cloud(start_fake: StartFake) -> FakeOpenAI:
    fake = start_fake(FakeOpenAI)
    fake.api_key = CLOUD_KEY
    fake.set_models(FakeModel("secret-model"), FakeModel("secret-shared"), FakeModel("gpt-4o-mini"))
    return fake


def test_privacy_503_and_the_open_backend_is_never_contacted(
    tmp_path: Path, cloud: FakeOpenAI, start_fake: StartFake
) -> None:
    local = start_fake(FakeOpenAI)
    local.set_models(FakeModel("secret-shared"))
    backends = [
        backend("openai", cloud.url, "openai", api_key_env="E2E_OPENAI_KEY", priority=1),
        backend("gpu", local.url, priority=50),
    ]
    routing = {"policies": [{"model_pattern": "secret-*", "privacy": "restricted"}]}
    env = {"E2E_OPENAI_KEY": CLOUD_KEY}
    with gateway(tmp_path, backends, env=env, routing=routing) as gw, gw.sdk() as (client, _):
        assert gw.statuses() == {"openai": "healthy", "gpu": "healthy"}
        with pytest.raises(openai.InternalServerError) as by_policy:
            client.chat.completions.create(model="secret-model", messages=HELLO)
        with pytest.raises(openai.InternalServerError) as loosened:  # a client cannot loosen
            client.chat.completions.create(
                model="secret-model", messages=HELLO, extra_headers={"X-Nexus-Privacy-Zone": "open"}
            )
        with pytest.raises(openai.InternalServerError) as by_header:  # but it can tighten
            client.chat.completions.create(
                model="gpt-4o-mini",
                messages=HELLO,
                extra_headers={"X-Nexus-Privacy-Zone": "restricted"},
            )
        # the preferred cloud backend is left out: served locally for privacy
        kept_local = client.chat.completions.with_raw_response.create(
            model="secret-shared", messages=HELLO
        )
        # and a local failure never fails over across the privacy requirement
        local.server_error(500, times=1)
        with pytest.raises(openai.InternalServerError) as local_failed:
            client.chat.completions.create(model="secret-shared", messages=HELLO)
        allowed = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=HELLO
        )
        listing = httpx.get(f"{gw.url}/v1/backends", timeout=5).text

    for error in (by_policy, loosened, by_header):
        assert error.value.status_code == 503
        body = error.value.response.json()
        assert set(body) == {"error", "context"}
        assert set(body["error"]) == {"message", "type", "param", "code"}
        assert set(body["context"]) == CONTEXT_KEYS
        assert body["context"]["privacy_zone_required"] == "restricted"
        assert 0 < int(error.value.response.headers["retry-after"]) <= 60
        assert error.value.response.headers["x-nexus-backend"] == "none"
        assert CLOUD_KEY not in error.value.response.text
    assert kept_local.headers["x-nexus-backend"] == "gpu"
    assert kept_local.headers["x-nexus-route-reason"] == "privacy-requirement"
    assert kept_local.headers["x-nexus-privacy-zone"] == "restricted"
    assert local_failed.value.status_code == 500
    assert local_failed.value.response.headers["x-nexus-backend"] == "gpu"
    [received] = cloud.requests_to(CHAT)  # only the request that was allowed to leave
    assert b"gpt-4o-mini" in received.body
    assert received.headers["authorization"] == f"Bearer {CLOUD_KEY}", "the configured key"
    assert allowed.headers["x-nexus-backend"] == "openai"
    assert allowed.headers["x-nexus-backend-type"] == "cloud"
    assert allowed.headers["x-nexus-privacy-zone"] == "open"
    assert allowed.headers["x-nexus-route-reason"] == "capability-match"
    assert CLOUD_KEY not in listing


def test_client_keys_guard_v1_and_never_reach_the_backend(
    tmp_path: Path, start_fake: StartFake
) -> None:
    fake = start_fake(FakeOpenAI)
    fake.set_models(FakeModel("m"))
    env = {"NEXUS_CLIENT_KEYS": "k1,k2"}
    with gateway(
        tmp_path,
        [backend("gpu", fake.url)],
        env=env,
        probed=False,
        server={"api_keys_env": "NEXUS_CLIENT_KEYS"},
    ) as gw:
        health = httpx.get(f"{gw.url}/health", timeout=5)
        wait_until(
            lambda: (
                httpx.get(
                    f"{gw.url}/v1/backends", headers={"authorization": "Bearer k1"}, timeout=5
                ).json()["data"][0]["status"]
                == "healthy"
            ),
            what="gpu probed",
        )
        anonymous = httpx.post(f"{gw.url}{CHAT}", json={"model": "m", "messages": HELLO})
        anonymous_models = httpx.get(f"{gw.url}/v1/models", timeout=5)
        with gw.sdk(api_key="k3") as (client, _):
            with pytest.raises(openai.AuthenticationError) as wrong:
                client.chat.completions.create(model="m", messages=HELLO)
        with gw.sdk(api_key="k2") as (client, _):
            ok = client.chat.completions.with_raw_response.create(model="m", messages=HELLO)
            models = [m.id for m in client.models.list()]
        with gw.sdk(api_key="k1") as (client, _):
            embedded = client.embeddings.create(model="m", input="x")

    assert health.status_code == 200, "/health stays open"
    for refused in (anonymous, anonymous_models, wrong.value.response):
        assert refused.status_code == 401
        assert set(refused.json()["error"]) == {"message", "type", "param", "code"}
        assert refused.json()["error"]["code"] == "invalid_api_key"
        assert "k1" not in refused.text and "k2" not in refused.text
    for name in ("backend", "backend-type", "route-reason", "privacy-zone"):
        assert anonymous.headers[f"x-nexus-{name}"] == "none"
    assert wrong.value.response.headers["x-request-id"]
    assert ok.http_response.status_code == 200
    assert ok.headers["x-nexus-backend"] == "gpu"
    assert models == ["m"]
    assert len(embedded.data) == 1
    received = fake.requests_to(CHAT) + fake.requests_to("/v1/embeddings")
    assert len(received) == 2, "refused requests never reached the backend"
    for request in received:
        assert "authorization" not in request.headers
        assert not any(value.split()[-1:] == ["k2"] for value in request.headers.values())
