"""Providers that do not speak OpenAI's wire format (anthropic, google and the other LiteLLM
provider ids), translated through LiteLLM. Not built yet: every attempt fails over with a clear
reason, so a translated backend never silently receives OpenAI-format bytes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr

from nexus.backends.state import BackendView
from nexus.errors import UpstreamBadResponse
from nexus.upstream.reply import Reply


async def open_translated(
    *,
    backend: BackendView,
    path: str,
    body: Mapping[str, Any],
    model: str,
    api_key: SecretStr | None,
    stream: bool,
    timeout: float,
) -> Reply:
    """Send ``body`` (an OpenAI request) to ``backend`` in its provider's format."""
    raise UpstreamBadResponse(
        f"type '{backend.kind.name}' needs LiteLLM translation, which this build lacks",
        backend=backend.name,
    )
