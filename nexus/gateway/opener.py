"""How one attempt reaches a backend: the :class:`Opener` seam. The real one relays the bytes of
an OpenAI-compatible backend over the shared aiohttp pool, or translates through LiteLLM for the
other providers; tests pass their own to drive the whole request path without sockets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
from pydantic import SecretStr

from nexus.backends.state import BackendView
from nexus.config.credentials import read_credential
from nexus.config.kinds import Api, Transport
from nexus.upstream.body import rewrite_model
from nexus.upstream.relay import endpoint, open_relay, request_headers
from nexus.upstream.reply import Reply
from nexus.upstream.vectors import Base64Vectors


@dataclass(frozen=True, slots=True)
class Call:
    """One client request, parsed only as far as routing needed."""

    path: str  # the OpenAI API path: "/chat/completions" or "/embeddings"
    raw: bytes  # the body exactly as the client sent it
    body: Mapping[str, Any]  # the same, parsed (the translated transport needs it)
    model_sent: str  # the "model" value in ``raw``
    stream: bool
    request_id: str
    exact_input_tokens: int | None = None  # the request's tiktoken count, when exact
    max_tokens: int | None = None  # the client's output limit (see Requirements.max_tokens)
    kind: Api = Api.CHAT  # the client API the request arrived in
    forwarded: tuple[tuple[str, str], ...] = ()  # client headers its API needs (ANTHROPIC_HEADERS)
    trace: tuple[tuple[str, str], ...] = ()  # the attempt's traceparent (tracing on only)


class Opener(Protocol):
    """Sends ``call`` for ``model`` to ``backend`` and returns the answer once its status line
    arrived, or raises an :class:`~nexus.errors.UpstreamError` (a failover)."""

    async def __call__(
        self, backend: BackendView, model: str, call: Call, *, timeout: float
    ) -> Reply: ...


#: Always relayed to an OpenAI-compatible backend (its chat is where translations go).
RELAYED = frozenset({Api.CHAT, Api.EMBEDDINGS})


class UpstreamOpener:
    """The real :class:`Opener`: the byte relay when the backend speaks the request's API
    (:meth:`BackendView.speaks`), else LiteLLM: translated providers' chat and embeddings
    (:mod:`nexus.upstream.translated`), the other client APIs (:mod:`nexus.upstream.bridges`)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        environ: Mapping[str, str] | None = None,
        *,
        fetch_remote_images: bool = False,
    ) -> None:
        self._session = session
        self._environ = environ
        self._fetch_remote_images = fetch_remote_images

    async def __call__(
        self, backend: BackendView, model: str, call: Call, *, timeout: float
    ) -> Reply:
        key = None
        if backend.api_key_env is not None:
            key = read_credential(backend.api_key_env, self._environ).value
        relayed = backend.transport is Transport.RELAY
        if backend.speaks(call.kind) or (relayed and call.kind in RELAYED):
            return await self._relay(backend, model, call, key, timeout, relayed=relayed)
        return await self._translated(backend, model, call, key, timeout)

    async def _relay(
        self,
        backend: BackendView,
        model: str,
        call: Call,
        key: SecretStr | None,
        timeout: float,
        *,
        relayed: bool,
    ) -> Reply:
        """The byte relay; a translated provider speaking the API natively (Anthropic's
        Messages) is sent its own key header."""
        body = call.raw if model == call.model_sent else rewrite_model(call.raw, model)
        reply = await open_relay(
            self._session,
            backend=backend.name,
            url=endpoint(backend.url, call.path),
            body=body,
            headers=request_headers(
                key,
                stream=call.stream,
                anthropic=not relayed,
                forwarded=call.forwarded + call.trace,
            ),
            read_timeout=timeout,
            api_key_env=backend.api_key_env,
        )
        if call.path == "/embeddings" and call.body.get("encoding_format") == "base64":
            return Base64Vectors(reply)  # Ollama answers floats whatever was asked
        return reply

    async def _translated(
        self, backend: BackendView, model: str, call: Call, key: SecretStr | None, timeout: float
    ) -> Reply:
        """LiteLLM (imported only when needed): a translated provider's chat or embeddings, or
        another client API bridged onto what the backend speaks."""
        common: dict[str, Any] = {
            "backend": backend,
            "body": call.body,
            "model": model,
            "api_key": key,
            "stream": call.stream,
            "timeout": timeout,
            "fetch_remote_images": self._fetch_remote_images,
        }
        if call.kind in RELAYED:
            import nexus.upstream.translated as translated

            return await translated.open_translated(path=call.path, **common)
        import nexus.upstream.bridges as bridges

        return await bridges.open_bridged(api=call.kind, **common)
