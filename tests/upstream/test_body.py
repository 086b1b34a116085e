"""rewrite_model changes the model value and not one other byte."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from nexus.upstream.body import rewrite_model


def test_only_the_model_value_changes() -> None:
    raw = (
        b'{ "messages" : [{"role":"user","content":"say \\"model\\": x"}],\n'
        b'  "model":"fast" ,"n":2}'
    )
    assert rewrite_model(raw, "llama3.2:3b") == (
        b'{ "messages" : [{"role":"user","content":"say \\"model\\": x"}],\n'
        b'  "model":"llama3.2:3b" ,"n":2}'
    )


def test_nested_model_keys_are_left_alone() -> None:
    raw = b'{"metadata":{"model":"keep"},"tools":[{"model":"keep"}],"model":"a"}'
    out = orjson.loads(rewrite_model(raw, "b"))
    assert out == {"metadata": {"model": "keep"}, "tools": [{"model": "keep"}], "model": "b"}


def test_escaped_key_and_unicode_names() -> None:
    raw = b'{"mod\\u0065l":"a","x":"\\u00e9"}'
    assert rewrite_model(raw, "qwen/\u00e9") == b'{"mod\\u0065l":"qwen/\xc3\xa9","x":"\\u00e9"}'


def test_without_model_the_body_is_unchanged() -> None:
    assert rewrite_model(b'{"input":"x"}', "m") == b'{"input":"x"}'
    assert rewrite_model(b"[1,2]", "m") == b"[1,2]"


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(
    body=st.dictionaries(st.text(), json_values, max_size=6),
    model=st.text(),
    new=st.text(),
    indent=st.booleans(),
)
def test_any_body_round_trips(body: dict[str, object], model: str, new: str, indent: bool) -> None:
    body = {**body, "model": model}
    raw = orjson.dumps(body, option=orjson.OPT_INDENT_2 if indent else 0)
    assert orjson.loads(rewrite_model(raw, new)) == {**body, "model": new}
    assert rewrite_model(raw, model) == raw
