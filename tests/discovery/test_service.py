"""backend_from_service: one resolved mDNS service -> one BackendConfig (or None)."""

from __future__ import annotations

import socket

import pytest
from zeroconf import ServiceInfo

from nexus.config.kinds import Zone
from nexus.discovery import backend_from_service

OLLAMA = "_ollama._tcp.local."
LLM = "_llm._tcp.local."


def info(
    service_type: str = OLLAMA,
    instance: str = "Studio Mac",
    *,
    addresses: list[str] | None = None,
    port: int | None = 11434,
    properties: dict[str, str] | None = None,
    server: str | None = "studio.local.",
) -> ServiceInfo:
    return ServiceInfo(
        service_type,
        f"{instance}.{service_type}",
        port=port,
        parsed_addresses=["192.168.1.20"] if addresses is None else addresses,
        properties=properties or {},
        server=server,
    )


def test_ollama_service_becomes_a_local_ollama_backend() -> None:
    backend = backend_from_service(OLLAMA, info())
    assert backend is not None
    assert (backend.name, backend.url, backend.type) == (
        "Studio Mac",
        "http://192.168.1.20:11434",
        "ollama",
    )
    assert backend.zone is Zone.RESTRICTED
    assert backend.tier == 1


def test_other_service_types_are_generic() -> None:
    backend = backend_from_service(LLM, info(LLM, port=8000))
    assert backend is not None
    assert backend.type == "generic"
    assert backend.url == "http://192.168.1.20:8000"


@pytest.mark.parametrize(
    ("txt", "expected"),
    [
        ("ollama", "ollama"),
        ("vLLM", "vllm"),
        ("llamacpp", "llamacpp"),
        ("llama.cpp", "llamacpp"),
        ("lmstudio", "lmstudio"),
        ("exo", "exo"),
        ("generic", "generic"),
        ("openai", "generic"),  # a cloud type would need a key; a local server is generic
        ("something-else", "generic"),
    ],
)
def test_txt_type_wins_over_the_service_type(txt: str, expected: str) -> None:
    backend = backend_from_service(OLLAMA, info(properties={"type": txt}))
    assert backend is not None
    assert backend.type == expected


def test_ipv4_is_preferred_over_ipv6() -> None:
    backend = backend_from_service(OLLAMA, info(addresses=["fd00::5", "10.0.0.7"]))
    assert backend is not None
    assert backend.url == "http://10.0.0.7:11434"


def test_ipv6_only_is_bracketed() -> None:
    backend = backend_from_service(LLM, info(LLM, addresses=["fd00::5"], port=8000))
    assert backend is not None
    assert backend.url == "http://[fd00::5]:8000"


def test_global_ipv6_is_preferred_over_link_local() -> None:
    backend = backend_from_service(LLM, info(LLM, addresses=["fe80::1", "fd00::5"], port=8000))
    assert backend is not None
    assert backend.url == "http://[fd00::5]:8000"


@pytest.mark.parametrize(
    ("api_path", "suffix"),
    [
        ("/v1", ""),
        ("/v1/", ""),
        ("/V1", ""),
        ("v1", ""),
        ("/openai/v1", "/openai"),
        ("/api", "/api"),
        ("", ""),
        ("/", ""),
    ],
)
def test_api_path_is_appended_without_a_version(api_path: str, suffix: str) -> None:
    backend = backend_from_service(LLM, info(LLM, port=8000, properties={"api_path": api_path}))
    assert backend is not None
    assert backend.url == "http://192.168.1.20:8000" + suffix
    assert "/v1" not in backend.url


@pytest.mark.parametrize(
    ("instance", "name"),
    [
        ("Studio Mac", "Studio Mac"),
        ("studio_mac", "studio mac"),
        ("Lab.GPU box", "Lab.GPU box"),
        ("Café box", "Cafe box"),
        ("-=[ Studio ]=-", "Studio"),
        ("gpu (rack 3)", "gpu -rack 3"),
        ("x" * 63, "x" * 63),
    ],
)
def test_name_is_the_sanitised_instance_label(instance: str, name: str) -> None:
    backend = backend_from_service(OLLAMA, info(instance=instance))
    assert backend is not None
    assert backend.name == name


def test_name_falls_back_to_the_host_when_nothing_usable_is_left() -> None:
    backend = backend_from_service(OLLAMA, info(instance="☕☕"))
    assert backend is not None
    assert backend.name == "studio.local"
    backend = backend_from_service(OLLAMA, info(instance="☕", server=None))
    assert backend is not None
    assert backend.name == "192.168.1.20:11434"


def test_long_names_are_cut_to_64_characters() -> None:
    server = "a" * 60 + "." + "b" * 60 + ".local."
    backend = backend_from_service(OLLAMA, info(instance="☕", server=server))
    assert backend is not None
    assert backend.name == "a" * 60 + ".bbb"


def test_no_address_gives_none() -> None:
    assert backend_from_service(OLLAMA, info(addresses=[])) is None


@pytest.mark.parametrize("port", [None, 0])
def test_no_port_gives_none(port: int | None) -> None:
    assert backend_from_service(OLLAMA, info(port=port)) is None


def test_real_packed_addresses_work_too() -> None:
    packed = ServiceInfo(
        OLLAMA,
        f"Box.{OLLAMA}",
        port=11434,
        addresses=[socket.inet_pton(socket.AF_INET6, "fd00::9")],
    )
    backend = backend_from_service(OLLAMA, packed)
    assert backend is not None
    assert backend.url == "http://[fd00::9]:11434"
