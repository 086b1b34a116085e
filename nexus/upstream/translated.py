"""Providers that do not speak OpenAI's wire format (anthropic, google and any other LiteLLM
provider id), translated by ``litellm.acompletion`` / ``litellm.aembedding``.

This is the only module that imports LiteLLM, and only when a translated backend is used: the
import takes about 2.5 s and 200 MB. Before it, LiteLLM is put offline (``LITELLM_OFFLINE_MODE``,
``LITELLM_LOCAL_MODEL_COST_MAP``: no price-map, beta-header or tokenizer downloads) and tiktoken
is pointed at the encodings inside the wheel. :func:`warm_up` does the import and registers the
models LiteLLM's map lacks (:data:`nexus.pricing.NEXUS_MODELS`: prices, output limits, Gemini's
``system_instruction``); the app runs it in a thread at start-up so that ``/health`` answers at
once and the first request does not pay for it.

Every call passes ``max_retries=0`` and ``num_retries=0`` (retries and failover are Nexus's job),
an explicit ``max_tokens`` (:mod:`nexus.upstream.providers`) and ``drop_params=False``
(:data:`DROP_PARAMS`): a parameter the client set that the provider cannot honour (``seed``,
``n > 1``, ``logprobs`` on Anthropic; ``logit_bias`` on Gemini, ...) is a 400 naming it, never
silently ignored. ``litellm.Router`` is not used.

Answers are converted to Nexus's own values at this border (:mod:`nexus.upstream.convert`) and
rendered by :mod:`nexus.upstream.openai_wire`. LiteLLM's exceptions are mapped by type and
``status_code``, never by message text (table in ``docs/providers.md``): a connect failure in
the cause chain is UpstreamUnreachable, ``openai.APITimeoutError`` UpstreamTimeout, 429
UpstreamRateLimited (``retry-after`` from ``litellm_response_headers``), 401/403
UpstreamAuthError "API key rejected (ENV)", other 4xx an OpenAI-shaped answer with that status
(no failover), anything else (5xx; Anthropic's 529 arrives as 500) a retryable UpstreamError.

A stream's first event is read before :func:`open_translated` returns, so errors before it are
failovers; a failure later raises from :meth:`TranslatedStream.chunks` (the gateway ends the stream
with an error event).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import threading
import warnings
from collections.abc import AsyncIterator, Coroutine, Mapping
from types import ModuleType
from typing import Any

from loguru import logger
from pydantic import SecretStr

from nexus import tokens
from nexus.backends.state import BackendView
from nexus.errors import (
    UpstreamAuthError,
    error_body,
)
from nexus.pricing import NEXUS_MODELS, PriceTable
from nexus.upstream import convert
from nexus.upstream.litellm_errors import LiteLLMErrors
from nexus.upstream.openai_wire import DONE, StreamState, completion_json, embeddings_json
from nexus.upstream.prepare import chat_images, json_mode, refuse_remote_images
from nexus.upstream.providers import (
    Target,
    call_arguments,
    has_embeddings,
    target,
    with_max_tokens,
)
from nexus.upstream.reply import BodyReply, Reply

JSON = "application/json"
#: LiteLLM's ``drop_params``: False, so unsupported parameters are a 400, never silently dropped.
DROP_PARAMS = False
#: Modules LiteLLM imports lazily on the first call; :func:`warm_up` imports them up front.
_FIRST_CALL_MODULES = (
    "litellm._service_logger",
    "litellm.llms.custom_httpx.async_client_cleanup",
    "litellm.llms.vertex_ai.context_caching.vertex_ai_context_caching",
)
#: Rehearsed by :func:`warm_up` (``mock_response``: nothing is sent anywhere).
_REHEARSED = ("anthropic/claude-3-5-sonnet-20241022", "gemini/gemini-1.5-pro")
_lock = threading.Lock()
_state: dict[str, ModuleType] = {}  # the configured LiteLLM module, once warm_up has run
OUTPUT_LIMITS = PriceTable()  # limits only (immutable): config price overrides do not matter here


def offline_environment() -> None:
    """Keep LiteLLM and tiktoken off the network. Must run before LiteLLM is imported."""
    os.environ["LITELLM_OFFLINE_MODE"] = "true"
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    folder = tokens.bundled_encodings_dir()
    if folder is not None:
        os.environ["TIKTOKEN_CACHE_DIR"] = str(folder)


def loaded() -> ModuleType | None:
    """LiteLLM when :func:`warm_up` has completed, else None (nothing is imported)."""
    return _state.get("litellm")


def warm_up() -> ModuleType:
    """Import and configure LiteLLM once, and rehearse one offline call per provider so that
    the modules LiteLLM loads on its first call are loaded too (thread-safe, idempotent; about
    3 s the first time). Run it in a thread at start-up when a translated backend is configured:
    it blocks."""
    with _lock:
        module = _state.get("litellm")
        if module is not None:
            return module
        offline_environment()
        with warnings.catch_warnings():
            _ignore_litellm_noise()
            import litellm

            litellm.suppress_debug_info = True  # no "Provider List: ..." lines on stdout
            _silence_litellm_logging()
            litellm.drop_params = DROP_PARAMS
            missing = {k: dict(v) for k, v in NEXUS_MODELS.items() if k not in litellm.model_cost}
            if missing:
                litellm.register_model(missing)
            try:
                _in_own_loop(_rehearse(litellm))
                for name in _FIRST_CALL_MODULES:
                    importlib.import_module(name)
            except Exception:  # only a warm-up: the first real call then loads what it needs
                logger.opt(exception=True).warning("LiteLLM warm-up call failed")
        _state["litellm"] = litellm
        return litellm


def _silence_litellm_logging() -> None:
    """LiteLLM's loggers print their own plain-text lines (breaking JSON logs) and put request
    content in them (e.g. the image URLs it fetches). Nexus logs every outcome itself, without
    content, so LiteLLM's loggers are switched off."""
    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
        own = logging.getLogger(name)
        own.handlers.clear()
        own.propagate = False
        own.disabled = True


def _ignore_litellm_noise() -> None:
    """LiteLLM's own types make pydantic warn while LiteLLM imports them (``ReadOnly`` items on
    its TypedDicts): noise about LiteLLM's code, not ours, so ignored during :func:`warm_up`."""
    warnings.filterwarnings(
        "ignore",
        message=r"Items? .* on TypedDict class .* using the `ReadOnly` qualifier",
        category=UserWarning,
        module=r"pydantic\._internal\._generate_schema",
    )


async def _rehearse(litellm: ModuleType) -> None:
    """One JSON and one streamed ``mock_response`` call per common provider: no network."""
    for model in _REHEARSED:
        for stream in (False, True):
            response = await litellm.acompletion(
                model=model,
                messages=[{"role": "user", "content": "warm-up"}],
                api_key="warm-up",
                max_tokens=1,
                stream=stream,
                mock_response="ok",
            )
            if stream:
                async for _ in response:
                    pass


def _in_own_loop(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run ``coroutine`` to completion on a new event loop in a short-lived thread (the caller
    may itself be running a loop)."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(coroutine)
        except BaseException as exc:  # re-raised in the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=run, name="nexus-litellm-warm-up")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


async def litellm_module() -> ModuleType:
    """LiteLLM, imported in a thread when :func:`warm_up` has not run yet (the loop keeps
    serving meanwhile)."""
    module = loaded()
    return module if module is not None else await asyncio.to_thread(warm_up)


async def shutdown() -> None:
    """Close LiteLLM's pooled HTTP sessions of the running loop (call at app shutdown)."""
    if loaded() is None:
        return
    from litellm.llms.custom_httpx.async_client_cleanup import close_litellm_async_clients

    await close_litellm_async_clients()  # type: ignore[no-untyped-call]  # LiteLLM's, unannotated


class TranslatedStream:
    """A LiteLLM stream rendered as OpenAI's SSE events; its first event was read already."""

    status_code = 200
    content_type: str | None = "text/event-stream"

    def __init__(
        self, stream: Any, first: bytes | None, state: StreamState, errors: LiteLLMErrors
    ) -> None:
        self._stream = stream
        self._first = first
        self._state = state
        self._errors = errors

    async def chunks(self) -> AsyncIterator[bytes]:
        if self._first is None:  # the stream ended before any event
            yield DONE
            return
        yield self._first
        try:
            async for chunk in self._stream:
                event = self._state.event(convert.chunk(chunk))
                if event is not None:
                    yield event
        except Exception as exc:  # the border: LiteLLM's exceptions become ours
            raise self._errors.upstream(exc) from None
        yield DONE

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.chunks()])

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        except Exception as exc:  # closing a broken stream may fail again; nothing to do
            logger.debug("closing a LiteLLM stream failed: {}", type(exc).__name__)


def require_key(backend: BackendView, api_key: SecretStr | None) -> None:
    """Raise UpstreamAuthError when ``backend`` needs a key and its variable holds none."""
    if api_key is None and backend.api_key_env is not None:
        raise UpstreamAuthError(f"API key missing ({backend.api_key_env})", backend=backend.name)


def call_settings(where: Target, key: str | None, timeout: float) -> dict[str, Any]:
    """The arguments of every LiteLLM call: where, the key, no retries of its own (failover is
    Nexus's job), the attempt's timeout, and unsupported parameters refused."""
    return {
        "model": where.model,
        "api_base": where.api_base,
        "api_key": key,
        "max_retries": 0,
        "num_retries": 0,
        "timeout": timeout,
        "drop_params": DROP_PARAMS,
    }


async def open_translated(
    *,
    backend: BackendView,
    path: str,
    body: Mapping[str, Any],
    model: str,
    api_key: SecretStr | None,
    stream: bool,
    timeout: float,
    fetch_remote_images: bool = False,
) -> Reply:
    """Send ``body`` (an OpenAI chat or embeddings request) to ``backend`` for ``model``
    through LiteLLM and return the answer in OpenAI's format, or raise an UpstreamError.
    A remote image the provider cannot take by URL is a 400 (see :mod:`.prepare`)."""
    where = target(backend.kind.name, backend.url, model)
    errors = LiteLLMErrors(backend.name, where.provider, backend.api_key_env, api_key, model)
    require_key(backend, api_key)
    litellm = await litellm_module()
    key = api_key.get_secret_value() if api_key is not None else None
    common = call_settings(where, key, timeout)
    if path == "/embeddings":
        return await _embed(litellm, where, body, common, errors)
    refusal = refuse_remote_images(
        chat_images(body.get("messages")),
        backend=backend.name,
        provider=where.provider,
        fetch_remote_images=fetch_remote_images,
    )
    if refusal is not None:
        error = error_body(refusal.message, error_type="invalid_request_error", param=refusal.param)
        return BodyReply(400, error)
    arguments, removed = call_arguments(
        body, litellm.constants.OPENAI_CHAT_COMPLETION_PARAMS, stream=stream
    )
    arguments = json_mode(arguments, where.provider)
    if removed:
        logger.debug("not sent to backend {}: {}", backend.name, ", ".join(removed))
    arguments = with_max_tokens(arguments, OUTPUT_LIMITS, where)
    try:
        response = await litellm.acompletion(
            messages=body.get("messages"), stream=stream, **common, **arguments
        )
        if not stream:
            return BodyReply(200, completion_json(convert.completion(response)))
        return await _first_event(response, _include_usage(body), errors)
    except Exception as exc:  # the border: LiteLLM's exceptions become ours
        return errors.reply_or_raise(exc)


async def _first_event(response: Any, include_usage: bool, errors: LiteLLMErrors) -> Reply:
    """Read the stream up to its first event, so that failures before it are failovers."""
    state = StreamState(include_usage)
    iterator = aiter(response)
    while True:
        try:
            chunk = await anext(iterator)
        except StopAsyncIteration:
            return TranslatedStream(response, None, state, errors)
        except BaseException:
            await TranslatedStream(response, None, state, errors).aclose()
            raise
        event = state.event(convert.chunk(chunk))
        if event is not None:
            return TranslatedStream(response, event, state, errors)


async def _embed(
    litellm: ModuleType,
    where: Target,
    body: Mapping[str, Any],
    common: dict[str, Any],
    errors: LiteLLMErrors,
) -> Reply:
    if not has_embeddings(where.provider):
        message = f"backend '{errors.backend}' ({where.provider}) offers no embeddings"
        error = error_body(message, error_type="invalid_request_error", code="unsupported_endpoint")
        return BodyReply(400, error)
    arguments, _ = call_arguments(body, litellm.constants.OPENAI_EMBEDDING_PARAMS, stream=False)
    base64_floats = arguments.pop("encoding_format", None) == "base64"
    try:
        response = await litellm.aembedding(input=body.get("input"), **common, **arguments)
        rendered = embeddings_json(convert.embeddings(response), base64_floats=base64_floats)
    except Exception as exc:  # the border: LiteLLM's exceptions become ours
        return errors.reply_or_raise(exc)
    return BodyReply(200, rendered)


def _include_usage(body: Mapping[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, Mapping) and options.get("include_usage") is True
