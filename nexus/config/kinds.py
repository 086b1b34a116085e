"""Every backend type Nexus knows: where it runs, its default privacy zone, how requests reach it
and how its health is probed.

Local types speak OpenAI's wire format (Ollama through its ``/v1`` endpoints) and are served by the
byte relay. ``openai`` is cloud but relayed too. ``anthropic``, ``google`` and every other provider
id LiteLLM knows are cloud and translated through LiteLLM.

Each type also speaks a set of client APIs natively (:attr:`BackendKind.apis`, the table in
``docs/configuration.md``): a request in one of them is relayed byte for byte; any other is
translated by LiteLLM onto the backend's chat completions (or its provider's API).
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import orjson


class Location(StrEnum):
    LOCAL = "local"
    CLOUD = "cloud"


class Zone(StrEnum):
    RESTRICTED = "restricted"
    OPEN = "open"


class Priority(StrEnum):
    """A request's place in the queue (``X-Nexus-Priority``, ``[[clients]] priority``)."""

    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"

    @property
    def rank(self) -> int:
        """0 is served first."""
        return _PRIORITY_RANKS[self]


_PRIORITY_RANKS = {Priority.HIGH: 0, Priority.NORMAL: 1, Priority.LOW: 2}


class Transport(StrEnum):
    RELAY = "relay"
    TRANSLATED = "translated"


class Api(StrEnum):
    """The client APIs Nexus serves (``[[backends]] apis`` values)."""

    CHAT = "chat"  # /v1/chat/completions
    EMBEDDINGS = "embeddings"  # /v1/embeddings
    COMPLETIONS = "completions"  # /v1/completions (legacy, fill-in-the-middle)
    MESSAGES = "messages"  # /v1/messages (Anthropic)
    RESPONSES = "responses"  # /v1/responses (OpenAI)


ALL_APIS = frozenset(Api)


class ProbeStyle(StrEnum):
    OLLAMA = "ollama"  # GET /api/tags (+ POST /api/show)
    OPENAI = "openai"  # GET /v1/models
    ANTHROPIC = "anthropic"  # GET /v1/models with x-api-key
    GOOGLE = "google"  # GET /v1beta/models with x-goog-api-key
    STATIC = "static"  # the configured model list; healthy when the key is present


@dataclass(frozen=True, slots=True)
class BackendKind:
    """What a ``[[backends]] type`` means. Cloud kinds need ``api_key_env``. ``apis`` are the
    client APIs it speaks natively by default; ``may_speak`` those an ``apis`` override may list
    (an OpenAI-compatible server may speak any; a translated provider only its own)."""

    name: str
    location: Location
    transport: Transport
    probe: ProbeStyle
    apis: frozenset[Api] = frozenset()

    @property
    def may_speak(self) -> frozenset[Api]:
        if self.transport is Transport.RELAY:
            return ALL_APIS
        return _PROVIDER_APIS.get(self.name, NONE)

    @property
    def is_cloud(self) -> bool:
        return self.location is Location.CLOUD

    @property
    def default_zone(self) -> Zone:
        return Zone.OPEN if self.is_cloud else Zone.RESTRICTED


NONE: frozenset[Api] = frozenset()
_CHAT = frozenset({Api.CHAT, Api.EMBEDDINGS})
#: The one API a translated provider may be relayed for natively.
_PROVIDER_APIS = {"anthropic": frozenset({Api.MESSAGES})}


def _local(name: str, apis: frozenset[Api], probe: ProbeStyle = ProbeStyle.OPENAI) -> BackendKind:
    return BackendKind(name, Location.LOCAL, Transport.RELAY, probe, apis)


BUILTIN_KINDS: dict[str, BackendKind] = {
    kind.name: kind
    for kind in (
        _local("ollama", ALL_APIS, ProbeStyle.OLLAMA),
        _local("vllm", _CHAT | {Api.COMPLETIONS, Api.RESPONSES}),
        _local("llamacpp", _CHAT | {Api.COMPLETIONS, Api.MESSAGES}),
        _local("lmstudio", _CHAT | {Api.COMPLETIONS, Api.RESPONSES}),
        _local("exo", frozenset({Api.CHAT})),
        _local("generic", _CHAT),
        BackendKind(
            "openai",
            Location.CLOUD,
            Transport.RELAY,
            ProbeStyle.OPENAI,
            _CHAT | {Api.COMPLETIONS, Api.RESPONSES},
        ),
        BackendKind(
            "anthropic",
            Location.CLOUD,
            Transport.TRANSLATED,
            ProbeStyle.ANTHROPIC,
            _PROVIDER_APIS["anthropic"],
        ),
        BackendKind("google", Location.CLOUD, Transport.TRANSLATED, ProbeStyle.GOOGLE),
    )
}


def kind_of(type_name: str) -> BackendKind | None:
    """The kind for a configured type (case-insensitive), or None when Nexus does not know it.

    Types other than the built-in ones are accepted when LiteLLM knows them as a provider id;
    they are cloud, translated, and probed from their configured model list.
    """
    name = type_name.strip().lower()
    if name in BUILTIN_KINDS:
        return BUILTIN_KINDS[name]
    if name in litellm_provider_ids():
        return BackendKind(name, Location.CLOUD, Transport.TRANSLATED, ProbeStyle.STATIC)
    return None


def provider_table_path() -> Path | None:
    """LiteLLM's bundled provider table (ids and endpoints), found without importing litellm."""
    spec = importlib.util.find_spec("litellm")
    if spec is None or spec.origin is None:
        return None
    table = Path(spec.origin).parent / "provider_endpoints_support_backup.json"
    return table if table.is_file() else None


@functools.cache
def litellm_provider_ids() -> frozenset[str]:
    """Provider ids listed in LiteLLM's bundled provider table, read as data (no litellm import)."""
    table = provider_table_path()
    if table is None:
        return frozenset()
    providers = orjson.loads(table.read_bytes()).get("providers", {})
    return frozenset(str(name).lower() for name in providers)
