"""Rules that span several fields of the configuration. Pure functions; each problem is one line
starting with its key path, e.g. ``backends[3].name: 'gpu' is already used by backends[0] ...``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nexus.config.model import NexusConfig

MAX_ALIAS_HOPS = 3
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def key_path(*parts: str | int) -> str:
    """A TOML-style key path: ``backends[2].tier``, ``pricing."gpt-4.1".input_per_1k``."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            shown = (
                part if _BARE_KEY.match(part) else json.dumps(part, ensure_ascii=False)
            )  # controls escaped
            text += f".{shown}" if text else shown
    return text


def show_value(value: object) -> str:
    """A bad value as a problem line shows it: a container by its type, a scalar by its repr
    (cut at 60 characters)."""
    if isinstance(value, dict | list | tuple):
        return f"a {type(value).__name__}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def semantic_problems(config: NexusConfig) -> list[str]:
    """Every cross-field problem of ``config``, in file order; empty when it is consistent."""
    return [
        *_backend_problems(config),
        *alias_problems(config.routing.aliases),
        *_fallback_problems(config.routing.fallbacks),
        *_policy_problems(config),
        *_client_problems(config),
    ]


def _client_problems(config: NexusConfig) -> Iterator[str]:
    first_use: dict[str, int] = {}
    for index, client in enumerate(config.clients):
        if client.name in first_use:
            used = f"is already used by clients[{first_use[client.name]}] (names must be unique)"
            yield f"clients[{index}].name: {client.name!r} {used}"
        first_use.setdefault(client.name, index)


def _backend_problems(config: NexusConfig) -> Iterator[str]:
    first_use: dict[str, int] = {}
    for index, backend in enumerate(config.backends):
        path = f"backends[{index}]"
        if backend.name in first_use:
            first = first_use[backend.name]
            used = f"is already used by backends[{first}] (names must be unique)"
            yield f"{path}.name: {backend.name!r} {used}"
        first_use.setdefault(backend.name, index)
        if backend.kind.is_cloud and backend.api_key_env is None:
            yield (
                f"{path}.api_key_env: is required for cloud type {backend.type!r} "
                "(the name of the environment variable that holds the API key)"
            )


def is_glob(name: str) -> bool:
    """Whether an alias name is a glob pattern (``*``, ``?`` or ``[``) rather than a model id."""
    return any(char in name for char in "*?[")


def alias_problems(aliases: Mapping[str, str]) -> Iterator[str]:
    """Invalid glob aliases, cycles and chains longer than :data:`MAX_ALIAS_HOPS`, one line per
    alias that starts one."""
    for alias in aliases:
        problem = glob_problem(alias) if is_glob(alias) else None
        if problem:
            yield f"{key_path('routing', 'aliases', alias)}: not a valid glob ({problem})"
        chain = [alias]
        while chain[-1] in aliases and len(chain) <= MAX_ALIAS_HOPS + 1:
            target = aliases[chain[-1]]
            if target in chain:
                shown = " -> ".join(repr(name) for name in [*chain, target])
                yield (
                    f"{key_path('routing', 'aliases', alias)}: {shown} is a cycle "
                    "(an alias must end at a model)"
                )
                break
            chain.append(target)
        else:
            hops = len(chain) - 1
            if hops > MAX_ALIAS_HOPS:
                shown = " -> ".join(repr(name) for name in chain)
                yield (
                    f"{key_path('routing', 'aliases', alias)}: {shown} is more than "
                    f"{MAX_ALIAS_HOPS} hops (at most {MAX_ALIAS_HOPS} allowed)"
                )


def _fallback_problems(fallbacks: Mapping[str, tuple[str, ...]]) -> Iterator[str]:
    for model, chain in fallbacks.items():
        if model in chain:
            yield f"{key_path('routing', 'fallbacks', model)}: {model!r} cannot fall back to itself"


def _policy_problems(config: NexusConfig) -> Iterator[str]:
    for index, policy in enumerate(config.routing.policies):
        problem = glob_problem(policy.model_pattern)
        if problem:
            yield (
                f"routing.policies[{index}].model_pattern: {policy.model_pattern!r} "
                f"is not a valid glob ({problem})"
            )


def glob_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not a valid glob (``*``, ``?``, ``[...]``), or None when it is.

    ``fnmatch`` would silently treat an unclosed ``[`` as a literal; here it is an error.
    """
    position = 0
    while position < len(pattern):
        if pattern[position] == "[":
            end = pattern.find("]", position + 2)
            if end == -1:
                return f"'[' at position {position} is never closed"
            position = end
        position += 1
    return None
