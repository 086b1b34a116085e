"""What a client received from the gateway, and whether it is one of the answers the contract
allows: a complete response, a well-formed OpenAI error, or a stream that ends with ``[DONE]`` or
with exactly one final ``data: {"error": ...}`` event. Anything else (a truncated stream, a bare
5xx, a hang) fails the test that asked.

``TALLY`` counts the requests judged here and the fault cases run (read by ``conftest.py``'s
terminal summary).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"
DONE = b"data: [DONE]"
ENVELOPE_KEYS = {"message", "type", "param", "code"}
NEXUS_HEADERS = ("x-nexus-backend", "x-nexus-backend-type", "x-nexus-route-reason", "x-request-id")

COMPLETE = "complete"
ERROR = "error"
ERROR_EVENT = "error-event"


@dataclass
class Tally:
    requests: Counter[str] = field(default_factory=Counter)
    cases: Counter[str] = field(default_factory=Counter)
    failed_cases: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


TALLY = Tally()


@dataclass(frozen=True)
class Answer:
    """One response as the client saw it, and how long it took to the last byte."""

    status: int
    headers: httpx.Headers
    body: bytes
    elapsed: float
    stream: bool

    @property
    def backend(self) -> str:
        return str(self.headers.get("x-nexus-backend", "?"))

    @property
    def reason(self) -> str:
        return str(self.headers.get("x-nexus-route-reason", "?"))

    def events(self) -> list[bytes]:
        return [event for event in self.body.split(b"\n\n") if event.strip()]

    def text(self) -> str:
        """The answer's content: the JSON message, or the stream's deltas joined."""
        if not self.stream:
            return str(json.loads(self.body)["choices"][0]["message"]["content"])
        out = []
        for event in self.events():
            if event == DONE or not event.startswith(b"data: "):
                continue
            data = json.loads(event.removeprefix(b"data: "))
            for choice in data.get("choices", []):
                out.append(choice.get("delta", {}).get("content") or "")
        return "".join(out)


def chat_body(model: str, text: str = "hello", *, stream: bool = False) -> dict[str, Any]:
    return {"model": model, "stream": stream, "messages": [{"role": "user", "content": text}]}


def send(client: httpx.Client, path: str, body: dict[str, Any], *, timeout: float = 10) -> Answer:
    """POST ``body`` and read the whole answer (a stream to its end)."""
    started = time.monotonic()
    stream = bool(body.get("stream"))
    with client.stream("POST", path, json=body, timeout=timeout) as response:
        raw = b"".join(response.iter_raw())
    return Answer(response.status_code, response.headers, raw, time.monotonic() - started, stream)


def chat(client: httpx.Client, model: str, text: str = "hello", *, stream: bool = False) -> Answer:
    return send(client, CHAT, chat_body(model, text, stream=stream))


def verdict(answer: Answer) -> str:
    """``complete``, ``error`` or ``error-event``; AssertionError for anything else."""
    TALLY.requests["tried"] += 1
    for name in NEXUS_HEADERS:
        assert name in answer.headers, f"{name} missing: {dict(answer.headers)}"
    if answer.status >= 400:
        result = _error(answer)
    elif answer.stream and answer.headers.get("content-type", "").startswith("text/event-stream"):
        result = _stream(answer)
    else:
        assert answer.status == 200, answer.status
        document = json.loads(answer.body)
        assert "choices" in document or "data" in document, document
        result = COMPLETE
    TALLY.requests["survived"] += 1
    TALLY.requests[result] += 1
    return result


def _error(answer: Answer) -> str:
    document = json.loads(answer.body)
    assert set(document["error"]) == ENVELOPE_KEYS, document
    assert isinstance(document["error"]["message"], str) and document["error"]["message"]
    if answer.status == 503 and "context" in document:  # Nexus's own 503 (an upstream's 503
        # passed through has neither: see test_faults.py::test_an_upstream_503_carries_retry_after)
        assert int(answer.headers["retry-after"]) >= 0
        assert set(document["context"]) == {
            "required_tier",
            "available_backends",
            "eta_seconds",
            "privacy_zone_required",
        }
    return ERROR


def _stream(answer: Answer) -> str:
    """A stream ends with ``[DONE]`` (and has no error event), or with one error event."""
    events = answer.events()
    assert events, "a 200 stream with no event at all"
    assert answer.body.endswith(b"\n\n"), f"the last event is unfinished: {answer.body[-80:]!r}"
    errors = [e for e in events if e.startswith(b'data: {"error"')]
    if events[-1] == DONE:
        assert not errors, "an error event before [DONE]"
        return COMPLETE
    assert errors == [events[-1]], f"truncated: ends with {events[-1][:120]!r}"
    error = json.loads(events[-1].removeprefix(b"data: "))["error"]
    assert set(error) == ENVELOPE_KEYS
    assert DONE not in events
    return ERROR_EVENT
