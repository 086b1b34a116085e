"""Issue 17: quality steers real requests. A backend whose model keeps failing is ejected (the
next request goes elsewhere as a ``failover``, with the skipped outlier in the log and history),
comes back after its ejection through the probe share, and a slow first token lowers a backend in
the smart order. In process, real fake upstreams."""

from __future__ import annotations

import asyncio

from tests.api.gateway import CHAT, chat_body, fleet, gateway


async def test_a_failing_model_is_ejected_then_comes_back(start_fake) -> None:
    (flaky, steady), backends = fleet(start_fake, "flaky", "steady")
    flaky.respond(500, path=CHAT, times=2)
    quality = {
        "consecutive_failures": 2,  # below passive health's 3: quality ejects first
        "base_ejection_seconds": 0.6,
        "probe_share": 1.0,
        "recovery_successes": 1,
    }
    async with gateway(backends, quality=quality) as gw:
        failing = [await gw.client.post(CHAT, json=chat_body()) for _ in range(2)]
        route = (await gw.client.get("/v1/route", params={"model": "m"})).json()
        skipped = await gw.client.post(CHAT, json=chat_body())
        history = (await gw.client.get("/v1/history")).json()["data"]
        listed = (await gw.client.get("/v1/backends")).json()["data"]
        await asyncio.sleep(0.7)
        back = await gw.client.post(CHAT, json=chat_body())
        again = await gw.client.post(CHAT, json=chat_body())
    assert [r.headers["x-nexus-backend"] for r in failing] == ["steady", "steady"]
    flaky_route = route["stages"][0]["backends"][0]
    assert (flaky_route["decision"], flaky_route["reason"]) == ("skipped", "outlier")
    assert flaky_route["quality"]["effect"] == "excluded"
    assert flaky_route["quality"]["reason"] == "2 failures in a row (last: server_error)"
    assert flaky_route["quality"]["back_in_seconds"] == 1
    assert "ejected for 1 s more" in flaky_route["detail"]
    assert skipped.headers["x-nexus-backend"] == "steady"
    assert skipped.headers["x-nexus-route-reason"] == "failover"
    newest = next(
        entry for entry in history if entry["request_id"] == skipped.headers["x-request-id"]
    )
    assert newest["outliers_skipped"] == ["flaky"]
    flaky_listed = next(entry for entry in listed if entry["name"] == "flaky")
    assert flaky_listed["quality"]["m"]["status"] == "ejected"
    assert [r.headers["x-nexus-backend"] for r in (back, again)] == ["flaky", "flaky"]
    assert back.headers["x-nexus-route-reason"] == "capability-match"


async def test_a_slow_first_token_moves_a_backend_down_the_smart_order(start_fake) -> None:
    (slow, quick), backends = fleet(start_fake, "slow", "quick")
    slow.delay(0.3, path=CHAT)
    async with gateway(backends, quality={"ttft_penalty_threshold_ms": 100}) as gw:
        first = await gw.client.post(CHAT, json=chat_body())
        rest = [await gw.client.post(CHAT, json=chat_body()) for _ in range(5)]
        route = (await gw.client.get("/v1/route", params={"model": "m"})).json()
    assert first.headers["x-nexus-backend"] == "slow"  # the preferred one, until measured
    assert {r.headers["x-nexus-backend"] for r in rest} == {"quick"}
    assert {r.headers["x-nexus-route-reason"] for r in rest} == {"capability-match"}
    slow_route = route["stages"][0]["backends"][0]
    assert slow_route["quality"]["effect"] == "lowered"
    assert slow_route["quality"]["penalty"] == 1.0
    assert route["candidates"][0]["backend"] == "quick"


async def test_a_complete_stream_records_its_total_time_and_tokens_per_second(start_fake) -> None:
    (streamer,), backends = fleet(start_fake, "streamer")
    streamer.chunk_count = 10
    streamer.chunk_delay = 0.02
    async with gateway(backends) as gw:
        reply = await gw.client.post(CHAT, json=chat_body(stream=True))
        figures = gw.app.gateway.quality.figures("streamer", "m", "5m")
    assert reply.status_code == 200 and reply.text.rstrip().endswith("data: [DONE]")
    assert figures.successes == 1
    assert figures.total_ms is not None and figures.ttft_ms is not None
    assert figures.total_ms >= figures.ttft_ms + 10 * 20 * 0.9  # the end, not the first chunk
    # 12 data events after the first (10 deltas, the finish chunk, [DONE]) in >= 0.2 s
    assert figures.tokens_per_second is not None
    assert 20 <= figures.tokens_per_second <= 60
