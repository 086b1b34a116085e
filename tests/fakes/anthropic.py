"""Fake Anthropic: ``GET /v1/models`` (``limit``/``after_id`` pagination) and ``POST /v1/messages``
(JSON and the full SSE event stream), with ``x-api-key`` and ``anthropic-version`` checked and
Anthropic's own error bodies, as the Messages API reference describes them.

Messages answers are deterministic:

- text: ``"echo: <text of the last user message>"``; ``stop_reason: "end_turn"``. When the answer
  has more words than ``max_tokens`` it is cut to ``max_tokens`` words, ``stop_reason:
  "max_tokens"``;
- ``tools`` (and ``tool_choice`` not ``{"type": "none"}``): one ``tool_use`` block calling the
  chosen (else the first) tool with ``{"echo": "<text>"}``, after a text block when
  ``tool_preamble`` is set; ``stop_reason: "tool_use"``;
- ``id`` is ``msg_`` plus a hash of the request; ``usage.input_tokens`` is 3 per message plus the
  words of the messages and the system prompt, ``output_tokens`` the words (or 1 for a tool call);
  ``cache_read_input_tokens``/``cache_creation_input_tokens`` are ``cached_tokens``/0.
- stream: ``message_start``, ``content_block_start``, ``ping``, ``chunk_count`` deltas
  (``text_delta`` or ``input_json_delta``), ``content_block_stop``, ``message_delta`` (stop
  reason and output usage), ``message_stop``, each as ``event: <type>`` + ``data: <json>``.

Failures (on ``/v1/messages``; ``times`` None = until ``reset()``)::

    fake.rate_limit(retry_after=7)     # 429 rate_limit_error, retry-after header
    fake.overloaded()                  # 529 overloaded_error
    fake.server_error()                # 500 api_error
    fake.error_event_after(3)          # stream: 3 events, then ``event: error`` (overloaded)
    fake.break_stream_after(3)         # stream: 3 events, then the connection drops
    a wrong or missing x-api-key       # 401 authentication_error
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tests.fakes.chat import last_user_text, message_text, request_digest, split_text
from tests.fakes.server import FakeModel, FakeUpstream
from tests.fakes.sse import PacedEvents

CREATED_AT = "2025-02-19T00:00:00Z"
MESSAGES_PATH = "/v1/messages"


def anthropic_error(status: int, kind: str, message: str) -> JSONResponse:
    body = {"type": "error", "error": {"type": kind, "message": message}}
    return JSONResponse(body, status_code=status, headers={"request-id": "req_fake_error"})


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()


@dataclass
class _StreamRule:
    after: int
    error_event: bool  # True: send Anthropic's error event; False: drop the connection
    times: int | None


@dataclass
class Message:
    """One answer, rendered as the JSON body or the SSE events."""

    id: str
    model: str
    blocks: list[dict[str, Any]]  # "text" and/or "tool_use" content blocks
    stop_reason: str
    input_tokens: int
    output_tokens: int
    cached_tokens: int

    def usage(self) -> dict[str, int]:
        return {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": self.cached_tokens,
            "output_tokens": self.output_tokens,
        }

    def body(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": self.blocks,
            "stop_reason": self.stop_reason,
            "stop_sequence": None,
            "usage": self.usage(),
        }

    def events(self, pieces: int) -> list[bytes]:
        start = {**self.body(), "content": [], "stop_reason": None}
        start["usage"] = {**self.usage(), "output_tokens": 1}
        events = [
            _event("message_start", {"type": "message_start", "message": start}),
        ]
        for index, block in enumerate(self.blocks):
            events += _block_events(index, block, pieces)
            if index == 0:
                events.append(_event("ping", {"type": "ping"}))
        delta = {"stop_reason": self.stop_reason, "stop_sequence": None}
        usage = {"output_tokens": self.output_tokens}
        return [
            *events,
            _event("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}),
            _event("message_stop", {"type": "message_stop"}),
        ]


def _block_events(index: int, block: dict[str, Any], pieces: int) -> list[bytes]:
    """content_block_start, the deltas (``pieces`` of them), content_block_stop."""
    if block["type"] == "text":
        opening: dict[str, Any] = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": p} for p in split_text(block["text"], pieces)]
    else:
        opening = {**block, "input": {}}
        arguments = json.dumps(block["input"])
        deltas = [
            {"type": "input_json_delta", "partial_json": p} for p in split_text(arguments, pieces)
        ]
    start = {"type": "content_block_start", "index": index, "content_block": opening}
    return [
        _event("content_block_start", start),
        *(
            _event(
                "content_block_delta", {"type": "content_block_delta", "index": index, "delta": d}
            )
            for d in deltas
        ),
        _event("content_block_stop", {"type": "content_block_stop", "index": index}),
    ]


class FakeAnthropic(FakeUpstream):
    """Anthropic. ``api_key`` is the only key accepted; ``max_page_size`` caps ``limit``."""

    api_key = "sk-ant-test-key"
    max_page_size = 1000
    chunk_count = 3
    chunk_delay = 0.0
    cached_tokens = 0
    tool_preamble: str | None = None  # text block sent before a tool_use block, as Claude does

    def __init__(self, models: Any = ()) -> None:
        super().__init__(models)
        self._stream_rule: _StreamRule | None = None

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/v1/models", self.list_models, methods=["GET"]),
            Route(MESSAGES_PATH, self.messages, methods=["POST"]),
        ]

    def check_headers(self, request: Request) -> JSONResponse | None:
        """Anthropic's 401 for a missing or wrong key, 400 without ``anthropic-version``."""
        if request.headers.get("x-api-key") != self.api_key:
            return anthropic_error(401, "authentication_error", "invalid x-api-key")
        if "anthropic-version" not in request.headers:
            message = "anthropic-version: header is required"
            return anthropic_error(400, "invalid_request_error", message)
        return None

    # -- programmed failures -------------------------------------------------------------------

    def rate_limit(self, retry_after: int | None = 7, *, times: int | None = None) -> None:
        headers = {"anthropic-ratelimit-requests-remaining": "0", "request-id": "req_fake_429"}
        if retry_after is not None:
            headers["retry-after"] = str(retry_after)
        body = {
            "type": "error",
            "error": {
                "type": "rate_limit_error",
                "message": "This request would exceed your organization's rate limit.",
            },
        }
        self.respond(429, json_body=body, headers=headers, path=MESSAGES_PATH, times=times)

    def overloaded(self, *, times: int | None = None) -> None:
        body = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        self.respond(529, json_body=body, path=MESSAGES_PATH, times=times)

    def server_error(self, *, times: int | None = None) -> None:
        body = {"type": "error", "error": {"type": "api_error", "message": "Internal server error"}}
        self.respond(500, json_body=body, path=MESSAGES_PATH, times=times)

    def error_event_after(self, events: int, *, times: int | None = None) -> None:
        with self._lock:
            self._stream_rule = _StreamRule(events, True, times)

    def break_stream_after(self, events: int, *, times: int | None = None) -> None:
        with self._lock:
            self._stream_rule = _StreamRule(events, False, times)

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self._stream_rule = None

    def _take_stream_rule(self) -> _StreamRule | None:
        with self._lock:
            rule = self._stream_rule
            if rule is not None and rule.times is not None:
                rule.times -= 1
                if rule.times <= 0:
                    self._stream_rule = None
            return rule

    # -- routes --------------------------------------------------------------------------------

    async def list_models(self, request: Request) -> JSONResponse:
        rejected = self.check_headers(request)
        if rejected is not None:
            return rejected
        limit = int(request.query_params.get("limit", "20"))
        if not 1 <= limit <= 1000:
            return anthropic_error(400, "invalid_request_error", "limit: out of range")
        limit = min(limit, self.max_page_size)
        ids = [m.id for m in self.models]
        after = request.query_params.get("after_id")
        start = ids.index(after) + 1 if after in ids else 0
        page = self.models[start : start + limit]
        return JSONResponse(
            {
                "data": [self._entry(m) for m in page],
                "has_more": start + limit < len(ids),
                "first_id": page[0].id if page else None,
                "last_id": page[-1].id if page else None,
            }
        )

    def _entry(self, model: FakeModel) -> dict[str, Any]:
        name = model.id.replace("-", " ").title()
        entry = {"type": "model", "id": model.id, "display_name": name, "created_at": CREATED_AT}
        return {**entry, **model.extra}

    async def messages(self, request: Request) -> Response:
        rejected = self.check_headers(request)
        if rejected is not None:
            return rejected
        return await self.answer_messages(request)

    async def answer_messages(self, request: Request) -> Response:
        """The Messages answer to ``request`` (its headers already checked)."""
        try:
            payload = json.loads(await request.body())
        except ValueError:
            return anthropic_error(400, "invalid_request_error", "invalid JSON body")
        problem = _invalid(payload)
        if problem is not None:
            return anthropic_error(400, "invalid_request_error", problem)
        message = self.answer(payload)
        headers = {"request-id": f"req_{message.id[4:]}"}
        if payload.get("stream") is not True:
            return JSONResponse(message.body(), headers=headers)
        events = message.events(self.chunk_count)
        rule = self._take_stream_rule()
        if rule is not None and rule.error_event:
            error = {
                "type": "error",
                "error": {"type": "overloaded_error", "message": "Overloaded"},
            }
            events = [*events[: rule.after], _event("error", error)]
            rule = None
        return PacedEvents(
            self,
            events,
            headers=headers,
            delay=self.chunk_delay,
            break_after=None if rule is None else rule.after,
        )

    def answer(self, payload: dict[str, Any]) -> Message:
        digest = request_digest(payload)
        text = last_user_text(payload)
        tool = _chosen_tool(payload)
        words = f"echo: {text}".split()
        stop = "end_turn"
        blocks: list[dict[str, Any]] = []
        if tool is not None:
            if self.tool_preamble is not None:
                blocks.append({"type": "text", "text": self.tool_preamble})
            call = {"type": "tool_use", "id": f"toolu_{digest[:24]}", "name": tool}
            blocks.append({**call, "input": {"echo": text}})
            output, stop = max(len(text.split()), 1), "tool_use"
        else:
            if len(words) > payload["max_tokens"]:
                words, stop = words[: payload["max_tokens"]], "max_tokens"
            blocks.append({"type": "text", "text": " ".join(words)})
            output = len(words)
        return Message(
            id=f"msg_01{digest[:22]}",
            model=str(payload["model"]),
            blocks=blocks,
            stop_reason=stop,
            input_tokens=_input_tokens(payload),
            output_tokens=output,
            cached_tokens=self.cached_tokens,
        )


def _invalid(payload: Any) -> str | None:
    """Anthropic's 400 message for a request the real API refuses, or None."""
    if not isinstance(payload, dict):
        return "body: Input should be an object"
    if not isinstance(payload.get("model"), str):
        return "model: Field required"
    max_tokens = payload.get("max_tokens")
    if not isinstance(max_tokens, int) or max_tokens < 1:
        return "max_tokens: Field required"
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    if any(m.get("role") == "system" for m in messages if isinstance(m, dict)):
        return 'messages: Unexpected role "system". Use the top-level `system` parameter.'
    return None


def _system_text(payload: dict[str, Any]) -> str:
    system = payload.get("system")
    if isinstance(system, str):
        return system
    return message_text({"content": system}) if isinstance(system, list) else ""


def _input_tokens(payload: dict[str, Any]) -> int:
    messages = [m for m in payload["messages"] if isinstance(m, dict)]
    words = sum(3 + len(message_text(m).split()) for m in messages)
    return words + len(_system_text(payload).split())


def _chosen_tool(payload: dict[str, Any]) -> str | None:
    tools = payload.get("tools")
    choice = payload.get("tool_choice") or {}
    if not isinstance(tools, list) or not tools or choice.get("type") == "none":
        return None
    if choice.get("type") == "tool" and isinstance(choice.get("name"), str):
        return str(choice["name"])
    return str(tools[0].get("name", "tool"))
