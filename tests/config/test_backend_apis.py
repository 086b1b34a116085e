"""Which client APIs a backend speaks natively (``apis``): defaults per type, an override,
and one clear line for a value that cannot work."""

from __future__ import annotations

import pytest

from nexus.config import load_config
from nexus.config.kinds import Api, kind_of
from nexus.errors import ConfigError

CHAT, EMB, COMP, MSG, RESP = (
    Api.CHAT,
    Api.EMBEDDINGS,
    Api.COMPLETIONS,
    Api.MESSAGES,
    Api.RESPONSES,
)


@pytest.mark.parametrize(
    ("type_name", "apis"),
    [
        ("ollama", {CHAT, EMB, COMP, MSG, RESP}),
        ("vllm", {CHAT, EMB, COMP, RESP}),
        ("llamacpp", {CHAT, EMB, COMP, MSG}),
        ("lmstudio", {CHAT, EMB, COMP, RESP}),
        ("exo", {CHAT}),
        ("generic", {CHAT, EMB}),
        ("openai", {CHAT, EMB, COMP, RESP}),
        ("anthropic", {MSG}),
        ("google", set()),
        ("mistral", set()),
    ],
)
def test_default_apis_by_type(type_name: str, apis: set[Api]) -> None:
    kind = kind_of(type_name)
    assert kind is not None
    assert kind.apis == frozenset(apis)


def backend(type_name: str, extra: str = "") -> str:
    key = 'api_key_env = "K"\n' if type_name in ("anthropic", "google") else ""
    return (
        f'[[backends]]\nname = "b"\nurl = "http://127.0.0.1:9"\ntype = "{type_name}"\n{key}{extra}'
    )


def test_default_is_the_type_table(write_config) -> None:
    config = load_config(write_config(backend("llamacpp")))
    assert config.backends[0].native_apis == frozenset({CHAT, EMB, COMP, MSG})


def test_override_replaces_the_default(write_config) -> None:
    config = load_config(write_config(backend("vllm", 'apis = ["chat", "messages"]\n')))
    assert config.backends[0].native_apis == frozenset({CHAT, MSG})


def problems(path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return list(caught.value.problems)


def test_an_unknown_api_names_the_allowed_ones(write_config) -> None:
    (line,) = problems(write_config(backend("ollama", 'apis = ["chat", "assistants"]\n')))
    assert "backends[0].apis" in line
    assert "'assistants'" in line
    assert "chat, embeddings, completions, messages, responses" in line


def test_an_openai_compatible_backend_must_keep_chat(write_config) -> None:
    (line,) = problems(write_config(backend("generic", 'apis = ["messages"]\n')))
    assert "backends[0].apis" in line and "'chat'" in line


def test_a_translated_provider_speaks_only_its_own_api_natively(write_config) -> None:
    (line,) = problems(write_config(backend("anthropic", 'apis = ["messages", "responses"]\n')))
    assert "backends[0].apis" in line and "responses" in line and "anthropic" in line
    assert (
        load_config(write_config(backend("anthropic", "apis = []\n"))).backends[0].native_apis
        == frozenset()
    )
