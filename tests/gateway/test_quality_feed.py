"""Issue 17: every attempt feeds the quality store (not probes, not a client's 4xx), and the
figures show in ``/v1/backends`` and ``/metrics`` (what routing does with them:
``test_quality_routing.py``)."""

from __future__ import annotations

from tests.api.gateway import CHAT, chat_body, fleet, gateway


async def test_attempts_feed_the_quality_figures(start_fake) -> None:
    (flaky, steady), backends = fleet(start_fake, "flaky", "steady")
    flaky.respond(500, path=CHAT, times=2)
    async with gateway(backends) as gw:
        answers = [await gw.client.post(CHAT, json=chat_body()) for _ in range(4)]
        steady.respond(400, path=CHAT, times=1)
        flaky.respond(400, path=CHAT, times=1)
        client_error = await gw.client.post(CHAT, json=chat_body())
        listing = (await gw.client.get("/v1/backends")).json()["data"]
        metrics = (await gw.client.get("/metrics")).text
    assert [a.headers["x-nexus-backend"] for a in answers] == ["steady", "steady", "flaky", "flaky"]
    assert client_error.status_code == 400
    quality = {entry["name"]: entry["quality"] for entry in listing}
    flaky_m, steady_m = quality["flaky"]["m"], quality["steady"]["m"]
    assert flaky_m["attempts_5m"] == 4, "2 failures, 2 successes; the client's 400 is not counted"
    assert flaky_m["failures_5m"] == {"server_error": 2}
    assert steady_m["attempts_5m"] == 2 and steady_m["failures_5m"] == {}
    assert steady_m["ttft_ms_5m"] > 0
    assert flaky_m["error_rate_5m"] is None, "fewer attempts than min_requests"
    assert 'nexus_backend_ttft_seconds{backend="steady",model="m",window="5m"}' in metrics
    assert 'nexus_backend_attempts{backend="flaky",model="m",window="1h"} 4.0' in metrics


async def test_probes_do_not_feed_the_quality_figures(start_fake) -> None:
    (flaky, steady), backends = fleet(start_fake, "flaky", "steady")
    async with gateway(backends) as gw:
        listing = (await gw.client.get("/v1/backends")).json()["data"]
    assert all(entry["quality"] == {} for entry in listing)
