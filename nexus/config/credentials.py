"""API keys, read from the environment only and held as secrets.

A key's value is never printed, logged or returned by any endpoint; only whether it is set.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

if TYPE_CHECKING:
    from nexus.config.model import NexusConfig


@dataclass(frozen=True, slots=True)
class Credential:
    """An API key: ``value`` when usable, else ``problem`` says why not (naming the variable)."""

    value: SecretStr | None
    problem: str | None

    @property
    def masked(self) -> str:
        """What may be shown of the key: ``****`` when set, else the problem."""
        return "****" if self.value is not None else f"<{self.problem}>"


def read_credential(env_var: str, environ: Mapping[str, str] | None = None) -> Credential:
    """Read the key named by ``env_var`` from ``environ`` (default: the process environment)."""
    raw = (os.environ if environ is None else environ).get(env_var)
    if raw is None:
        return Credential(None, f"environment variable {env_var} is not set")
    if not raw.strip():
        return Credential(None, f"environment variable {env_var} is empty")
    return Credential(SecretStr(raw.strip()), None)


def effective_config(
    config: NexusConfig, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The configuration as plain data, each backend with ``api_key`` masked (``****`` or why
    the key is missing). Safe to print."""
    data = config.model_dump(mode="json")
    for backend, shown in zip(config.backends, data["backends"], strict=True):
        if backend.api_key_env is not None:
            shown["api_key"] = read_credential(backend.api_key_env, environ).masked
    return data
