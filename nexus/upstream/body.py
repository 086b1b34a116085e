"""Byte-exact request bodies: replace the top-level ``model`` value and nothing else.

Forwarding must keep every other byte the client sent (key order, whitespace, escapes, unknown
fields), so the body is not re-serialised: a small scanner finds the span of each top-level
``"model"`` string value and splices the new name in. The input has already been parsed by orjson,
so it is valid JSON.
"""

from __future__ import annotations

import orjson

_WHITESPACE = b" \t\r\n"


def rewrite_model(raw: bytes, model: str) -> bytes:
    """``raw`` with every top-level ``"model"`` string value replaced by ``model``."""
    spans = list(_model_value_spans(raw))
    if not spans:
        return raw
    replacement = orjson.dumps(model)
    parts: list[bytes] = []
    position = 0
    for start, end in spans:
        parts += [raw[position:start], replacement]
        position = end
    parts.append(raw[position:])
    return b"".join(parts)


def _model_value_spans(raw: bytes) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    i = _skip_ws(raw, 0)
    if i >= len(raw) or raw[i] != ord("{"):
        return spans
    i = _skip_ws(raw, i + 1)
    while i < len(raw) and raw[i] != ord("}"):
        key_end = _string_end(raw, i)
        key = raw[i:key_end]
        i = _skip_ws(raw, key_end)
        i = _skip_ws(raw, i + 1)  # the colon
        value_end = _value_end(raw, i)
        if raw[i] == ord('"') and orjson.loads(key) == "model":
            spans.append((i, value_end))
        i = _skip_ws(raw, value_end)
        if i < len(raw) and raw[i] == ord(","):
            i = _skip_ws(raw, i + 1)
    return spans


def _skip_ws(raw: bytes, i: int) -> int:
    while i < len(raw) and raw[i] in _WHITESPACE:
        i += 1
    return i


def _string_end(raw: bytes, i: int) -> int:
    """Index just past the string that starts at ``raw[i] == '"'``."""
    i += 1
    while raw[i] != ord('"'):
        i += 2 if raw[i] == ord("\\") else 1
    return i + 1


def _value_end(raw: bytes, i: int) -> int:
    """Index just past the JSON value that starts at ``i``."""
    if raw[i] == ord('"'):
        return _string_end(raw, i)
    if raw[i] in b"{[":
        depth = 0
        while True:
            byte = raw[i]
            if byte == ord('"'):
                i = _string_end(raw, i)
                continue
            if byte in b"{[":
                depth += 1
            elif byte in b"}]":
                depth -= 1
                if depth == 0:
                    return i + 1
            i += 1
    while i < len(raw) and raw[i] not in b",}] \t\r\n":
        i += 1
    return i
