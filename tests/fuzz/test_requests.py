"""Hypothesis over the request bodies and headers of ``/v1/chat/completions`` and
``/v1/embeddings``, sent as raw ASGI (:mod:`tests.fuzz.raw_asgi`) to the real app with a local and
a cloud fake backend: huge, deeply nested, wrong types, non-UTF-8 bytes, NaN/Infinity literals,
duplicate keys, enormous ``n``/``max_tokens``, CR/LF/NUL in model names and header values.

For every input: never a 5xx but the contract's 503; errors in the OpenAI envelope with the
``X-Nexus-*`` headers; no response header the attacker named, no header value with CR, LF or NUL,
the request id only when it is a plain token; a 200 is the backend's answer.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nexus.app import create_app
from nexus.config import NexusConfig
from tests.fakes.openai import FakeOpenAI
from tests.fuzz.counts import COUNTS
from tests.fuzz.counts import EXAMPLES as FUZZ_EXAMPLES
from tests.fuzz.raw_asgi import RawResponse, Running, running

CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"
MAX_BODY = 65536
CLOUD_KEY = "sk-fuzz-cloud-key-0123456789"
ALLOWED_HEADERS = {
    b"content-type",
    b"content-length",
    b"x-nexus-backend",
    b"x-nexus-backend-type",
    b"x-nexus-route-reason",
    b"x-nexus-privacy-zone",
    b"x-nexus-cost-estimated",
    b"x-nexus-fallback-model",
    b"x-request-id",
    b"retry-after",
}
REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
COST = re.compile(rb"^\d+\.\d{4}$")
EXAMPLES = settings(
    max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck)
)


@pytest.fixture(scope="module")
def gateway() -> Iterator[Running]:
    with FakeOpenAI(["m"]) as local, FakeOpenAI(["gpt-4o"]) as cloud:
        cloud.api_key = CLOUD_KEY
        config = NexusConfig.model_validate(
            {
                "discovery": {"enabled": False},
                "health_check": {"interval_seconds": 60},
                "server": {"max_body_bytes": MAX_BODY},
                "routing": {"fallbacks": {"gone": ["m"]}, "aliases": {"alias": "m"}},
                "backends": [
                    {"name": "gpu", "url": local.url, "type": "vllm"},
                    {"name": "cloud", "url": cloud.url, "type": "openai", "api_key_env": "K"},
                ],
            }
        )
        app = create_app(config, environ={"K": CLOUD_KEY})
        with running(app) as gw:
            deadline = time.monotonic() + 5
            while {b.status.value for b in app.gateway.registry.snapshot().backends} != {"healthy"}:
                assert time.monotonic() < deadline, "the fakes were not probed healthy"
                time.sleep(0.01)
            yield gw


def check(response: RawResponse, sent_request_id: bytes | None = None) -> None:
    """What holds for every answer of the inference endpoints."""
    try:
        _check(response, sent_request_id)
    except (AssertionError, ValueError) as exc:
        raise AssertionError(f"{exc!r}: {response}") from None


def first(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """The first value of ``name``, as the app reads it."""
    return next((value for key, value in headers if key == name), None)


def _check(response: RawResponse, sent_request_id: bytes | None) -> None:
    assert response.status < 500 or response.status == 503, (response.status, response.body)
    names = {name.lower() for name, _ in response.headers}
    assert names <= ALLOWED_HEADERS, names - ALLOWED_HEADERS
    for name, value in response.headers:
        assert not re.search(rb"[\r\n\x00]", name + value), (name, value)
    for name in (b"x-nexus-backend", b"x-nexus-route-reason", b"x-request-id"):
        assert response.header(name) is not None, name
    rid = response.header(b"x-request-id") or b""
    assert REQUEST_ID.match(rid), rid
    if sent_request_id is not None and sent_request_id != rid:
        assert not REQUEST_ID.match(sent_request_id), "a plain-token request id is kept"
    cost = response.header(b"x-nexus-cost-estimated")
    assert cost is None or COST.match(cost), cost
    if response.status >= 400:
        document = json.loads(response.body)
        assert set(document["error"]) == {"message", "type", "param", "code"}, document
        assert CLOUD_KEY not in response.body.decode("utf-8", "replace")
    elif (response.header(b"content-type") or b"").startswith(b"text/event-stream"):
        assert response.body.endswith(b"data: [DONE]\n\n")
    else:
        document = json.loads(response.body)
        assert "choices" in document or "data" in document


# -- strategies -------------------------------------------------------------------------------

nasty_text = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"]) | st.sampled_from('\r\n\x00\\"{}[]'),
    max_size=40,
)
models = st.sampled_from(["m", "gpt-4o", "alias", "gone", "m\r\nX-Evil: 1", ""]) | nasty_text
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | nasty_text
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(nasty_text, inner, max_size=4),
    max_leaves=20,
)
big_ints = st.integers(-(2**64), 2**64) | st.sampled_from([0, -1, 2**63 - 1, 2**31, 10**18])
messages = (
    st.lists(
        st.fixed_dictionaries(
            {"role": st.sampled_from(["user", "system", "assistant", "tool"]) | nasty_text},
            optional={"content": nasty_text | json_values, "name": nasty_text},
        ),
        max_size=3,
    )
    | json_values
)
chat_bodies = st.fixed_dictionaries(
    {"model": models | json_values, "messages": messages},
    optional={
        "stream": st.booleans() | json_values,
        "n": big_ints | json_values,
        "max_tokens": big_ints | json_values,
        "max_completion_tokens": big_ints,
        "tools": json_values,
        "response_format": json_values,
        "stream_options": json_values,
    },
)
embedding_bodies = st.fixed_dictionaries(
    {"model": models | json_values, "input": json_values},
    optional={"encoding_format": json_values, "dimensions": big_ints},
)


def encode(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")


@st.composite
def raw_bodies(draw: st.DrawFn, bodies: st.SearchStrategy[Any]) -> bytes:
    """A body as JSON bytes, or a mangled variant of one."""
    raw = encode(draw(bodies))
    how = draw(
        st.sampled_from(
            ["as-is", "as-is", "nan", "duplicate", "non-utf8", "nested", "huge", "cut", "bytes"]
        )
    )
    if how == "nan":
        return raw.replace(
            b"{",
            b'{"temperature": '
            + draw(st.sampled_from([b"NaN", b"Infinity", b"-Infinity"]))
            + b", ",
            1,
        )
    if how == "duplicate":
        return raw.replace(b"{", b'{"model": "gpt-4o", ', 1)
    if how == "non-utf8":
        return raw.replace(b'"', b'"\xff\xfe', 1)
    if how == "nested":  # (under "tools": test_deeply_nested_tools_are_a_400_not_a_500)
        depth = draw(st.integers(100, 20000))
        return raw.replace(b"{", b'{"deep": ' + b"[" * depth + b"]" * depth + b", ", 1)
    if how == "huge":
        return raw.replace(
            b"{",
            b'{"pad": "' + b"x" * draw(st.integers(MAX_BODY - 200, MAX_BODY + 500)) + b'", ',
            1,
        )
    if how == "cut":
        return raw[: draw(st.integers(0, max(len(raw) - 1, 0)))]
    if how == "bytes":
        return draw(st.binary(max_size=200))
    return raw


header_names = st.sampled_from(
    [
        b"x-request-id",
        b"x-nexus-privacy-zone",
        b"x-nexus-strict",
        b"x-nexus-flexible",
        b"authorization",
        b"content-type",
        b"x-evil",  # (content-length: test_a_non_ascii_content_length_is_a_400_not_a_500)
    ]
)
header_values = st.binary(max_size=60) | st.sampled_from(
    [b"restricted", b"true", b"RESTRICTED ", b"abc\r\nX-Evil: 1", b"ok-id_1.2:3", b"\x00", b"99999"]
)
headers = st.lists(st.tuples(header_names, header_values), max_size=5)


# -- the tests --------------------------------------------------------------------------------


@given(body=raw_bodies(chat_bodies), extra=headers)
@EXAMPLES
def test_chat_completions_survive_any_body(gateway: Running, body: bytes, extra: Any) -> None:
    COUNTS["chat bodies"] += 1
    response = gateway.call("POST", CHAT, [(b"content-type", b"application/json"), *extra], body)
    check(response, first(extra, b"x-request-id"))
    if len(body) > MAX_BODY:
        assert response.status == 413


@given(body=raw_bodies(embedding_bodies), extra=headers)
@EXAMPLES
def test_embeddings_survive_any_body(gateway: Running, body: bytes, extra: Any) -> None:
    COUNTS["embeddings bodies"] += 1
    response = gateway.call(
        "POST", EMBEDDINGS, [(b"content-type", b"application/json"), *extra], body
    )
    check(response, first(extra, b"x-request-id"))


@given(extra=headers, stream=st.booleans(), model=st.sampled_from(["m", "gpt-4o", "gone"]))
@EXAMPLES
def test_headers_never_reflect_into_the_response(
    gateway: Running, extra: Any, stream: bool, model: str
) -> None:
    """A valid body, hostile headers: nothing the client sent becomes a header but a plain
    request id, and a restricted request never reaches the cloud backend."""
    COUNTS["header sets"] += 1
    body = encode(
        {"model": model, "stream": stream, "messages": [{"role": "user", "content": "x"}]}
    )
    response = gateway.call("POST", CHAT, extra, body)
    check(response, first(extra, b"x-request-id"))
    privacy = [v for k, v in extra if k == b"x-nexus-privacy-zone"]
    if privacy and privacy[-1].strip().lower() == b"restricted":
        assert response.header(b"x-nexus-backend") != b"cloud"


@pytest.mark.parametrize("key", ["tools", "functions"])
def test_deeply_nested_tools_are_a_400_not_a_500(gateway: Running, key: str) -> None:
    depth = 1000
    body = b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "%s": %s%s}' % (
        key.encode(),
        b"[" * depth,
        b"]" * depth,
    )
    try:
        response = gateway.call("POST", CHAT, [(b"content-type", b"application/json")], body)
    except RecursionError:  # what the ASGI server sees: the app raised after its 500
        pytest.fail("the app raised RecursionError")
    check(response)


def test_a_non_ascii_content_length_is_a_400_not_a_500(gateway: Running) -> None:
    body = encode({"model": "m", "messages": [{"role": "user", "content": "x"}]})
    try:
        response = gateway.call("POST", CHAT, [(b"content-length", b"\xb9")], body)
    except ValueError:  # what the ASGI server sees: the app raised after its 500
        pytest.fail("the app raised ValueError")
    check(response)
