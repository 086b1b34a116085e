"""OpenTelemetry traces (``[tracing]``), checked against a real OTLP/HTTP receiver that decodes
the protobuf the exporter sends: one server span per request with the GenAI and Nexus
attributes, one client span per upstream attempt, and W3C ``traceparent`` from the client, to
the backend (the attempt's span), with and without sampling. Off, nothing is traced, nothing is
propagated and OpenTelemetry is never imported."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

from nexus.observability.tracing import Tracing
from tests.api.gateway import CHAT, Gateway, chat_body, fleet, gateway
from tests.observability.otlp_receiver import OtlpReceiver, ReceivedSpan

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
SAMPLED = f"00-{TRACE_ID}-{CLIENT_SPAN}-01"
UNSAMPLED = f"00-{TRACE_ID}-{CLIENT_SPAN}-00"
PROMPT = "the confidential prompt text"
BACKEND_KEY = "sk-backend-secret-0123456789"
CLIENT_KEY = "client-secret-9876543210"


def tracing_to(receiver: OtlpReceiver, **extra: Any) -> dict[str, Any]:
    return {"enabled": True, "endpoint": receiver.endpoint, "service_name": "nexus-test", **extra}


def tracing_of(gw: Gateway) -> Tracing:
    tracing = gw.app.gateway.tracing
    assert tracing is not None
    return tracing


def sampled(traceparent: str) -> bool:
    """The sampled bit of a ``traceparent``'s flags (the SDK may also set 0x02, "random")."""
    return bool(int(traceparent.rsplit("-", 1)[1], 16) & 1)


def only(spans: list[ReceivedSpan]) -> ReceivedSpan:
    assert len(spans) == 1, spans
    return spans[0]


async def test_a_failover_is_one_server_span_and_two_attempt_spans(start_fake) -> None:
    receiver = start_fake(OtlpReceiver)
    (first, second), backends = fleet(start_fake, "first", "second")
    for backend in backends:
        backend["api_key_env"] = "BACKEND_KEY"
    first.respond(500, path=CHAT, times=1)
    environ = {"BACKEND_KEY": BACKEND_KEY}
    async with gateway(backends, environ=environ, tracing=tracing_to(receiver)) as gw:
        response = await gw.client.post(
            CHAT,
            json=chat_body(text=PROMPT),
            headers={"traceparent": SAMPLED, "authorization": f"Bearer {CLIENT_KEY}"},
        )
        tracing_of(gw).flush()
    assert response.status_code == 200
    assert response.headers["x-nexus-backend"] == "second"

    server = only(receiver.of_kind("server"))
    assert server.name == "chat m"
    assert (server.trace_id, server.parent_span_id) == (TRACE_ID, CLIENT_SPAN)
    assert server.status == "unset"  # a 2xx answer: left unset, as the conventions say
    attributes = server.attributes
    assert {key: attributes.get(key) for key in EXPECTED_SERVER} == EXPECTED_SERVER
    assert isinstance(attributes["gen_ai.usage.input_tokens"], int)
    assert attributes["nexus.request_id"] == response.headers["x-request-id"]
    assert server.resource["service.name"] == "nexus-test"

    failed, served = sorted(receiver.of_kind("client"), key=lambda span: span.start_ns)
    for attempt in (failed, served):
        assert (attempt.trace_id, attempt.parent_span_id) == (TRACE_ID, server.span_id)
        assert attempt.attributes["server.address"] == "127.0.0.1"
        assert attempt.attributes["gen_ai.request.model"] == "m"
        assert attempt.attributes["gen_ai.provider.name"] == "vllm"
    assert failed.name == "attempt first"
    assert failed.status == "error"
    assert failed.attributes["error.type"] == "server_error"
    assert failed.attributes["http.response.status_code"] == 500
    assert failed.attributes["nexus.backend"] == "first"
    assert failed.attributes["server.port"] == int(first.url.rsplit(":", 1)[1])
    assert served.name == "attempt second"
    assert served.status == "unset"
    assert "error.type" not in served.attributes
    assert served.attributes["http.response.status_code"] == 200
    assert served.attributes["nexus.backend"] == "second"
    assert failed.end_ns <= served.start_ns and served.end_ns <= server.end_ns

    # each backend was sent the traceparent of its own attempt span, in the client's trace
    assert first.requests_to(CHAT)[0].headers["traceparent"] == f"00-{TRACE_ID}-{failed.span_id}-01"
    assert second.requests_to(CHAT)[0].headers["traceparent"] == (
        f"00-{TRACE_ID}-{served.span_id}-01"
    )

    # never content, never a key
    for span in receiver.spans:
        for value in span.attributes.values():
            for secret in (PROMPT, "confidential", BACKEND_KEY, CLIENT_KEY, "Bearer"):
                assert secret not in str(value), (span.name, value)


EXPECTED_SERVER = {
    "gen_ai.operation.name": "chat",
    "gen_ai.request.model": "m",
    "gen_ai.response.model": "m",
    "gen_ai.provider.name": "vllm",
    "nexus.backend": "second",
    "nexus.route_reason": "failover",
    "nexus.privacy_zone": "restricted",
    "nexus.tier": 1,
    "nexus.failed_attempts": 1,
    "nexus.stream": False,
    "http.response.status_code": 200,
}


async def test_no_backend_left_is_an_error_server_span(start_fake) -> None:
    receiver = start_fake(OtlpReceiver)
    (only_one,), backends = fleet(start_fake, "only")
    only_one.respond(503, path=CHAT)
    async with gateway(backends, tracing=tracing_to(receiver)) as gw:
        response = await gw.client.post(CHAT, json=chat_body(model="m"))
        tracing_of(gw).flush()
    assert response.status_code == 503
    server = only(receiver.of_kind("server"))
    assert server.parent_span_id == ""  # no client traceparent: a new trace
    assert server.status == "error"
    assert server.attributes["http.response.status_code"] == 503
    assert server.attributes["error.type"] == "503"
    attempt = only(receiver.of_kind("client"))
    assert attempt.parent_span_id == server.span_id
    assert attempt.status == "error"


async def test_a_stream_server_span_ends_when_the_stream_ends(start_fake) -> None:
    receiver = start_fake(OtlpReceiver)
    (fake,), backends = fleet(start_fake, "only")
    fake.chunk_count, fake.chunk_delay = 5, 0.05
    async with gateway(backends, tracing=tracing_to(receiver)) as gw:
        async with gw.client.stream("POST", CHAT, json=chat_body(stream=True)) as response:
            body = await response.aread()
        tracing_of(gw).flush()
    assert b"data: [DONE]" in body
    server = only(receiver.of_kind("server"))
    attempt = only(receiver.of_kind("client"))
    assert server.attributes["nexus.stream"] is True
    assert server.attributes["http.response.status_code"] == 200
    # the answer started at once; the stream itself took 6 gaps of 50 ms
    assert server.end_ns - server.start_ns >= 250_000_000
    assert attempt.end_ns - attempt.start_ns >= 250_000_000
    assert attempt.end_ns <= server.end_ns


async def test_a_zero_sample_ratio_exports_nothing_but_still_propagates(start_fake) -> None:
    receiver = start_fake(OtlpReceiver)
    (fake,), backends = fleet(start_fake, "only")
    async with gateway(backends, tracing=tracing_to(receiver, sample_ratio=0)) as gw:
        unsampled = await gw.client.post(CHAT, json=chat_body())
        tracing_of(gw).flush()
        assert unsampled.status_code == 200
        assert receiver.spans == []
        sent = fake.requests_to(CHAT)[0].headers["traceparent"]
        assert sent.startswith("00-") and not sampled(sent)  # not sampled, still one trace

        # parent-based: a client that sampled its trace gets it traced whatever the ratio
        await gw.client.post(CHAT, json=chat_body(), headers={"traceparent": SAMPLED})
        tracing_of(gw).flush()
    server = only(receiver.of_kind("server"))
    assert (server.trace_id, server.parent_span_id) == (TRACE_ID, CLIENT_SPAN)
    assert len(receiver.of_kind("client")) == 1


async def test_a_client_that_did_not_sample_is_not_traced(start_fake) -> None:
    receiver = start_fake(OtlpReceiver)
    (fake,), backends = fleet(start_fake, "only")
    async with gateway(backends, tracing=tracing_to(receiver)) as gw:
        await gw.client.post(CHAT, json=chat_body(), headers={"traceparent": UNSAMPLED})
        tracing_of(gw).flush()
    assert receiver.spans == []
    sent = fake.requests_to(CHAT)[0].headers["traceparent"]
    assert sent.startswith(f"00-{TRACE_ID}-") and not sampled(sent)


async def test_off_nothing_is_traced_nor_propagated(start_fake) -> None:
    receiver = start_fake(OtlpReceiver)
    (fake,), backends = fleet(start_fake, "only")
    async with gateway(backends) as gw:
        assert gw.app.gateway.tracing is None
        response = await gw.client.post(
            CHAT, json=chat_body(), headers={"traceparent": SAMPLED, "tracestate": "k=v"}
        )
    assert response.status_code == 200
    headers = fake.requests_to(CHAT)[0].headers
    assert "traceparent" not in headers and "tracestate" not in headers
    assert receiver.exports == 0


def test_off_the_opentelemetry_sdk_is_never_imported() -> None:
    # (FastAPI itself imports opentelemetry-api, its dependency: no-op without a provider)
    script = textwrap.dedent(
        """
        import asyncio, sys
        import httpx
        from nexus.app import create_app
        from nexus.config import NexusConfig

        async def main():
            config = NexusConfig.model_validate(
                {"discovery": {"enabled": False}, "health_check": {"enabled": False}}
            )
            app = create_app(config)
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app)
                async with httpx.AsyncClient(transport=transport, base_url="http://n") as client:
                    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
                    assert (await client.post("/v1/chat/completions", json=body)).status_code
        asyncio.run(main())
        loaded = ("opentelemetry.sdk", "opentelemetry.exporter", "nexus.observability.tracing")
        print(sorted(name for name in sys.modules if name.startswith(loaded)))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "[]"
