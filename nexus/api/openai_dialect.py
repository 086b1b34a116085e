"""OpenAI's dialect (chat completions, legacy completions and embeddings): the request checks,
the answer passed on byte for byte, errors in the ``{"error": {message, type, param, code}}``
envelope, and a stream that breaks after it started ended by one ``data: {"error": ...}`` event."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from nexus.errors import InvalidRequest, error_body
from nexus.gateway import Answer, AnswerStream, Failed, Outcome
from nexus.routing import RequestKind

JSON = "application/json"


class OpenAIDialect:
    """Parser and renderer for ``/v1/chat/completions``, ``/v1/completions``,
    ``/v1/embeddings`` and (with :class:`ResponsesDialect`) ``/v1/responses``."""

    @staticmethod
    def error_event(failed: Failed) -> bytes:
        return error_event(failed)

    def parse(self, raw: bytes, kind: RequestKind) -> dict[str, Any]:
        body = parse_object(raw)
        if kind is RequestKind.CHAT:
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                raise InvalidRequest("'messages' must be a non-empty array", param="messages")
        elif kind is RequestKind.COMPLETIONS:
            if not isinstance(body.get("prompt"), str | list):
                raise InvalidRequest("'prompt' must be a string or an array", param="prompt")
        elif kind is RequestKind.RESPONSES:
            _check_responses(body)
        elif not isinstance(body.get("input"), str | list):
            raise InvalidRequest("'input' must be a string or an array", param="input")
        if "stream" in body and not isinstance(body["stream"], bool):
            raise InvalidRequest("'stream' must be true or false", param="stream")
        return body

    def render(self, outcome: Outcome) -> Response:
        if isinstance(outcome, Failed):
            return error_response(outcome)
        if outcome.stream is not None:
            return StreamedAnswer(outcome, outcome.stream, self.error_event)
        headers = outcome.headers.as_dict()
        return Response(outcome.body, outcome.status, headers, media_type=outcome.content_type)


class ResponsesDialect(OpenAIDialect):
    """The Responses API: OpenAI's envelope, and its own ``error`` event ending a broken
    stream."""

    @staticmethod
    def error_event(failed: Failed) -> bytes:
        error = {"type": "error", "code": failed.code, "message": failed.message, "param": None}
        return b"event: error\ndata: " + orjson.dumps(error) + b"\n\n"


OPENAI = OpenAIDialect()
RESPONSES = ResponsesDialect()


def _check_responses(body: dict[str, Any]) -> None:
    if not isinstance(body.get("input"), str | list):
        raise InvalidRequest("'input' must be a string or an array", param="input")
    if body.get("previous_response_id") is not None:
        raise InvalidRequest(
            "previous_response_id cannot be honoured: Nexus may route a follow-up to another "
            "backend than the one that stored the response; send the input in full "
            "(and store: false)",
            param="previous_response_id",
        )


def parse_object(raw: bytes) -> dict[str, Any]:
    """``raw`` as a JSON object with a non-empty string ``model`` (every dialect's first check)."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc.msg}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    if not isinstance(body.get("model"), str) or not body["model"]:
        message = "you must provide a model parameter (a non-empty string)"
        raise InvalidRequest(message, param="model")
    return body


def error_response(failed: Failed) -> Response:
    """``failed`` as an OpenAI error response (or the backend's own error body, passed on)."""
    headers = failed.headers.as_dict()
    if failed.retry_after is not None:
        headers["retry-after"] = str(failed.retry_after)
    if failed.upstream_body is not None:
        media_type = failed.upstream_content_type or JSON
        return Response(failed.upstream_body, failed.status, headers, media_type=media_type)
    body = error_body(
        failed.message,
        error_type=failed.error_type,
        code=failed.code,
        param=failed.param,
        context=failed.context,
    )
    return Response(body, failed.status, headers, media_type=JSON)


def error_event(failed: Failed) -> bytes:
    """The last event of a stream that broke after it started."""
    body = error_body(failed.message, error_type=failed.error_type, code=failed.code)
    return b"data: " + body + b"\n\n"


class StreamedAnswer(StreamingResponse):
    """A backend's stream passed on; the stream is closed (upstream, lease, report) on every
    path, even when the client leaves before the first chunk is sent."""

    def __init__(
        self,
        answer: Answer,
        stream: AnswerStream,
        error_event: Callable[[Failed], bytes] = error_event,
    ) -> None:
        self._stream = stream
        self._error_event = error_event
        super().__init__(
            self._chunks(),
            status_code=answer.status,
            headers=answer.headers.as_dict(),
            media_type=answer.content_type,
        )

    async def _chunks(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk
        if self._stream.failure is not None:
            yield self._error_event(self._stream.failure)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the chunks as they come; a client that leaves cancels the sending (and so the
        upstream request). One watcher task, where Starlette's own loop runs an anyio task
        group per stream (uvicorn speaks ASGI 2.3): measured ~5 % of a stream's CPU."""
        this = asyncio.current_task()
        assert this is not None
        state = {"sending": True, "left": False}

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            if state["sending"]:
                state["left"] = True
                this.cancel()

        watcher = asyncio.get_running_loop().create_task(watch())
        try:
            status, headers = self.status_code, self.raw_headers
            await send({"type": "http.response.start", "status": status, "headers": headers})
            async for chunk in self._chunks():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not state["left"]:
                raise
            this.uncancel()
        finally:
            state["sending"] = False
            watcher.cancel()
            await self._stream.aclose()
