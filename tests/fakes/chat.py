"""OpenAI-compatible inference for the fakes: ``POST /v1/chat/completions``, ``/v1/embeddings``.

:class:`OpenAICompatibleFake` is the base of :class:`~tests.fakes.openai.FakeOpenAI` and
:class:`~tests.fakes.ollama.FakeOllama` (Nexus talks to Ollama through its ``/v1`` API too).

Answers are deterministic: the same request (same JSON, whatever its formatting) gives the same
bytes, so a test can send a request to the fake directly and compare the bytes with what came
through the gateway. They are also deliberately *not* canonical JSON (odd key order and spacing,
a ``\\u00e9`` and a ``\\/`` escape, floats with trailing zeros, unknown vendor fields at the top
level, in the choice and in every SSE chunk), so any re-serialisation shows up in a byte comparison.

- chat, JSON: ``content`` is ``"echo: <text of the last user message>"``; ``usage.prompt_tokens``
  is :func:`count_prompt_tokens`, ``completion_tokens`` the number of words of the answer.
- ``tools`` (non-empty, ``tool_choice`` not ``"none"``): a ``tool_calls`` message calling the
  chosen (else the first) function with ``{"echo": "<text>"}``; ``finish_reason: "tool_calls"``.
- chat, SSE (``"stream": true``): a role chunk, ``chunk_count`` content (or tool-call argument)
  chunks, a finish chunk, a usage chunk (``choices: []``) when ``stream_options.include_usage``,
  then ``data: [DONE]``. The deltas concatenate to the JSON answer's content. Pacing:
  ``first_chunk_delay`` after the headers, ``chunk_delay`` between events; both end early when the
  fake stops. ``fake.open_streams`` counts the SSE bodies being sent right now.
- embeddings (``honours_base64`` False: floats even to ``encoding_format: "base64"``):
  ``embedding_dim`` floats per input from a hash of it (string, list of strings, token
  list or list of token lists); ``encoding_format: "base64"`` (the openai client's default) gives
  little-endian float32 in base64.
- ``api_key`` set: every route needs ``Authorization: Bearer <api_key>`` (OpenAI's 401 otherwise).
  ``strict_models``: unknown models (not in ``fake.models``) get the provider's 404.
  ``extra_headers`` are added to every chat/embeddings answer (e.g. ``{"x-request-id": "req_1"}``).

Failures, on top of the generic ``respond``/``hang``/``delay``/``close_connection``; the path is the
chat path unless given (``path=None`` = every path, health probes included), ``times`` None =
until :meth:`~tests.fakes.server.FakeUpstream.reset`::

    fake.break_stream_after(2)   # streaming chat: 2 SSE events, then the socket closes (no [DONE],
                                 # no final empty chunk: httpx raises RemoteProtocolError)
    fake.malformed_json()        # 200, application/json, a truncated JSON body
    fake.empty_close()           # no response at all (httpx: RemoteProtocolError)
    fake.rate_limit(retry_after=7)   # 429, Retry-After: 7, OpenAI's rate_limit_exceeded body
    fake.server_error()          # 500, OpenAI's server_error body (status=502... also accepted)
    fake.unauthorized()          # 401, OpenAI's invalid_api_key body
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from tests.fakes.dialects import dialect_routes
from tests.fakes.server import FakeModel, FakeUpstream

CHAT_PATH = "/v1/chat/completions"
EMBEDDINGS_PATH = "/v1/embeddings"

#: What :meth:`OpenAICompatibleFake.malformed_json` answers by default: valid HTTP, broken JSON.
MALFORMED_BODY = b'{"id": "chatcmpl-broken", "object": "chat.completion", "choices": [{"index": 0, '
SSE_DONE = b"data: [DONE]\n\n"


def openai_error(
    message: str, type_: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """OpenAI's error envelope."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def message_text(message: Mapping[str, Any]) -> str:
    """The text of a chat message: its string content, or its text parts joined by a space."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def last_user_text(request: Mapping[str, Any]) -> str:
    users = [m for m in request.get("messages") or [] if isinstance(m, dict)]
    users = [m for m in users if m.get("role") == "user"]
    return message_text(users[-1]) if users else ""


def count_prompt_tokens(request: Mapping[str, Any]) -> int:
    """The fake's ``usage.prompt_tokens``: 3 per message plus the words of its text."""
    messages = [m for m in request.get("messages") or [] if isinstance(m, dict)]
    return sum(3 + len(message_text(m).split()) for m in messages)


def request_digest(payload: Any) -> str:
    """A hash of the request's JSON value (not its bytes: formatting does not matter)."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def split_text(text: str, parts: int) -> list[str]:
    """``text`` in ``parts`` slices of near-equal length (some empty when text is short)."""
    parts = max(parts, 1)
    size, extra = divmod(len(text), parts)
    out, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        out.append(text[start:end])
        start = end
    return out


def _j(value: Any) -> str:
    """json.dumps with the default (spaced) separators and ASCII escapes."""
    return json.dumps(value)


def _c(value: Any) -> str:
    """Compact json.dumps, ASCII escapes."""
    return json.dumps(value, separators=(",", ":"))


@dataclass
class _Answer:
    """What the fake answers to one chat request; rendered as JSON or as SSE events."""

    id: str
    model: str
    content: str | None
    tool_call: dict[str, Any] | None  # {"id", "type", "function": {"name", "arguments"}}
    prompt_tokens: int
    completion_tokens: int

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.tool_call is not None else "stop"

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def message(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_call is not None:
            message["tool_calls"] = [self.tool_call]
        message["refusal"] = None
        return message


@dataclass
class _Break:
    after: int
    times: int | None


class _BrokenStream(Response):
    """An SSE answer that sends ``events`` and then drops the connection mid-body."""

    media_type = "text/event-stream"

    def __init__(
        self, fake: OpenAICompatibleFake, events: list[bytes], headers: Mapping[str, str]
    ) -> None:
        self.fake = fake
        self.events = events
        self.status_code = 200
        self.background = None
        self.init_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        self.fake.open_streams += 1
        try:
            for i, event in enumerate(self.events):
                await self.fake.sleep(self.fake.chunk_delay if i else self.fake.first_chunk_delay)
                await send({"type": "http.response.body", "body": event, "more_body": True})
        finally:
            self.fake.open_streams -= 1
        await self.fake.drop_connection(scope, receive)


class OpenAICompatibleFake(FakeUpstream):
    """``/v1/chat/completions`` and ``/v1/embeddings``; subclasses add
    :meth:`inference_routes` to their :meth:`routes`. Knobs: see the module docstring."""

    api_key: str | None = None
    strict_models = False
    chunk_count = 4
    chunk_delay = 0.0
    first_chunk_delay = 0.0
    created = 1_717_171_717
    system_fingerprint: str | None = "fp_fake0001"
    embedding_dim = 8
    honours_base64 = True  # False: floats whatever encoding_format says (as Ollama answers)

    def __init__(self, models: Iterable[FakeModel | str] = ()) -> None:
        super().__init__(models)
        self.extra_headers: dict[str, str] = {}
        #: APIs this server has (tests.fakes.dialects); the others answer 404.
        self.serves = {"chat", "embeddings", "completions", "messages", "responses"}
        self.open_streams = 0
        self._break: _Break | None = None

    def inference_routes(self) -> list[BaseRoute]:
        return [
            Route(CHAT_PATH, self.chat_completions, methods=["POST"]),
            Route(EMBEDDINGS_PATH, self.embeddings, methods=["POST"]),
            *dialect_routes(self),
        ]

    def routes(self) -> list[BaseRoute]:
        return self.inference_routes()

    # -- programmed failures -------------------------------------------------------------------

    def break_stream_after(self, events: int, *, times: int | None = None) -> None:
        """Streaming chat requests send ``events`` SSE events (role chunk first), then the
        connection closes without ``[DONE]`` nor the chunked body's end. Non-streaming requests
        are not affected (and do not count against ``times``)."""
        with self._lock:
            self._break = _Break(events, times)

    def malformed_json(
        self,
        body: bytes = MALFORMED_BODY,
        *,
        path: str | None = CHAT_PATH,
        times: int | None = None,
    ) -> None:
        """Answer 200 ``application/json`` with a body that is not JSON (truncated by default)."""
        self.respond(body=body, path=path, times=times)

    def empty_close(self, *, path: str | None = CHAT_PATH, times: int | None = None) -> None:
        """Close the connection without any response."""
        self.close_connection(path=path, times=times)

    def rate_limit(
        self,
        retry_after: int | float | str | None = 1,
        *,
        path: str | None = CHAT_PATH,
        times: int | None = None,
    ) -> None:
        """429 with ``Retry-After`` (omitted when None) and OpenAI's rate-limit body."""
        headers = {"x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "0"}
        if retry_after is not None:
            headers["retry-after"] = str(retry_after)
            headers["x-ratelimit-reset-requests"] = f"{retry_after}s"
        error = openai_error(
            "Rate limit reached for requests per min (RPM): Limit 60, Used 60, Requested 1. "
            f"Please try again in {retry_after or 1}s.",
            "requests",
            "rate_limit_exceeded",
        )
        self.respond(429, json_body=error, headers=headers, path=path, times=times)

    def server_error(
        self,
        status: int = 500,
        *,
        path: str | None = CHAT_PATH,
        times: int | None = None,
        retry_after: int | None = None,
    ) -> None:
        """``status`` (500 by default) with OpenAI's server_error body (and ``Retry-After``)."""
        error = openai_error(
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
        )
        headers = {} if retry_after is None else {"retry-after": str(retry_after)}
        self.respond(status, json_body=error, headers=headers, path=path, times=times)

    def unauthorized(self, *, path: str | None = CHAT_PATH, times: int | None = None) -> None:
        """401 with OpenAI's invalid_api_key body, whatever the request carries."""
        error = openai_error(
            "Incorrect API key provided: sk-fake***. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            "invalid_api_key",
        )
        self.respond(401, json_body=error, path=path, times=times)

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self._break = None

    def _take_break(self) -> int | None:
        with self._lock:
            rule = self._break
            if rule is None:
                return None
            if rule.times is not None:
                rule.times -= 1
                if rule.times <= 0:
                    self._break = None
            return rule.after

    # -- auth and errors -----------------------------------------------------------------------

    def check_key(self, request: Request) -> JSONResponse | None:
        """OpenAI's 401 when ``api_key`` is set and the request does not carry it."""
        if self.api_key is None:
            return None
        sent = request.headers.get("authorization", "")
        if sent == f"Bearer {self.api_key}":
            return None
        shown = sent.removeprefix("Bearer ")
        # OpenAI echoes (part of) the key it got
        error = openai_error(
            f"Incorrect API key provided: {shown}.", "invalid_request_error", "invalid_api_key"
        )
        return JSONResponse(error, status_code=401)

    def unknown_model(self, model: str) -> JSONResponse:
        """The 404 for a model the server does not have (``strict_models``)."""
        error = openai_error(
            f"The model `{model}` does not exist or you do not have access to it.",
            "invalid_request_error",
            "model_not_found",
        )
        return JSONResponse(error, status_code=404)

    def bad_request(self, message: str, param: str | None = None) -> JSONResponse:
        return JSONResponse(openai_error(message, "invalid_request_error", None, param), 400)

    async def payload(self, request: Request) -> dict[str, Any] | JSONResponse:
        """The request's JSON object, or the error to answer."""
        rejected = self.check_key(request)
        if rejected is not None:
            return rejected
        try:
            payload = json.loads(await request.body())
        except ValueError:
            return self.bad_request(
                "We could not parse the JSON body of your request. (HINT: This likely means you "
                "aren't using your HTTP library correctly.)"
            )
        if not isinstance(payload, dict):
            return self.bad_request("The request body must be a JSON object.")
        model = payload.get("model")
        if not isinstance(model, str) or not model:
            return self.bad_request("you must provide a model parameter", "model")
        if self.strict_models and self.model(model) is None:
            return self.unknown_model(model)
        return payload

    def _headers(self, **more: str) -> dict[str, str]:
        return {**more, **self.extra_headers}

    # -- chat ----------------------------------------------------------------------------------

    async def chat_completions(self, request: Request) -> Response:
        payload = await self.payload(request)
        if isinstance(payload, Response):
            return payload
        messages = payload.get("messages")
        if not isinstance(messages, list) or not messages:
            return self.bad_request("'messages' must be a non-empty array", "messages")
        answer = self.answer(payload)
        if not payload.get("stream"):
            return Response(
                self.render_completion(answer),
                media_type="application/json",
                headers=self._headers(),
            )
        options = payload.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        events = self.render_stream(answer, include_usage)
        headers = self._headers(**{"cache-control": "no-cache"})
        broken_after = self._take_break()
        if broken_after is not None:
            return _BrokenStream(self, events[:broken_after], headers)
        return StreamingResponse(self.pace(events), media_type="text/event-stream", headers=headers)

    def answer(self, request: Mapping[str, Any]) -> _Answer:
        digest = request_digest(request)
        text = last_user_text(request)
        tool = self._chosen_tool(request)
        tool_call = None
        content: str | None = f"echo: {text}"
        if tool is not None:
            arguments = _j({"echo": text})
            tool_call = {
                "id": f"call_{digest[24:48]}",
                "type": "function",
                "function": {"name": tool, "arguments": arguments},
            }
            content = None
        said = content if content is not None else text
        return _Answer(
            id=f"chatcmpl-{digest[:24]}",
            model=str(request["model"]),
            content=content,
            tool_call=tool_call,
            prompt_tokens=count_prompt_tokens(request),
            completion_tokens=max(len(said.split()), 1),
        )

    @staticmethod
    def _chosen_tool(request: Mapping[str, Any]) -> str | None:
        tools = request.get("tools")
        choice = request.get("tool_choice")
        if not isinstance(tools, list) or not tools or choice == "none":
            return None
        if isinstance(choice, dict):
            name = (choice.get("function") or {}).get("name")
            if isinstance(name, str):
                return name
        first = tools[0] if isinstance(tools[0], dict) else {}
        name = (first.get("function") or {}).get("name")
        return name if isinstance(name, str) else "tool"

    def render_completion(self, answer: _Answer) -> bytes:
        """The JSON answer, formatted the odd way (see the module docstring)."""
        usage = (
            f'{{"prompt_tokens": {answer.prompt_tokens}, '
            f'"completion_tokens": {answer.completion_tokens}, '
            f'"total_tokens": {answer.total_tokens}, '
            '"prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0}}'
        )
        text = (
            "{\n"
            f'  "id": {_j(answer.id)},\n'
            '  "object":"chat.completion",\n'
            f'  "created": {self.created},\n'
            f'  "model": {_j(answer.model)},\n'
            '  "choices": [\n'
            "    {\n"
            '      "index": 0,\n'
            f'      "message": {_j(answer.message())},\n'
            '      "logprobs": null,\n'
            f'      "finish_reason":  {_j(answer.finish_reason)},\n'
            '      "x_fake_choice": {"seq": 0, "note": "caf\\u00e9"}\n'
            "    }\n"
            "  ],\n"
            f'  "usage": {usage},\n'
            f'  "system_fingerprint": {_j(self.system_fingerprint)},\n'
            '  "x_fake_vendor": "caf\\u00e9 \\/ 1.0"\n'
            "}\n"
        )
        return text.encode()

    def render_stream(self, answer: _Answer, include_usage: bool) -> list[bytes]:
        """Every SSE event of the streamed answer, ``[DONE]`` last."""
        head = (
            f'{{"id":{_c(answer.id)},"object":"chat.completion.chunk","created":{self.created},'
            f'"model":{_c(answer.model)},"system_fingerprint":{_c(self.system_fingerprint)},'
        )
        seq = 0

        def event(choices: str, usage: str = "null") -> bytes:
            nonlocal seq
            tail = f',"usage":{usage}' if include_usage else ""
            vendor = f', "x_fake_seq":{seq},"x_fake_note":"caf\\u00e9"'
            data = f'{head}"choices":{choices}{tail}{vendor}}}'
            seq += 1
            return b"data: " + data.encode() + b"\n\n"

        def choice(delta: Mapping[str, Any], finish: str | None = None) -> str:
            tail = f'"logprobs":null,"finish_reason":{_c(finish)}'
            return f'[{{"index":0,"delta":{_c(delta)},{tail}}}]'

        content = "" if answer.tool_call is None else None
        events = [event(choice({"role": "assistant", "content": content, "refusal": None}))]
        if answer.tool_call is not None:
            call = answer.tool_call
            pieces = split_text(call["function"]["arguments"], self.chunk_count)
            for i, piece in enumerate(pieces):
                function = {"name": call["function"]["name"], "arguments": piece}
                delta: dict[str, Any] = (
                    {"index": 0, "id": call["id"], "type": "function", "function": function}
                    if i == 0
                    else {"index": 0, "function": {"arguments": piece}}
                )
                events.append(event(choice({"tool_calls": [delta]})))
        else:
            for piece in split_text(answer.content or "", self.chunk_count):
                events.append(event(choice({"content": piece})))
        events.append(event(choice({}, answer.finish_reason)))
        if include_usage:
            usage = _c(
                {
                    "prompt_tokens": answer.prompt_tokens,
                    "completion_tokens": answer.completion_tokens,
                    "total_tokens": answer.total_tokens,
                }
            )
            events.append(event("[]", usage))
        events.append(SSE_DONE)
        return events

    async def pace(self, events: list[bytes]) -> AsyncIterator[bytes]:
        self.open_streams += 1
        try:
            for i, data in enumerate(events):
                await self.sleep(self.chunk_delay if i else self.first_chunk_delay)
                yield data
        finally:
            self.open_streams -= 1

    # -- embeddings ----------------------------------------------------------------------------

    async def embeddings(self, request: Request) -> Response:
        payload = await self.payload(request)
        if isinstance(payload, Response):
            return payload
        items = _embedding_inputs(payload.get("input"))
        if items is None:
            return self.bad_request("'input' must be a string or an array", "input")
        as_base64 = self.honours_base64 and payload.get("encoding_format") == "base64"
        entries = []
        tokens = 0
        for index, item in enumerate(items):
            values = self.vector(item)
            tokens += len(item.split()) if isinstance(item, str) else len(item)
            if as_base64:
                packed = struct.pack(f"<{len(values)}f", *(float(v) for v in values))
                vector = _j(base64.b64encode(packed).decode())
            else:
                vector = "[" + ", ".join(values) + "]"
            entries.append(f'{{"object":"embedding", "index": {index}, "embedding": {vector}}}')
        text = (
            '{"object": "list",\n'
            ' "data": [' + ",\n   ".join(entries) + "],\n"
            f' "model": {_j(payload["model"])},\n'
            f' "usage": {{"prompt_tokens": {tokens}, "total_tokens": {tokens}}},\n'
            ' "x_fake_vendor": "caf\\u00e9"}\n'
        )
        return Response(text.encode(), media_type="application/json", headers=self._headers())

    def vector(self, item: str | list[int]) -> list[str]:
        """The embedding of one input, as JSON number texts (8 decimals, trailing zeros kept)."""
        seed = request_digest(item).encode()
        raw = b""
        counter = 0
        while len(raw) < 4 * self.embedding_dim:
            raw += hashlib.sha256(seed + str(counter).encode()).digest()
            counter += 1
        values = []
        for i in range(self.embedding_dim):
            unit = int.from_bytes(raw[4 * i : 4 * i + 4], "big") / 2**32
            values.append(f"{round(unit * 2 - 1, 2):.8f}")
        return values


def _embedding_inputs(value: Any) -> list[str | list[int]] | None:
    """The inputs of an embeddings request, one per vector; None when ``value`` is invalid."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not value:
        return None
    if all(isinstance(v, int) for v in value):
        return [value]
    if all(isinstance(v, str) for v in value):
        return list(value)
    if all(isinstance(v, list) and all(isinstance(t, int) for t in v) for v in value):
        return list(value)
    return None
