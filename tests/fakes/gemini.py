"""Fake Gemini API: ``GET /v1beta/models`` (``pageSize``/``pageToken`` pagination) and
``POST /v1beta/models/{model}:generateContent`` / ``:streamGenerateContent?alt=sse`` /
``:batchEmbedContents`` (``embedding_dim`` values per text, from a hash of it), with
``x-goog-api-key`` checked and Google's own error bodies (a wrong key is a 400
``API_KEY_INVALID``, a missing one a 403, as the real service does), as the Gemini API reference
describes them.

generateContent answers are deterministic:

- text: ``"echo: <text of the last user turn>"``, ``finishReason: "STOP"``; cut to
  ``generationConfig.maxOutputTokens`` words with ``"MAX_TOKENS"`` when longer;
- ``tools`` with ``functionDeclarations`` (and ``toolConfig`` mode not ``NONE``): one
  ``functionCall`` part calling the allowed (else the first) function with ``{"echo": text}``;
- ``usageMetadata``: ``promptTokenCount`` 3 per turn plus the words of the turns and the system
  instruction, ``candidatesTokenCount`` the words; ``responseId`` a hash of the request,
  ``modelVersion`` the model plus ``-002``. Request fields are read in camelCase or snake_case,
  as Google's JSON mapping accepts both.
- stream (``alt=sse``): ``chunk_count`` ``data: {GenerateContentResponse}`` events separated by
  ``\\r\\n\\r\\n``; the last carries ``finishReason`` and the full ``usageMetadata``.

Failures (``times`` None = until ``reset()``)::

    fake.rate_limit()              # 429 RESOURCE_EXHAUSTED (RetryInfo in the body, no header)
    fake.server_error()            # 500 INTERNAL
    fake.overloaded()              # 503 UNAVAILABLE "The model is overloaded."
    fake.break_stream_after(1)     # stream: 1 event, then the connection drops
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tests.fakes.chat import request_digest, split_text
from tests.fakes.server import FakeModel, FakeUpstream
from tests.fakes.sse import PacedEvents

SAFETY = [
    {"category": f"HARM_CATEGORY_{name}", "probability": "NEGLIGIBLE"}
    for name in ("SEXUALLY_EXPLICIT", "HATE_SPEECH", "HARASSMENT", "DANGEROUS_CONTENT")
]


def google_error(
    status: int,
    state: str,
    message: str,
    reason: str | None = None,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    error: dict[str, Any] = {"code": status, "message": message, "status": state}
    if reason is not None:
        error["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": reason,
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            }
        ]
    if details is not None:
        error["details"] = details
    return JSONResponse({"error": error}, status_code=status, headers=headers)


def _field(mapping: Any, camel: str, snake: str) -> Any:
    if not isinstance(mapping, dict):
        return None
    return mapping.get(camel, mapping.get(snake))


def _parts_text(content: Any) -> str:
    parts = _field(content, "parts", "parts") or []
    return " ".join(str(p["text"]) for p in parts if isinstance(p, dict) and "text" in p)


class FakeGemini(FakeUpstream):
    """Gemini. ``max_page_size`` caps ``pageSize`` (1000, as the real API; 50 when not sent)."""

    api_key = "AIza-test-key"
    max_page_size = 1000
    chunk_count = 3
    chunk_delay = 0.0
    cached_tokens = 0
    embedding_dim = 8

    def __init__(self, models: Any = ()) -> None:
        super().__init__(models)
        self._break: tuple[int, int | None] | None = None
        self._failure: tuple[int, dict[str, Any], int | None] | None = None

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/v1beta/models", self.list_models, methods=["GET"]),
            Route("/v1beta/models/{target}", self.generate, methods=["POST"]),
        ]

    def check_key(self, request: Request) -> JSONResponse | None:
        sent = request.headers.get("x-goog-api-key") or request.query_params.get("key")
        if sent is None:
            message = "Method doesn't allow unregistered callers."
            return google_error(403, "PERMISSION_DENIED", message)
        if sent != self.api_key:
            message = "API key not valid. Please pass a valid API key."
            return google_error(400, "INVALID_ARGUMENT", message, reason="API_KEY_INVALID")
        return None

    # -- programmed failures -------------------------------------------------------------------

    def rate_limit(self, retry_delay: str = "7s", *, times: int | None = None) -> None:
        details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay}]
        error = {
            "code": 429,
            "message": "Resource has been exhausted (e.g. check quota).",
            "status": "RESOURCE_EXHAUSTED",
            "details": details,
        }
        self._fail(429, error, times)

    def server_error(self, *, times: int | None = None) -> None:
        error = {"code": 500, "message": "An internal error has occurred.", "status": "INTERNAL"}
        self._fail(500, error, times)

    def overloaded(self, *, times: int | None = None) -> None:
        error = {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}
        self._fail(503, error, times)

    def break_stream_after(self, events: int, *, times: int | None = None) -> None:
        with self._lock:
            self._break = (events, times)

    def _fail(self, status: int, error: dict[str, Any], times: int | None) -> None:
        """Answer generate requests (not the listing) with ``status`` and ``error``."""
        with self._lock:
            self._failure = (status, error, times)

    def _take_failure(self) -> JSONResponse | None:
        with self._lock:
            if self._failure is None:
                return None
            status, error, times = self._failure
            if times is not None:
                self._failure = (status, error, times - 1) if times > 1 else None
        return JSONResponse({"error": error}, status_code=status)

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self._break = None
            self._failure = None

    def _take_break(self) -> int | None:
        with self._lock:
            if self._break is None:
                return None
            after, times = self._break
            if times is not None:
                self._break = (after, times - 1) if times > 1 else None
            return after

    # -- routes --------------------------------------------------------------------------------

    async def list_models(self, request: Request) -> JSONResponse:
        rejected = self.check_key(request)
        if rejected is not None:
            return rejected
        size = min(int(request.query_params.get("pageSize", "50")), self.max_page_size)
        start = int(request.query_params.get("pageToken") or 0)
        page = self.models[start : start + size]
        body: dict[str, Any] = {"models": [self._entry(m) for m in page]}
        if start + size < len(self.models):
            body["nextPageToken"] = str(start + size)
        return JSONResponse(body)

    def _entry(self, model: FakeModel) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "name": f"models/{model.id}",
            "version": "001",
            "displayName": model.id.replace("-", " ").title(),
            "description": f"Fake {model.id}",
            "outputTokenLimit": 8192,
            "supportedGenerationMethods": list(model.methods),
            "temperature": 1,
            "topP": 0.95,
            "topK": 40,
        }
        if model.context_length is not None:
            entry["inputTokenLimit"] = model.context_length
        return {**entry, **model.extra}

    async def generate(self, request: Request) -> Response:
        model, _, method = request.path_params["target"].partition(":")
        if method not in ("generateContent", "streamGenerateContent", "batchEmbedContents"):
            return google_error(404, "NOT_FOUND", f"Method {method!r} not found.")
        rejected = self.check_key(request) or self._take_failure()
        if rejected is not None:
            return rejected
        try:
            payload = json.loads(await request.body())
        except ValueError:
            return google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        if method == "batchEmbedContents":
            return self.embed(payload)
        contents = payload.get("contents") if isinstance(payload, dict) else None
        if not isinstance(contents, list) or not contents:
            return google_error(400, "INVALID_ARGUMENT", "* contents: must not be empty")
        answer = self.answer(model, payload)
        if method == "generateContent":
            return JSONResponse(answer)
        if request.query_params.get("alt") != "sse":
            return JSONResponse([answer])  # without alt=sse the API streams one JSON array
        return PacedEvents(
            self,
            self.stream_events(answer),
            delay=self.chunk_delay,
            break_after=self._take_break(),
        )

    def embed(self, payload: Any) -> JSONResponse:
        """``batchEmbedContents``: ``embedding_dim`` values per request, from a hash of its text."""
        requests = payload.get("requests") if isinstance(payload, dict) else None
        if not isinstance(requests, list) or not requests:
            return google_error(400, "INVALID_ARGUMENT", "* requests: must not be empty")
        embeddings = []
        for request in requests:
            seed = request_digest(_parts_text(request.get("content")))
            values = [round(int(seed[i : i + 4], 16) / 0xFFFF * 2 - 1, 4) for i in range(0, 32, 4)]
            embeddings.append({"values": values[: self.embedding_dim]})
        return JSONResponse({"embeddings": embeddings})

    def answer(self, model: str, payload: dict[str, Any]) -> dict[str, Any]:
        """The whole GenerateContentResponse for ``payload``."""
        turns = [c for c in payload["contents"] if isinstance(c, dict)]
        users = [c for c in turns if c.get("role", "user") == "user"]
        text = _parts_text(users[-1]) if users else ""
        config = _field(payload, "generationConfig", "generation_config") or {}
        limit = _field(config, "maxOutputTokens", "max_output_tokens")
        function = _chosen_function(payload)
        finish = "STOP"
        if function is not None:
            parts: list[dict[str, Any]] = [
                {"functionCall": {"name": function, "args": {"echo": text}}}
            ]
            output = max(len(text.split()), 1)
        else:
            words = f"echo: {text}".split()
            if isinstance(limit, int) and len(words) > limit:
                words, finish = words[:limit], "MAX_TOKENS"
            parts, output = [{"text": " ".join(words)}], len(words)
        system = _parts_text(_field(payload, "systemInstruction", "system_instruction"))
        prompt = sum(3 + len(_parts_text(c).split()) for c in turns) + len(system.split())
        usage: dict[str, Any] = {
            "promptTokenCount": prompt,
            "candidatesTokenCount": output,
            "totalTokenCount": prompt + output,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
        }
        if self.cached_tokens:
            usage["cachedContentTokenCount"] = self.cached_tokens
        candidate = {
            "content": {"parts": parts, "role": "model"},
            "finishReason": finish,
            "index": 0,
            "safetyRatings": SAFETY,
        }
        return {
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": f"{model}-002",
            "responseId": request_digest(payload)[:22],
        }

    def stream_events(self, answer: dict[str, Any]) -> list[bytes]:
        """The answer as ``alt=sse`` events: text split in ``chunk_count`` pieces (a function
        call comes whole), the finish reason and the full usage on the last one."""
        candidate = answer["candidates"][0]
        part = candidate["content"]["parts"][0]
        pieces = split_text(part["text"], self.chunk_count) if "text" in part else [None]
        usage = answer["usageMetadata"]
        events = []
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            chunk_part = part if piece is None else {"text": piece}
            chunk_candidate: dict[str, Any] = {
                "content": {"parts": [chunk_part], "role": "model"},
                "index": 0,
            }
            chunk_usage = {"promptTokenCount": usage["promptTokenCount"]}
            if last:
                chunk_candidate["finishReason"] = candidate["finishReason"]
                chunk_candidate["safetyRatings"] = SAFETY
                chunk_usage = usage
            chunk = {
                "candidates": [chunk_candidate],
                "usageMetadata": chunk_usage,
                "modelVersion": answer["modelVersion"],
                "responseId": answer["responseId"],
            }
            events.append(b"data: " + json.dumps(chunk).encode() + b"\r\n\r\n")
        return events


def _chosen_function(payload: dict[str, Any]) -> str | None:
    names = [
        str(declaration["name"])
        for tool in payload.get("tools") or []
        for declaration in _field(tool, "functionDeclarations", "function_declarations") or []
    ]
    tool_config = _field(payload, "toolConfig", "tool_config") or {}
    calling = _field(tool_config, "functionCallingConfig", "function_calling_config") or {}
    if not names or calling.get("mode") == "NONE":
        return None
    allowed = _field(calling, "allowedFunctionNames", "allowed_function_names") or []
    return str(allowed[0]) if allowed else names[0]
