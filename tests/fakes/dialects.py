"""The other client APIs an OpenAI-compatible server may speak natively, for the fakes:
``POST /v1/completions`` (legacy completions with ``suffix``, JSON and SSE) and ``POST
/v1/messages`` (Anthropic Messages as Ollama and llama.cpp's server speak it: the answers of
:class:`~tests.fakes.anthropic.FakeAnthropic`, without its ``x-api-key`` check) and ``POST
/v1/responses`` (OpenAI's Responses API as vLLM, Ollama and OpenAI speak it).

A fake serves the APIs named in its ``serves`` set (e.g. ``{"chat", "embeddings"}`` for a server
that has no ``/v1/completions``); the others answer 404 as such a server does, so a test sees
whether Nexus relayed or translated. Answers are deterministic and deliberately not canonical
JSON (odd spacing, a ``\\u00e9`` escape, a vendor field), as in :mod:`tests.fakes.chat`.

- responses: one ``message`` output item whose ``output_text`` is ``"echo: <text of the last user
  input>"``; SSE: ``response.created``, ``response.in_progress``, the item and content part
  opened, ``chunk_count`` ``response.output_text.delta`` events, the closing events and
  ``response.completed``, each ``event: <type>`` + ``data: <json>`` with a ``sequence_number``.
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
MESSAGES_PATH = "/v1/messages"
RESPONSES_PATH = "/v1/responses"


def dialect_routes(fake: OpenAICompatibleFake) -> list[BaseRoute]:
    return [
        Route(COMPLETIONS_PATH, _completions(fake), methods=["POST"]),
        Route(MESSAGES_PATH, _messages(fake), methods=["POST"]),
        Route(RESPONSES_PATH, _responses(fake), methods=["POST"]),
    ]


def input_text(request: Mapping[str, Any]) -> str:
    """The text of the last user input of a Responses request."""
    items = request.get("input")
    if isinstance(items, str):
        return items
    for item in reversed(items if isinstance(items, list) else []):
        if isinstance(item, dict) and item.get("role") == "user":
            content = item.get("content")
            if isinstance(content, str):
                return content
            texts = [p.get("text", "") for p in content or [] if isinstance(p, dict)]
            return " ".join(text for text in texts if text)
    return ""


def _responses(fake: OpenAICompatibleFake) -> Any:
    async def handler(request: Request) -> Response:
        if "responses" not in fake.serves:
            return not_served(RESPONSES_PATH)
        payload = await fake.payload(request)
        if isinstance(payload, Response):
            return payload
        if not isinstance(payload.get("input"), str | list):
            return fake.bad_request("Missing required parameter: 'input'.", "input")
        from tests.fakes.chat import request_digest, split_text

        digest = request_digest(payload)
        text = f"echo: {input_text(payload)}"
        part = {"type": "output_text", "text": text, "annotations": []}
        item = {
            "id": f"msg_{digest[:20]}",
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [part],
        }
        words = max(len(text.split()), 1)
        done = {
            "id": f"resp_{digest[:24]}",
            "object": "response",
            "created_at": fake.created,
            "status": "completed",
            "model": payload["model"],
            "output": [item],
            "usage": {"input_tokens": 3, "output_tokens": words, "total_tokens": words + 3},
            "x_fake_note": "caf\u00e9",
        }
        if not payload.get("stream"):
            return Response(json.dumps(done).encode(), media_type="application/json")
        opened = {**done, "status": "in_progress", "output": [], "usage": None}
        empty_item = {**item, "status": "in_progress", "content": []}
        sequence: list[tuple[str, dict[str, Any]]] = [
            ("response.created", {"response": opened}),
            ("response.in_progress", {"response": opened}),
            ("response.output_item.added", {"output_index": 0, "item": empty_item}),
            ("response.content_part.added", {"item_id": item["id"], "output_index": 0,
                                             "content_index": 0, "part": {**part, "text": ""}}),
            *(
                ("response.output_text.delta", {"item_id": item["id"], "output_index": 0,
                                                "content_index": 0, "delta": piece})
                for piece in split_text(text, fake.chunk_count)
            ),
            ("response.output_text.done", {"item_id": item["id"], "output_index": 0,
                                           "content_index": 0, "text": text}),
            ("response.content_part.done", {"item_id": item["id"], "output_index": 0,
                                            "content_index": 0, "part": part}),
            ("response.output_item.done", {"output_index": 0, "item": item}),
            ("response.completed", {"response": done}),
        ]  # fmt: skip
        events = [
            f"event: {kind}\ndata: "
            + json.dumps({"type": kind, **data, "sequence_number": number})
            + "\n\n"
            for number, (kind, data) in enumerate(sequence)
        ]
        return StreamingResponse(
            fake.pace([event.encode() for event in events]), media_type="text/event-stream"
        )

    return handler


def _messages(fake: OpenAICompatibleFake) -> Any:
    from tests.fakes.anthropic import FakeAnthropic
    from tests.fakes.sse import PacedEvents

    engine = FakeAnthropic()

    async def handler(request: Request) -> Response:
        if "messages" not in fake.serves:
            return not_served(MESSAGES_PATH)
        engine.chunk_count = fake.chunk_count
        response = await engine.answer_messages(request)
        if isinstance(response, PacedEvents):
            response.fake = fake  # paced on the serving fake's loop
        return response

    return handler


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
