"""A fast fake OpenAI-compatible upstream for the benchmark, run as its own process.

``python -m bench.upstream --port 18000 [--impl asgi|aiohttp] [--chunks 20] [--slow-delay-ms 50]
[--chat-only]``

Answers ``GET /v1/models`` (``bench-model`` and ``bench-slow``), ``GET /health`` (200, empty
body: vllm-router's health check, as vLLM answers it), and ``POST /v1/chat/completions``
with a ~500-byte JSON completion, or with an SSE stream of ``--chunks`` chunks plus ``[DONE]``
when the body asks for ``"stream": true``. A request for ``bench-slow`` streams with
``--slow-delay-ms`` between chunks (the concurrent-streams ramp). ``POST /v1/messages`` answers a
fixed Anthropic Messages JSON and ``POST /v1/responses`` a fixed Responses JSON of the same size
(JSON only: ``bench/dialects.py``'s native path), unless ``--chat-only``. Everything else is 404.
The bodies are built once at start-up: a request costs a byte search and a write.

Two servers with the same behaviour: a raw ASGI app on uvicorn (uvloop, httptools) and an aiohttp
app on uvloop. ``bench/README.md`` says which is faster here; ``--impl`` picks one.
"""

from __future__ import annotations

import argparse
import asyncio
import re
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import orjson

MODEL = "bench-model"
SLOW_MODEL = "bench-slow"
CREATED = 1_700_000_000
STREAM_RE = re.compile(rb'"stream"\s*:\s*true')

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


CONTENT = (
    "Hello! This short answer comes from a fake upstream, so that the benchmark "
    "measures the gateway."
)


def completion_body() -> bytes:
    """A realistic non-streaming completion of about 500 bytes."""
    body = {
        "id": "chatcmpl-bench0000000000000000000001",
        "object": "chat.completion",
        "created": CREATED,
        "model": MODEL,
        "system_fingerprint": "fp_bench01",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": CONTENT, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 24,
            "completion_tokens": 31,
            "total_tokens": 55,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    }
    return orjson.dumps(body)


def message_body() -> bytes:
    """A non-streaming Anthropic Messages answer (about 350 bytes)."""
    body = {
        "id": "msg_bench000000000000000001",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [{"type": "text", "text": CONTENT}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 24, "output_tokens": 31},
    }
    return orjson.dumps(body)


def response_body() -> bytes:
    """A non-streaming OpenAI Responses answer (about 500 bytes)."""
    body = {
        "id": "resp_bench000000000000000001",
        "object": "response",
        "created_at": CREATED,
        "status": "completed",
        "model": MODEL,
        "output": [
            {
                "type": "message",
                "id": "msg_bench000000000000000001",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": CONTENT, "annotations": []}],
            }
        ],
        "usage": {
            "input_tokens": 24,
            "output_tokens": 31,
            "total_tokens": 55,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        },
    }
    return orjson.dumps(body)


def stream_chunks(count: int) -> list[bytes]:
    """``count`` SSE events (role first, finish_reason last) followed by ``[DONE]``."""
    events = []
    for index in range(count):
        delta: dict[str, str] = {"content": f"word{index} "}
        if index == 0:
            delta = {"role": "assistant", "content": ""}
        chunk = {
            "id": "chatcmpl-bench0000000000000000000001",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": MODEL,
            "system_fingerprint": "fp_bench01",
            "choices": [
                {
                    "index": 0,
                    "delta": delta,
                    "logprobs": None,
                    "finish_reason": "stop" if index == count - 1 else None,
                }
            ],
        }
        events.append(b"data: " + orjson.dumps(chunk) + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return events


def models_body() -> bytes:
    data = [
        {"id": name, "object": "model", "created": CREATED, "owned_by": "bench"}
        | {"max_model_len": 32768}
        for name in (MODEL, SLOW_MODEL)
    ]
    return orjson.dumps({"object": "list", "data": data})


@dataclass(frozen=True, slots=True)
class Replies:
    """Every answer, pre-serialised."""

    completion: bytes
    chunks: tuple[bytes, ...]
    models: bytes
    slow_delay: float
    #: ``POST`` path -> fixed JSON answer of the other client APIs (empty with ``--chat-only``).
    dialects: dict[str, bytes]

    @classmethod
    def build(cls, chunks: int, slow_delay_ms: float, chat_only: bool = False) -> Replies:
        dialects = {} if chat_only else {MESSAGES: message_body(), RESPONSES: response_body()}
        return cls(
            completion_body(),
            tuple(stream_chunks(chunks)),
            models_body(),
            slow_delay_ms / 1000,
            dialects,
        )

    def delay_for(self, body: bytes) -> float:
        return self.slow_delay if SLOW_MODEL.encode() in body else 0.0


MESSAGES = "/v1/messages"
RESPONSES = "/v1/responses"
JSON_HEADERS = [(b"content-type", b"application/json")]
SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
NOT_FOUND = b'{"error":{"message":"not found","type":"invalid_request_error"}}'


def asgi_app(replies: Replies) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """The raw ASGI application."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = await _read_all(receive)
        path, method = scope["path"], scope["method"]
        if method == "POST" and path == "/v1/chat/completions":
            if STREAM_RE.search(body):
                await _asgi_stream(send, replies.chunks, replies.delay_for(body))
                return
            await _asgi_reply(send, 200, replies.completion)
        elif method == "POST" and path in replies.dialects:
            await _asgi_reply(send, 200, replies.dialects[path])
        elif method == "GET" and path == "/v1/models":
            await _asgi_reply(send, 200, replies.models)
        elif method == "GET" and path == "/health":
            await _asgi_reply(send, 200, b"")
        else:
            await _asgi_reply(send, 404, NOT_FOUND)

    return app


async def _read_all(receive: Receive) -> bytes:
    message = await receive()
    body: bytes = message.get("body", b"")
    while message.get("more_body", False):
        message = await receive()
        body += message.get("body", b"")
    return body


async def _asgi_reply(send: Send, status: int, body: bytes) -> None:
    headers = [*JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _asgi_stream(send: Send, chunks: tuple[bytes, ...], delay: float) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
    for chunk in chunks:
        if delay:
            await asyncio.sleep(delay)
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


def serve_asgi(port: int, replies: Replies, keep_alive: float) -> None:
    import uvicorn

    uvicorn.run(
        asgi_app(replies),
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
        backlog=4096,
        timeout_keep_alive=int(keep_alive),
    )


def serve_aiohttp(port: int, replies: Replies, keep_alive: float) -> None:
    import uvloop
    from aiohttp import web

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if not STREAM_RE.search(body):
            return web.Response(body=replies.completion, content_type="application/json")
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        delay = replies.delay_for(body)
        for chunk in replies.chunks:
            if delay:
                await asyncio.sleep(delay)
            await response.write(chunk)
        await response.write_eof()
        return response

    async def models(_request: web.Request) -> web.Response:
        return web.Response(body=replies.models, content_type="application/json")

    async def health(_request: web.Request) -> web.Response:
        return web.Response()

    def fixed(answer: bytes) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            await request.read()
            return web.Response(body=answer, content_type="application/json")

        return handler

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/health", health)
    for path, answer in replies.dialects.items():
        app.router.add_post(path, fixed(answer))
    web.run_app(
        app,
        host="127.0.0.1",
        port=port,
        access_log=None,
        print=None,
        backlog=4096,
        keepalive_timeout=keep_alive,
        loop=uvloop.new_event_loop(),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fake OpenAI-compatible upstream.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--impl", choices=("asgi", "aiohttp"), default="asgi")
    parser.add_argument("--chunks", type=int, default=20, help="SSE chunks per stream")
    parser.add_argument("--slow-delay-ms", type=float, default=50.0)
    parser.add_argument(
        "--keep-alive",
        type=float,
        default=5.0,
        help="idle keep-alive seconds (uvicorn's and vLLM's: 5)",
    )
    parser.add_argument(
        "--chat-only",
        action="store_true",
        help="no /v1/messages nor /v1/responses: an OpenAI-compatible server that speaks chat only",
    )
    args = parser.parse_args(argv)
    replies = Replies.build(args.chunks, args.slow_delay_ms, args.chat_only)
    serve = serve_asgi if args.impl == "asgi" else serve_aiohttp
    serve(args.port, replies, args.keep_alive)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
