"""OpenAI's format rendered from Nexus's values: the field set, key order and stream rules."""

from __future__ import annotations

import base64
import json
import struct

from nexus.upstream.openai_wire import (
    Choice,
    Completion,
    Embeddings,
    StreamState,
    ToolCall,
    Usage,
    completion_json,
    embeddings_json,
)


def test_completion_has_openais_fields_in_openais_order() -> None:
    call = ToolCall(index=1, id="toolu_1", name="f", arguments='{"a": 1}')
    completion = Completion(
        id="chatcmpl-1",
        created=1,
        model="claude",
        choices=(Choice(0, "assistant", "hi", (call,), "tool_calls"),),
        usage=Usage(10, 2, cached_tokens=3),
    )
    body = json.loads(completion_json(completion))
    assert list(body) == ["id", "object", "created", "model", "choices", "usage"]
    assert body["choices"][0] == {
        "index": 0,
        "message": {
            "role": "assistant",
            "content": "hi",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "f", "arguments": '{"a": 1}'},
                }
            ],
            "refusal": None,
        },
        "logprobs": None,
        "finish_reason": "tool_calls",
    }
    assert body["usage"] == {
        "prompt_tokens": 10,
        "completion_tokens": 2,
        "total_tokens": 12,
        "prompt_tokens_details": {"cached_tokens": 3},
    }


def chunk(choices: tuple[Choice, ...], usage: Usage | None = None, cid: str = "c") -> Completion:
    return Completion(
        id=cid, created=100 if cid == "c" else 200, model="m", choices=choices, usage=usage
    )


def test_stream_keeps_one_id_renumbers_tool_calls_and_puts_usage_last() -> None:
    state = StreamState(include_usage=True)
    first = state.event(chunk((Choice(0, "assistant", "Hi"),)))
    call = state.event(chunk((Choice(0, tool_calls=(ToolCall(3, "t", "f", ""),)),), cid="other"))
    finish = state.event(chunk((Choice(0, finish_reason="tool_calls"),)))
    usage = state.event(chunk((), Usage(5, 1)))
    events = [json.loads(e.removeprefix(b"data: ")) for e in (first, call, finish, usage) if e]

    assert {e["id"] for e in events} == {"c"} and {e["created"] for e in events} == {100}
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": "Hi"}
    assert events[1]["choices"][0]["delta"]["tool_calls"] == [
        {"index": 0, "id": "t", "type": "function", "function": {"name": "f", "arguments": ""}}
    ]
    assert events[2]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "tool_calls",
    }
    assert [e["usage"] for e in events[:3]] == [None, None, None]
    assert events[3]["choices"] == [] and events[3]["usage"]["total_tokens"] == 6


def test_without_include_usage_there_is_no_usage_key_and_no_usage_chunk() -> None:
    state = StreamState(include_usage=False)
    event = state.event(chunk((Choice(0, "assistant", "Hi"),)))
    assert event is not None and b'"usage"' not in event
    assert state.event(chunk((), Usage(5, 1))) is None


def test_embeddings_as_floats_or_base64() -> None:
    embeddings = Embeddings("e", ((0.5, -1.0), (0.25, 0.0)), prompt_tokens=3)
    floats = json.loads(embeddings_json(embeddings, base64_floats=False))
    assert floats["data"][1] == {"object": "embedding", "index": 1, "embedding": [0.25, 0.0]}
    assert floats["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    packed = json.loads(embeddings_json(embeddings, base64_floats=True))["data"][0]["embedding"]
    assert struct.unpack("<2f", base64.b64decode(packed)) == (0.5, -1.0)
