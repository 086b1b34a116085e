"""The other client APIs an OpenAI-compatible server may speak natively, for the fakes:
``POST /v1/completions`` (legacy completions with ``suffix``, JSON and SSE).

A fake serves the APIs named in its ``serves`` set (e.g. ``{"chat", "embeddings"}`` for a server
that has no ``/v1/completions``); the others answer 404 as such a server does, so a test sees
whether Nexus relayed or translated. Answers are deterministic and deliberately not canonical
JSON (odd spacing, a ``\\u00e9`` escape, a vendor field), as in :mod:`tests.fakes.chat`.

- completions: ``text`` is ``"echo: <prompt>"`` (a list prompt: its strings joined by ``|``), plus
  ``" [suffix: <suffix>]"`` when ``suffix`` is set; SSE splits it into ``chunk_count`` events, a
  finish event and ``data: [DONE]``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

if TYPE_CHECKING:
    from tests.fakes.chat import OpenAICompatibleFake

COMPLETIONS_PATH = "/v1/completions"


def dialect_routes(fake: OpenAICompatibleFake) -> list[BaseRoute]:
    return [Route(COMPLETIONS_PATH, _completions(fake), methods=["POST"])]


def not_served(path: str) -> JSONResponse:
    """What a server without the endpoint answers (llama.cpp, vLLM: a plain 404)."""
    return JSONResponse({"detail": "Not Found", "path": path}, status_code=404)


def completion_text(request: Mapping[str, Any]) -> str:
    prompt = request.get("prompt")
    if isinstance(prompt, list):
        prompt = "|".join(item for item in prompt if isinstance(item, str))
    suffix = request.get("suffix")
    return f"echo: {prompt}" + (f" [suffix: {suffix}]" if isinstance(suffix, str) else "")


def _completions(fake: OpenAICompatibleFake) -> Any:
    async def handler(request: Request) -> Response:
        if "completions" not in fake.serves:
            return not_served(COMPLETIONS_PATH)
        payload = await fake.payload(request)
        if isinstance(payload, Response):
            return payload
        if not isinstance(payload.get("prompt"), str | list):
            return fake.bad_request("'prompt' is required", "prompt")
        from tests.fakes.chat import request_digest, split_text

        text = completion_text(payload)
        head = (
            f'{{"id": "cmpl-{request_digest(payload)[:20]}", "object": "text_completion", '
            f'"created": {fake.created}, "model": {json.dumps(payload["model"])}, '
        )
        if not payload.get("stream"):
            words = max(len(text.split()), 1)
            body = (
                f'{head}"choices": [{{"text": {json.dumps(text)}, "index": 0, '
                '"logprobs": null, "finish_reason": "stop"}], "usage": {"prompt_tokens": 3, '
                f'"completion_tokens": {words}, "total_tokens": {words + 3}}}, '
                '"x_fake_note": "caf\\u00e9"}'
            )
            return Response(body.encode(), media_type="application/json")
        events = [
            f'data: {head}"choices":[{{"text":{json.dumps(part)},"index":0,"logprobs":null,'
            '"finish_reason":null}]}\n\n'
            for part in split_text(text, fake.chunk_count)
        ]
        events.append(
            f'data: {head}"choices":[{{"text":"","index":0,"logprobs":null,'
            '"finish_reason":"stop"}]}\n\n'
        )
        events.append("data: [DONE]\n\n")
        chunks = [event.encode() for event in events]
        return StreamingResponse(fake.pace(chunks), media_type="text/event-stream")

    return handler
