"""One health probe per backend: is it answering, and which models does it serve?

:func:`probe` never raises for network or protocol problems: every outcome is a
:class:`~nexus.backends.state.ProbeResult`, and the whole probe (Ollama's ``/api/show`` calls and
pagination included) ends within ``timeout``. Probes are free: model listings only, never a
completion. Keys travel in headers only (never in a URL) and never appear in an error text.

By probe style (:class:`~nexus.config.kinds.ProbeStyle`); the configured URL may carry the API
version path or not, it is never doubled:

- OLLAMA: ``GET /api/tags``, then ``POST /api/show {"model": name}`` per model for
  ``capabilities`` and the first ``model_info`` key ending in ``.context_length``; cached per
  (url, model, digest) in a :class:`ShowCache`. A failed ``/api/show`` does not fail the probe.
- OPENAI: ``GET /v1/models``; context from ``max_model_len`` (vLLM), ``meta.n_ctx_train``
  (llama.cpp) or ``context_length``. A key, when configured, goes in ``Authorization: Bearer``.
- ANTHROPIC: ``GET /v1/models?limit=1000`` with ``x-api-key`` and ``anthropic-version``,
  following ``has_more``.
- GOOGLE: ``GET /v1beta/models?pageSize=1000`` with ``x-goog-api-key``, following
  ``nextPageToken``; only models supporting ``generateContent``, without the ``models/`` prefix;
  ``inputTokenLimit`` is the context length.
- STATIC: no HTTP; the configured models, healthy when the key is present.

A key is needed by cloud kinds and by any backend that names an ``api_key_env``; when it is unset
or empty the probe fails (AUTH, the credential's problem) without sending anything.

When ``models`` is configured, the result holds exactly those, in configured order and once each,
with what the listing says about them (an untagged name matches Ollama's ``name:latest``); models
the listing omits are kept, as listings can omit aliases.

Capability heuristics, used only where the backend does not report capabilities (everything but
Ollama 0.6+); substrings of the lower-cased model id:

- vision: ``llava``, ``vision``, ``gpt-4o``, ``gpt-4.1``, ``gpt-5``, and the Claude 3+ and Gemini
  1.5+ families (``claude-3``, ``claude-opus-``, ``claude-sonnet-``, ``claude-haiku-``,
  ``gemini-1.5``, ``gemini-2``);
- tools: ``gpt-4``, ``gpt-3.5-turbo``, ``gpt-5``, the Claude 3+ and Gemini 1.5+ families,
  ``hermes``, ``functionary``;
- JSON mode: every model of a server that constrains output to JSON itself (ollama, vllm,
  llamacpp, lmstudio), else ``gpt-4``, ``gpt-3.5-turbo``, ``gpt-5``, ``gemini-1.5``, ``gemini-2``;
- context length: 200,000 for models listed by Anthropic; otherwise unknown (None) unless listed.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from nexus.backends.state import ModelInfo, ProbeResult
from nexus.config.credentials import read_credential
from nexus.config.kinds import ProbeStyle
from nexus.config.model import BackendConfig
from nexus.errors import Failure, ProbeFailed

ANTHROPIC_VERSION = "2023-06-01"
#: Most pages followed in one paginated listing (Anthropic, Gemini).
MAX_PAGES = 10
#: Share of the probe's time limit that Ollama's /api/show calls may use; the rest is margin.
SHOW_BUDGET = 0.8
SHOW_CONCURRENCY = 8
ANTHROPIC_CONTEXT = 200_000

_CLAUDE = ("claude-3", "claude-opus-", "claude-sonnet-", "claude-haiku-")
_CLAUDE_GEMINI = (*_CLAUDE, "gemini-1.5", "gemini-2")
_VISION = ("llava", "vision", "gpt-4o", "gpt-4.1", "gpt-5", *_CLAUDE_GEMINI)
_TOOLS = ("gpt-4", "gpt-3.5-turbo", "gpt-5", "hermes", "functionary", *_CLAUDE_GEMINI)
_JSON = ("gpt-4", "gpt-3.5-turbo", "gpt-5", "gemini-1.5", "gemini-2")
_JSON_SERVERS = frozenset({"ollama", "vllm", "llamacpp", "lmstudio"})


def guess_model(model_id: str, kind: str, context_length: int | None = None) -> ModelInfo:
    """``model_id`` on a backend of type ``kind``, with the module's name heuristics applied."""
    name = model_id.lower()
    if context_length is None and kind == "anthropic":
        context_length = ANTHROPIC_CONTEXT
    return ModelInfo(
        id=model_id,
        context_length=context_length,
        vision=_known(any(marker in name for marker in _VISION)),
        tools=_known(any(marker in name for marker in _TOOLS)),
        json_mode=_known(kind in _JSON_SERVERS or any(marker in name for marker in _JSON)),
    )


def _known(found: bool) -> bool | None:
    """A name heuristic can say "yes", never "no": without a marker the capability is unknown."""
    return True if found else None


class ShowCache:
    """What Ollama's ``/api/show`` said, per (base url, model, digest); a re-pulled model (new
    digest) is asked again. Holds at most ``max_entries``, dropping the oldest first."""

    def __init__(self, max_entries: int = 4096) -> None:
        self._max = max_entries
        self._entries: dict[tuple[str, str, str], ModelInfo] = {}

    def get(self, url: str, model: str, digest: str) -> ModelInfo | None:
        return self._entries.get((url, model, digest))

    def put(self, url: str, model: str, digest: str, info: ModelInfo) -> None:
        if len(self._entries) >= self._max:
            del self._entries[next(iter(self._entries))]
        self._entries[(url, model, digest)] = info

    def __len__(self) -> int:
        return len(self._entries)


# -- wire shapes: only the fields we read; anything else is ignored ------------------------------


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _LlamaCppMeta(_Wire):
    n_ctx_train: int | None = None


class _OpenAIModel(_Wire):
    id: str
    max_model_len: int | None = None
    context_length: int | None = None
    meta: _LlamaCppMeta | None = None


class _OpenAIList(_Wire):
    data: list[_OpenAIModel]


class _AnthropicList(_Wire):
    data: list[_OpenAIModel]
    has_more: bool = False
    last_id: str | None = None


class _OllamaTag(_Wire):
    name: str
    digest: str = ""


class _OllamaTags(_Wire):
    models: list[_OllamaTag]


class _OllamaShow(_Wire):
    capabilities: list[str] | None = None
    model_info: dict[str, Any] = {}


class _GeminiModel(_Wire):
    name: str
    inputTokenLimit: int | None = None
    supportedGenerationMethods: list[str] = []


class _GeminiList(_Wire):
    models: list[_GeminiModel] = []
    nextPageToken: str | None = None


class _GoogleError(_Wire):
    details: list[dict[str, Any]] = []


class _GoogleErrorBody(_Wire):
    error: _GoogleError


W = TypeVar("W", bound=_Wire)


@dataclass
class _Call:
    """The HTTP side of one probe: where, with which headers, until when."""

    client: httpx.AsyncClient
    backend: BackendConfig
    base: str
    headers: dict[str, str]
    timeout: float
    show_deadline: float  # loop time by which Ollama's /api/show calls must be done
    latency_ms: float | None = None  # of the first response (the listing)

    async def fetch(
        self,
        method: str,
        path: str,
        shape: type[W],
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> W:
        """``method path``, parsed as ``shape``; non-2xx and bad bodies raise ProbeFailed."""
        started = time.perf_counter()
        url = self.base + path
        send = functools.partial(
            self.client.request,
            method,
            url,
            headers=self.headers,
            params=params,
            json=body,
            timeout=self.timeout,
        )
        try:
            response = await send()
        except _REUSED_CONNECTION_LOST:  # the server closed a pooled connection as it was reused
            response = await send()  # once more, on a fresh connection
        if self.latency_ms is None:
            self.latency_ms = (time.perf_counter() - started) * 1000
        line = f"{method} {path}"
        if not response.is_success:
            raise ProbeFailed(*_status_failure(response, line, self.backend))
        try:
            return shape.model_validate_json(response.content)
        except ValidationError as exc:
            invalid = any(error["type"] == "json_invalid" for error in exc.errors())
            why = "invalid JSON" if invalid else "unexpected JSON shape"
            raise ProbeFailed(Failure.BAD_RESPONSE, f"{why} from {line}") from None


#: Errors of a request sent on a pooled connection that the server closed meanwhile (its
#: keep-alive ran out): nothing was answered, so the probe is sent once more.
_REUSED_CONNECTION_LOST = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


def _status_failure(
    response: httpx.Response, line: str, backend: BackendConfig
) -> tuple[Failure, str]:
    status = response.status_code
    text = f"HTTP {status} from {line}"
    if status in (401, 403) or _google_key_invalid(response, backend):
        if backend.api_key_env is not None:
            return Failure.AUTH, f"API key rejected ({backend.api_key_env})"
        return Failure.AUTH, text
    if status == 429:
        retry_after = response.headers.get("retry-after", "")
        hint = f", retry after {retry_after}s" if retry_after.isdigit() else ""
        return Failure.RATE_LIMITED, f"{text} (rate limited{hint})"
    if status >= 500:
        return Failure.SERVER_ERROR, text
    return Failure.BAD_RESPONSE, text


def _google_key_invalid(response: httpx.Response, backend: BackendConfig) -> bool:
    """Google answers a wrong key with 400 INVALID_ARGUMENT, reason API_KEY_INVALID."""
    if response.status_code != 400 or backend.kind.probe is not ProbeStyle.GOOGLE:
        return False
    try:
        error = _GoogleErrorBody.model_validate_json(response.content).error
    except ValidationError:
        return False
    return any(info.get("reason") == "API_KEY_INVALID" for info in error.details)


def _transport_cause(exc: httpx.RequestError) -> str:
    """A short cause for a transport error, from the OS error underneath it."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, socket.gaierror):
            return "host not found"
        if isinstance(cause, ssl.SSLError):
            return "TLS handshake failed"
        if isinstance(cause, ConnectionResetError | httpx.RemoteProtocolError):
            return "connection closed without a response"
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.ConnectError):
        return "connection failed"
    return f"transport error ({type(exc).__name__})"


def _root(url: str, *version_paths: str) -> str:
    """``url`` without a trailing slash or API version path, so that paths are never doubled."""
    url = url.rstrip("/")
    for suffix in version_paths:
        if url.endswith(suffix):
            return url[: -len(suffix)]
    return url


# -- listings, one per probe style ---------------------------------------------------------------


async def _list_openai(call: _Call, cache: ShowCache | None) -> list[ModelInfo]:
    listing = await call.fetch("GET", "/v1/models", _OpenAIList)
    kind = call.backend.kind.name
    return [guess_model(m.id, kind, _openai_context(m)) for m in listing.data]


def _openai_context(model: _OpenAIModel) -> int | None:
    if model.max_model_len is not None:
        return model.max_model_len
    if model.meta is not None and model.meta.n_ctx_train is not None:
        return model.meta.n_ctx_train
    return model.context_length


async def _list_anthropic(call: _Call, cache: ShowCache | None) -> list[ModelInfo]:
    found: list[ModelInfo] = []
    after: dict[str, str] = {}
    for _ in range(MAX_PAGES):
        page = await call.fetch(
            "GET", "/v1/models", _AnthropicList, params={"limit": "1000", **after}
        )
        found += [guess_model(m.id, "anthropic") for m in page.data]
        if not page.has_more or page.last_id is None:
            break
        after = {"after_id": page.last_id}
    return found


async def _list_google(call: _Call, cache: ShowCache | None) -> list[ModelInfo]:
    found: list[ModelInfo] = []
    token: dict[str, str] = {}
    for _ in range(MAX_PAGES):
        page = await call.fetch(
            "GET", "/v1beta/models", _GeminiList, params={"pageSize": "1000", **token}
        )
        found += [
            guess_model(m.name.removeprefix("models/"), "google", m.inputTokenLimit)
            for m in page.models
            if "generateContent" in m.supportedGenerationMethods
        ]
        if not page.nextPageToken:
            break
        token = {"pageToken": page.nextPageToken}
    return found


async def _list_ollama(call: _Call, cache: ShowCache | None) -> list[ModelInfo]:
    tags = (await call.fetch("GET", "/api/tags", _OllamaTags)).models
    configured = call.backend.models
    if configured is not None:
        wanted = {*configured, *(f"{name}:latest" for name in configured)}
        tags = [tag for tag in tags if tag.name in wanted]
    shown = await _show_all(call, tags, cache)
    return [shown.get(tag.name) or guess_model(tag.name, "ollama") for tag in tags]


async def _show_all(
    call: _Call, tags: Sequence[_OllamaTag], cache: ShowCache | None
) -> dict[str, ModelInfo]:
    """``/api/show`` for each tag not in ``cache``, concurrently, until the show deadline; models
    whose answer failed or did not arrive in time are simply missing from the result."""
    shown: dict[str, ModelInfo] = {}
    todo: list[_OllamaTag] = []
    for tag in tags:
        cached = cache.get(call.base, tag.name, tag.digest) if cache is not None else None
        if cached is not None:
            shown[tag.name] = cached
        else:
            todo.append(tag)
    if not todo:
        return shown
    limit = asyncio.Semaphore(SHOW_CONCURRENCY)
    try:
        async with asyncio.timeout_at(call.show_deadline), asyncio.TaskGroup() as group:
            for tag in todo:
                group.create_task(_show_one(call, tag, limit, shown, cache))
    except TimeoutError:
        pass  # the unfinished ones fall back to the name heuristics
    return shown


async def _show_one(
    call: _Call,
    tag: _OllamaTag,
    limit: asyncio.Semaphore,
    shown: dict[str, ModelInfo],
    cache: ShowCache | None,
) -> None:
    try:
        async with limit:
            show = await call.fetch("POST", "/api/show", _OllamaShow, body={"model": tag.name})
    except (ProbeFailed, httpx.RequestError):
        return  # not cached: the next probe asks again
    info = _from_show(tag.name, show)
    shown[tag.name] = info
    if cache is not None:
        cache.put(call.base, tag.name, tag.digest, info)


def _from_show(name: str, show: _OllamaShow) -> ModelInfo:
    lengths = (value for key, value in show.model_info.items() if key.endswith(".context_length"))
    context = next(lengths, None)
    context = context if type(context) is int and context > 0 else None
    if show.capabilities is None:  # Ollama before 0.6 does not say
        return guess_model(name, "ollama", context)
    caps = set(show.capabilities)
    return ModelInfo(name, context, vision="vision" in caps, tools="tools" in caps, json_mode=True)


_Lister = Callable[[_Call, ShowCache | None], Awaitable[list[ModelInfo]]]
_LISTERS: dict[ProbeStyle, tuple[_Lister, tuple[str, ...]]] = {
    ProbeStyle.OLLAMA: (_list_ollama, ("/v1",)),
    ProbeStyle.OPENAI: (_list_openai, ("/v1",)),
    ProbeStyle.ANTHROPIC: (_list_anthropic, ("/v1",)),
    ProbeStyle.GOOGLE: (_list_google, ("/v1beta", "/v1")),
}


def _auth_headers(style: ProbeStyle, key: str | None) -> dict[str, str]:
    if key is None:
        return {}
    if style is ProbeStyle.ANTHROPIC:
        return {"x-api-key": key, "anthropic-version": ANTHROPIC_VERSION}
    if style is ProbeStyle.GOOGLE:
        return {"x-goog-api-key": key}
    return {"authorization": f"Bearer {key}"}


def _restrict(found: Sequence[ModelInfo], backend: BackendConfig) -> tuple[ModelInfo, ...]:
    """The listed models, once each; or exactly the configured ones, in configured order."""
    listed: dict[str, ModelInfo] = {}
    for model in found:
        listed.setdefault(model.id, model)
    if backend.models is None:
        return tuple(listed.values())
    kept: list[ModelInfo] = []
    for name in dict.fromkeys(backend.models):
        match = listed.get(name) or listed.get(f"{name}:latest")
        kept.append(replace(match, id=name) if match else guess_model(name, backend.kind.name))
    return tuple(kept)


def _read_key(
    backend: BackendConfig, environ: Mapping[str, str] | None
) -> str | ProbeResult | None:
    """The backend's key (None when it needs none), or the failed result when it is missing."""
    if not backend.kind.is_cloud and backend.api_key_env is None:
        return None
    if backend.api_key_env is None:  # the config loader rejects this; never probe keyless
        return ProbeResult.failed(Failure.AUTH, f"backend {backend.name!r} has no api_key_env")
    credential = read_credential(backend.api_key_env, environ)
    if credential.value is None:
        return ProbeResult.failed(Failure.AUTH, credential.problem or "API key missing")
    return credential.value.get_secret_value()


async def probe(
    backend: BackendConfig,
    client: httpx.AsyncClient,
    *,
    timeout: float,
    environ: Mapping[str, str] | None = None,
    show_cache: ShowCache | None = None,
) -> ProbeResult:
    """Probe ``backend`` once through ``client``, within ``timeout`` seconds.

    Keys are read from ``environ`` (default: the process environment). ``latency_ms`` is the
    time to the listing's first response (None when nothing answered). Network and protocol
    problems become a failed result; only programming errors and cancellation propagate.
    """
    style = backend.kind.probe
    key = _read_key(backend, environ)
    if isinstance(key, ProbeResult):
        return key
    if style is ProbeStyle.STATIC:
        return ProbeResult(ok=True, models=_restrict((), backend))
    lister, version_paths = _LISTERS[style]
    loop = asyncio.get_running_loop()
    call = _Call(
        client=client,
        backend=backend,
        base=_root(backend.url, *version_paths),
        headers=_auth_headers(style, key),
        timeout=timeout,
        show_deadline=loop.time() + timeout * SHOW_BUDGET,
    )
    try:
        async with asyncio.timeout(timeout):
            found = await lister(call, show_cache)
    except (TimeoutError, httpx.TimeoutException):
        error = f"probe timed out after {timeout:g}s"
        return ProbeResult.failed(Failure.TIMEOUT, error, call.latency_ms)
    except ProbeFailed as exc:
        return ProbeResult.failed(exc.failure, exc.error, call.latency_ms)
    except httpx.TransportError as exc:  # only a new connection refused takes it out at once
        failure = Failure.REFUSED if isinstance(exc, httpx.ConnectError) else Failure.SERVER_ERROR
        return ProbeResult.failed(failure, _transport_cause(exc), call.latency_ms)
    except httpx.RequestError as exc:  # e.g. an undecodable body or too many redirects
        error = f"bad response ({type(exc).__name__})"
        return ProbeResult.failed(Failure.BAD_RESPONSE, error, call.latency_ms)
    return ProbeResult(ok=True, latency_ms=call.latency_ms, models=_restrict(found, backend))


async def probe_all(
    backends: Sequence[BackendConfig],
    client: httpx.AsyncClient,
    *,
    timeout: float,
    environ: Mapping[str, str] | None = None,
    show_cache: ShowCache | None = None,
) -> dict[str, ProbeResult]:
    """Probe every backend concurrently; the results keyed by backend name, in input order.
    Takes about ``timeout`` at most, however many backends hang."""
    one = functools.partial(
        probe, client=client, timeout=timeout, environ=environ, show_cache=show_cache
    )
    async with asyncio.TaskGroup() as group:
        tasks = [(backend.name, group.create_task(one(backend))) for backend in backends]
    return {name: task.result() for name, task in tasks}
