"""Tokens are counted offline: tiktoken reads LiteLLM's bundled files and never the network."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import tiktoken.registry

from nexus import tokens


@pytest.fixture
def fresh_encodings(monkeypatch: pytest.MonkeyPatch):
    """Forget every loaded encoding so the next use loads from files again."""
    tokens.encoding.cache_clear()
    monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR", raising=False)
    yield
    tokens.encoding.cache_clear()


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Record and refuse every attempt to resolve a name or open a connection."""
    attempts: list[object] = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


@pytest.mark.usefixtures("fresh_encodings")
def test_counting_loads_bundled_encodings_without_any_connection(no_network) -> None:
    for model in ("gpt-4o", "gpt-4", "gpt-3.5-turbo", "o1-mini", "gpt-4.1-nano"):
        count = tokens.count_texts(["Hello, offline world!"], model)
        assert count.exact and count.tokens > 0
    assert no_network == []
    assert {"o200k_base", "cl100k_base"} <= set(tiktoken.registry.ENCODINGS)  # loaded just now
    assert os.environ["TIKTOKEN_CACHE_DIR"] == str(tokens.bundled_encodings_dir())


def test_bundled_folder_holds_both_encodings() -> None:
    folder = tokens.bundled_encodings_dir()
    assert folder is not None and folder.parts[-3:] == (
        "litellm",
        "litellm_core_utils",
        "tokenizers",
    )
    assert tokens.cache_file(folder, "cl100k_base").is_file()
    assert tokens.cache_file(folder, "o200k_base").is_file()


def test_finding_the_folder_does_not_import_litellm(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.delitem(sys.modules, "litellm", raising=False)
    tokens.bundled_encodings_dir()
    assert "litellm" not in sys.modules


@pytest.mark.usefixtures("fresh_encodings")
def test_missing_files_fall_back_to_the_estimate(monkeypatch, tmp_path: Path, no_network) -> None:
    monkeypatch.setattr(tokens, "bundled_encodings_dir", lambda: tmp_path)
    count = tokens.count_texts(["abcdefghi"], "gpt-4o")
    assert count == tokens.TokenCount(3, exact=False)
    assert no_network == []


@pytest.mark.usefixtures("fresh_encodings")
def test_no_litellm_falls_back_to_the_estimate(monkeypatch, no_network) -> None:
    monkeypatch.setattr(tokens, "bundled_encodings_dir", lambda: None)
    assert tokens.count_texts(["abcd"], "gpt-4o") == tokens.TokenCount(1, exact=False)


@pytest.mark.usefixtures("fresh_encodings")
def test_a_damaged_file_is_neither_used_nor_deleted(
    monkeypatch, tmp_path: Path, no_network
) -> None:
    damaged = tokens.cache_file(tmp_path, "o200k_base")
    damaged.write_bytes(b"not an encoding")
    monkeypatch.setattr(tokens, "bundled_encodings_dir", lambda: tmp_path)
    assert tokens.encoding("o200k_base") is None
    assert damaged.read_bytes() == b"not an encoding"
    assert no_network == []


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini-2024-07-18", "o200k_base"),
        ("openai/gpt-4o", "o200k_base"),
        ("o1-preview", "o200k_base"),
        ("gpt-4.1", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"),
        ("llama3", None),
        ("claude-3-5-sonnet", None),
    ],
)
def test_encoding_by_model_family(model, encoding) -> None:
    assert tokens.encoding_name_for(model) == encoding


def test_estimate_is_a_quarter_of_the_characters_rounded_up() -> None:
    assert [tokens.estimate("x" * n) for n in (0, 1, 4, 5)] == [0, 1, 1, 2]
