"""Governance shared by two `nexus serve` replicas on one real redis-server (``[state] backend =
"redis"``), driven by the official `openai` SDK: a tenant's rpm is one bucket for both replicas,
and a spend budget spent through one replica is enforced by the other within about two ledger
intervals (each replica writes its charges, then reads the totals back, every second)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.e2e.configs import CHAT, Gateway, backend
from tests.e2e.test_governance import (
    CLOUD_ONLY,
    HELLO,
    PRICING,
    SECRET_KEY,
    budget,
    chat,
    cloud_and_local,
    governed,
    sdk,
)
from tests.fakes.fixtures import StartFake
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import FakeModel
from tests.state.redis_server import RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

UNAVAILABLE = "in Redis unavailable"
LOCAL_ONLY = "tiny"


@contextmanager
def replicas(
    tmp_path: Path,
    redis: RedisServer,
    backends: Sequence[Mapping[str, Any]],
    clients: Sequence[Mapping[str, Any]] = (),
    **sections: Mapping[str, Any],
) -> Iterator[tuple[Gateway, Gateway]]:
    """Two gateways on the same backends, clients and Redis. A request waits up to 0.5 s for
    Redis before deciding its rate limit alone (the default 50 ms is short on a loaded machine,
    and a replica deciding alone would allow the whole limit on its own)."""
    state = {"backend": "redis", "redis_url": redis.url, "acquire_timeout_seconds": 0.5}
    with ExitStack() as stack:
        a, b = (
            stack.enter_context(
                governed(tmp_path / name, backends, clients, state=state, **sections)
            )
            for name in ("a", "b")
        )
        yield a, b


def test_a_tenants_rpm_is_one_bucket_for_both_replicas(
    tmp_path: Path, real_redis: RedisServer, start_fake: StartFake
) -> None:
    local = start_fake(FakeOpenAI)
    local.set_models(FakeModel("m"))
    clients: list[dict[str, Any]] = [
        {"name": "ci", "api_key_env": "SECRET_KEY", "rpm": 10},
        {"name": "team", "api_key_env": "TEAM_KEY"},
    ]
    answers: list[tuple[str, int, Mapping[str, str]]] = []
    with (
        replicas(tmp_path, real_redis, [backend("box", local.url)], clients) as (a, b),
        sdk(a, SECRET_KEY) as (on_a, _),
        sdk(b, SECRET_KEY) as (on_b, _),
    ):
        for _ in range(8):  # 16 requests, alternating: A, B, A, B, ...
            for name, client in (("a", on_a), ("b", on_b)):
                try:
                    answer = chat(client)
                    answers.append((name, 200, answer.headers))
                except openai.RateLimitError as exc:
                    answers.append((name, exc.status_code, exc.response.headers))
        logs = [a.served.stderr(), b.served.stderr()]

    codes = [code for _, code, _ in answers]
    successes = codes.count(200)
    # the bucket refills 1/6 request a second: a slow run may earn one or two more
    assert 10 <= successes <= 12, codes
    # a replica takes one request ahead (its allowance) when it asks Redis: the tenth may be
    # refused on one replica while the other still holds the one it took
    assert codes[:9] == [200] * 9 and codes[:12].count(200) == successes, codes
    assert codes[12:] == [429] * 4, "then only 429s"
    for replica in ("a", "b"):
        seen = [int(h["x-ratelimit-remaining-requests"]) for n, c, h in answers if n == replica]
        assert min(seen) <= 1, f"one bucket: replica {replica} saw the other's requests: {seen}"
    assert {name for name, code, _ in answers[-4:] if code == 429} == {"a", "b"}
    for _, _, headers in (answer for answer in answers if answer[1] == 429):
        assert headers["x-ratelimit-limit-requests"] == "10"
        assert headers["x-ratelimit-remaining-requests"] == "0"
        assert 0 < int(headers["retry-after-ms"]) <= 6000
    assert len(local.requests_to(CHAT)) == successes
    for log in logs:
        assert UNAVAILABLE not in log, "Redis answered every time it was asked"


def test_a_budget_spent_through_one_replica_blocks_the_other_within_two_seconds(
    tmp_path: Path, real_redis: RedisServer, start_fake: StartFake
) -> None:
    cloud, local, backends = cloud_and_local(start_fake)
    local.set_models(FakeModel("m"), FakeModel(LOCAL_ONLY))  # B asks for it: free, never cloud
    with (
        replicas(
            tmp_path, real_redis, backends, routing=budget(0.1, "block_all"), pricing=PRICING
        ) as (a, b),
        sdk(a, "anything") as (on_a, _),
        sdk(b, "anything") as (on_b, _),
    ):
        before = chat(on_b, model=LOCAL_ONLY)
        spending = [chat(on_a, model=CLOUD_ONLY) for _ in range(2)]  # 0.06 USD each
        spent_at = time.monotonic()
        with pytest.raises(openai.RateLimitError) as on_a_at_once:
            on_a.chat.completions.create(model="m", messages=HELLO)
        served_meanwhile = []
        while True:
            try:
                served_meanwhile.append(chat(on_b, model=LOCAL_ONLY))
            except openai.RateLimitError as exc:
                blocked_after = time.monotonic() - spent_at
                on_b_later = exc
                break
            assert time.monotonic() - spent_at < 5, "B never saw the spend"
            time.sleep(0.05)
        logs = [a.served.stderr(), b.served.stderr()]

    assert before.headers["x-nexus-backend"] == "box"
    assert "x-nexus-budget-status" not in before.headers
    assert [s.headers["x-nexus-backend"] for s in spending] == ["cloud", "cloud"]
    assert [s.headers["x-nexus-cost-estimated"] for s in spending] == ["0.0600", "0.0600"]
    assert blocked_after <= 2.5, f"B enforced the budget after {blocked_after:.2f} s"
    for error in (on_a_at_once.value, on_b_later):
        assert error.status_code == 429
        assert error.code == "insufficient_quota"
        message = error.response.json()["error"]["message"]
        assert message.startswith("the gateway's monthly budget of 0.10 USD is spent (0.12 USD)")
        assert error.response.headers["x-nexus-budget-status"] == "hard_limit"
    for answer in served_meanwhile:  # before B knew: local, free
        assert answer.headers["x-nexus-backend"] == "box"
        assert "x-nexus-cost-estimated" not in answer.headers
    assert len(cloud.requests_to(CHAT)) == 2
    for log in logs:
        assert UNAVAILABLE not in log
