"""Issue 17: ``GET /v1/stats`` shows the quality of every (backend, model) pair in ``quality``:
its ejection state, the error rate over the last hour, the mean time to first token (1 h), the
success rate over 24 hours (the Rust Nexus names) and the streams' tokens per second (1 h). The
rest of the body keeps its shape. In process, real fake upstreams."""

from __future__ import annotations

from tests.api.gateway import CHAT, chat_body, fleet, gateway

#: The body's keys before ``quality`` came.
KEYS = {"uptime_seconds", "requests", "backends", "models", "apis", "tenants", "process", "queue"}


async def test_stats_show_an_ejected_model_and_each_pairs_figures(start_fake) -> None:
    (flaky, steady), backends = fleet(start_fake, "flaky", "steady")
    flaky.respond(500, path=CHAT, times=2)
    steady.chunk_count, steady.chunk_delay = 5, 0.02
    quality = {"consecutive_failures": 2, "min_requests": 2, "base_ejection_seconds": 25}
    async with gateway(backends, quality=quality) as gw:
        before = (await gw.client.get("/v1/stats")).json()
        answers = [await gw.client.post(CHAT, json=chat_body()) for _ in range(2)]
        stream = await gw.client.post(CHAT, json=chat_body(stream=True))
        body = (await gw.client.get("/v1/stats")).json()
    assert before["quality"] == []
    assert [a.headers["x-nexus-backend"] for a in answers] == ["steady", "steady"]
    assert stream.headers["x-nexus-backend"] == "steady"  # flaky is ejected: skipped
    assert set(body) == KEYS | {"quality"}
    assert body["requests"]["total"] == 3  # the counts are unchanged
    rows = {(row["backend"], row["model"]): row for row in body["quality"]}
    assert list(rows) == [("flaky", "m"), ("steady", "m")]  # sorted by backend, then model
    assert rows["flaky", "m"] == {
        "backend": "flaky",
        "model": "m",
        "status": "ejected",
        "back_in_seconds": 25,
        "reason": "2 failures in a row (last: server_error)",
        "error_rate_1h": 1.0,
        "avg_ttft_ms": None,  # no success: no first token
        "success_rate_24h": 0.0,
        "tokens_per_second_1h": None,
    }
    steady_m = rows["steady", "m"]
    assert (steady_m["status"], steady_m["back_in_seconds"], steady_m["reason"]) == (
        "ok",
        None,
        None,
    )
    assert (steady_m["error_rate_1h"], steady_m["success_rate_24h"]) == (0.0, 1.0)
    assert steady_m["avg_ttft_ms"] > 0
    assert steady_m["tokens_per_second_1h"] > 0  # from the stream


async def test_rates_wait_for_min_requests(start_fake) -> None:
    (flaky, _), backends = fleet(start_fake, "flaky", "steady")
    flaky.respond(500, path=CHAT, times=1)
    async with gateway(backends, quality={"min_requests": 10}) as gw:
        await gw.client.post(CHAT, json=chat_body())
        body = (await gw.client.get("/v1/stats")).json()
    flaky_m = next(row for row in body["quality"] if row["backend"] == "flaky")
    assert flaky_m["status"] == "ok" and flaky_m["back_in_seconds"] is None
    assert (flaky_m["error_rate_1h"], flaky_m["success_rate_24h"]) == (None, None)
