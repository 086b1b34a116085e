"""Client APIs a backend does not speak natively, translated by LiteLLM onto what it does speak:
an OpenAI-compatible server's chat completions, or a provider's own API (issue 15).

- **Legacy completions** (``/v1/completions``): ``litellm.atext_completion``. For an
  OpenAI-compatible backend it is called through LiteLLM's ``lm_studio`` provider
  (:data:`CHAT_PROVIDER`), a plain OpenAI-compatible chat client: LiteLLM's ``openai`` and
  ``hosted_vllm`` providers would call the backend's ``/v1/completions``, which is the API it
  lacks. The prompt becomes one user message. ``suffix`` (fill-in-the-middle) has no place in a
  chat request: a 400 naming it, never dropped; so is any field LiteLLM's text completion does
  not take.

- **Anthropic Messages** (``/v1/messages``): ``litellm.anthropic_interface.messages.acreate``,
  LiteLLM's Messages adapter, onto the backend's chat completions. Its JSON answer is a Messages
  dict and its stream yields Anthropic's SSE events already framed; both are passed on (the model
  named as the backend's). Top-level fields outside :data:`MESSAGES_FIELDS` are a 400.

- **Responses** (``/v1/responses``): ``litellm.aresponses`` with ``use_chat_completions_api``
  (its bridge onto chat completions; without it LiteLLM would call the backend's
  ``/v1/responses``). Answers and stream events are LiteLLM's pydantic objects, dumped as JSON;
  fields outside :data:`RESPONSES_FIELDS` and :data:`RESPONSES_HINTS` are a 400.

Answers are LiteLLM's objects serialised in the client API's wire format; a stream's first event
is read before the answer is returned (so a failure before it is a failover), as on the
translated chat path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import orjson
from loguru import logger
from pydantic import SecretStr

from nexus.backends.state import BackendView
from nexus.config.kinds import Api, Transport
from nexus.errors import UpstreamError, anthropic_error_body, error_body
from nexus.upstream.litellm_errors import LiteLLMErrors
from nexus.upstream.openai_wire import DONE
from nexus.upstream.prepare import bridged_images, refuse_remote_images
from nexus.upstream.providers import Target, target, with_max_tokens
from nexus.upstream.relay import endpoint
from nexus.upstream.reply import BodyReply, Reply
from nexus.upstream.translated import (
    OUTPUT_LIMITS,
    call_settings,
    litellm_module,
    require_key,
)

#: LiteLLM's provider for an OpenAI-compatible server reached through its chat completions.
CHAT_PROVIDER = "lm_studio"
#: What ``litellm.atext_completion`` takes besides model, prompt and stream.
TEXT_PARAMETERS = frozenset(
    {
        "best_of",
        "echo",
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "max_tokens",
        "n",
        "presence_penalty",
        "seed",
        "stop",
        "stream_options",
        "temperature",
        "top_p",
        "user",
    }
)


#: Messages fields LiteLLM's adapter carries onto chat completions (besides model and stream).
MESSAGES_FIELDS = frozenset(
    {
        "max_tokens",
        "messages",
        "metadata",
        "stop_sequences",
        "system",
        "temperature",
        "tool_choice",
        "tools",
        "top_k",
        "top_p",
        "thinking",
    }
)


#: Responses fields LiteLLM's bridge carries onto chat completions (besides model and stream).
RESPONSES_FIELDS = frozenset(
    {
        "input",
        "instructions",
        "max_output_tokens",
        "parallel_tool_calls",
        "reasoning",
        "temperature",
        "text",
        "tool_choice",
        "tools",
        "top_p",
    }
)
#: Responses fields about storage, tracking or caching, not the answer: accepted (Codex and the
#: Agents SDK send them) and not carried by a translation (docs/providers.md).
RESPONSES_HINTS = frozenset(
    {
        "include",
        "metadata",
        "prompt_cache_key",
        "safety_identifier",
        "service_tier",
        "store",
        "truncation",
        "user",
    }
)


def bridge_target(backend: BackendView, model: str) -> Target:
    """How LiteLLM reaches ``model`` on ``backend`` for a translated client API."""
    if backend.transport is Transport.RELAY:
        base = endpoint(backend.url, "")
        return Target(CHAT_PROVIDER, f"{CHAT_PROVIDER}/{model}", model, base)
    return target(backend.kind.name, backend.url, model)


async def open_bridged(
    *,
    backend: BackendView,
    api: Api,
    body: Mapping[str, Any],
    model: str,
    api_key: SecretStr | None,
    stream: bool,
    timeout: float,
    fetch_remote_images: bool = False,
) -> Reply:
    """Send ``body`` (a request in client API ``api``) to ``backend`` for ``model`` through
    LiteLLM, and return the answer in ``api``'s wire format, or raise an UpstreamError. A remote
    image the provider cannot take by URL is a 400, as on the chat path (:mod:`.prepare`)."""
    where = bridge_target(backend, model)
    envelope = anthropic_error_body if api is Api.MESSAGES else error_body
    chat = where.provider == CHAT_PROVIDER
    label = backend.kind.name if chat else where.provider  # as errors name it, not lm_studio
    errors = LiteLLMErrors(backend.name, label, backend.api_key_env, api_key, model, envelope)
    require_key(backend, api_key)
    refusal = _uncarried(body, api, backend.name, chat=chat) or _images(
        body, backend.name, label, where.provider, fetch_remote_images
    )
    if refusal is not None:
        name, message = refusal
        return BodyReply(400, envelope(message, error_type="invalid_request_error", param=name))
    litellm = await litellm_module()
    key = api_key.get_secret_value() if api_key is not None else "none"
    settings = call_settings(where, key, timeout)
    model = where.bare_model
    if api is Api.COMPLETIONS:
        chosen = {name: body[name] for name in TEXT_PARAMETERS if name in body}
        arguments = with_max_tokens(chosen, OUTPUT_LIMITS, where)
        call = litellm.atext_completion(
            prompt=body["prompt"], stream=stream, **settings, **arguments
        )
        return await _bridge(
            call, stream, errors, lambda r: _text_json(r, model), lambda c: _text_event(c, model)
        )
    if api is Api.MESSAGES:
        arguments = {name: body[name] for name in MESSAGES_FIELDS if name in body}
        call = litellm.anthropic_interface.messages.acreate(stream=stream, **settings, **arguments)
        return await _bridge(
            call,
            stream,
            errors,
            lambda r: orjson.dumps({**r, "model": model}),
            lambda e: _framed(e, backend.name),
            trailer=b"",
        )
    arguments = {name: body[name] for name in RESPONSES_FIELDS if name in body}
    call = litellm.aresponses(stream=stream, use_chat_completions_api=True, **settings, **arguments)
    return await _bridge(
        call,
        stream,
        errors,
        lambda r: orjson.dumps(_response_dict(r, model)),
        lambda e: _response_event(e, model),
        trailer=b"",
    )


#: What each bridged API accepts: the fields carried, plus those accepted and not carried.
ACCEPTED = {
    Api.COMPLETIONS: TEXT_PARAMETERS | {"prompt"},
    Api.MESSAGES: MESSAGES_FIELDS,
    Api.RESPONSES: RESPONSES_FIELDS | RESPONSES_HINTS | {"previous_response_id"},
}
_NAMES = {Api.COMPLETIONS: "/v1/completions", Api.MESSAGES: "Messages", Api.RESPONSES: "Responses"}


def _uncarried(
    body: Mapping[str, Any], api: Api, backend: str, *, chat: bool
) -> tuple[str, str] | None:
    """The first field of ``body`` the translation of ``api`` cannot carry and why, or None.
    ``suffix`` comes first (fill-in-the-middle has no place in a chat request); Messages'
    ``thinking`` cannot reach chat completions (LiteLLM would send ``reasoning_effort``, which
    the OpenAI-compatible chat client refuses)."""
    unsupported = sorted(set(body) - ACCEPTED[api] - {"model", "stream"})
    if api is Api.COMPLETIONS and body.get("suffix") is not None:
        unsupported.insert(0, "suffix")
    if api is Api.MESSAGES and chat and _thinking(body.get("thinking")):
        unsupported.insert(0, "thinking")
    if not unsupported:
        return None
    name = unsupported[0]
    message = (
        f"'{name}' cannot be sent to backend '{backend}': it does not speak the {_NAMES[api]} "
        "API natively and the translation onto its chat completions cannot carry it (send it "
        f"to a backend whose apis include {api.value})"
    )
    return name, message


def _images(
    body: Mapping[str, Any], backend: str, label: str, provider: str, fetch: bool
) -> tuple[str, str] | None:
    refusal = refuse_remote_images(
        bridged_images(body), backend=backend, provider=provider, fetch_remote_images=fetch
    )
    if refusal is None:
        return None
    return refusal.param or "image", refusal.message.replace(f"({provider})", f"({label})", 1)


def _thinking(value: Any) -> bool:
    """Whether a Messages ``thinking`` setting asks for extended thinking."""
    return isinstance(value, Mapping) and value.get("type") not in (None, "disabled")


async def _bridge(
    call: Awaitable[Any],
    stream: bool,
    errors: LiteLLMErrors,
    whole: Callable[[Any], bytes],
    event: Callable[[Any], bytes | None],
    trailer: bytes = DONE,
) -> Reply:
    """Await LiteLLM's ``call``: its answer rendered by ``whole``, or its stream (read up to the
    first event) rendered by ``event`` and ended by ``trailer``; its exceptions become ours."""
    try:
        response = await call
        if not stream:
            return BodyReply(200, whole(response))
        return await first_event(response, event, trailer, errors)
    except Exception as exc:  # the border: LiteLLM's exceptions become ours
        return errors.reply_or_raise(exc)


def _response_dict(value: Any, model: str) -> dict[str, Any]:
    data: dict[str, Any] = value.model_dump(mode="json", exclude_none=True)
    data.pop("provider_specific_fields", None)
    if data.get("object") == "response":
        data["model"] = model
    inner = data.get("response")
    if isinstance(inner, dict):
        inner.pop("provider_specific_fields", None)
        inner["model"] = model
    return data


def _response_event(event: Any, model: str) -> bytes:
    data = _response_dict(event, model)
    return b"event: " + str(data["type"]).encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _framed(event: Any, backend: str) -> bytes | None:
    """An SSE event LiteLLM's Messages adapter already framed. The adapter reports a failure
    in the middle of the stream as its own ``event: error`` frame and ends normally: raised here,
    so the gateway ends the stream with one error event of its own (or fails over, before the
    first event)."""
    if not isinstance(event, bytes) or not event:
        return None
    if event.startswith(b"event: error"):
        raise UpstreamError("the translated stream failed", backend=backend, body=event)
    return event


def _text_dict(response: Any, model: str) -> dict[str, Any]:
    data: dict[str, Any] = response.model_dump(exclude_none=False)
    data["model"] = model
    for choice in data.get("choices") or ():
        choice.pop("reasoning_content", None)
        if choice.get("text") is None:
            choice["text"] = ""
    return data


def _text_json(response: Any, model: str) -> bytes:
    return orjson.dumps(_text_dict(response, model))


def _text_event(chunk: Any, model: str) -> bytes:
    data = _text_dict(chunk, model)
    if data.get("usage") is None:
        data.pop("usage", None)
    return b"data: " + orjson.dumps(data) + b"\n\n"


async def first_event(
    stream: Any, render: Callable[[Any], bytes | None], trailer: bytes, errors: LiteLLMErrors
) -> Reply:
    """Read ``stream`` up to its first rendered event, so that failures before it are
    failovers; the rest is read as the client reads."""
    iterator = aiter(stream)
    while True:
        try:
            chunk = await anext(iterator)
        except StopAsyncIteration:
            return BridgedStream(stream, None, render, trailer, errors)
        except BaseException:
            await BridgedStream(stream, None, render, trailer, errors).aclose()
            raise
        event = render(chunk)
        if event is not None:
            return BridgedStream(stream, event, render, trailer, errors)


class BridgedStream:
    """A LiteLLM stream rendered event by event; its first event was read already."""

    status_code = 200
    content_type: str | None = "text/event-stream"

    def __init__(
        self,
        stream: Any,
        first: bytes | None,
        render: Callable[[Any], bytes | None],
        trailer: bytes,
        errors: LiteLLMErrors,
    ) -> None:
        self._stream, self._first, self._render = stream, first, render
        self._trailer, self._errors = trailer, errors

    async def chunks(self) -> AsyncIterator[bytes]:
        if self._first is not None:
            yield self._first
            try:
                async for chunk in self._stream:
                    event = self._render(chunk)
                    if event is not None:
                        yield event
            except UpstreamError:
                raise
            except Exception as exc:  # the border: LiteLLM's exceptions become ours
                raise self._errors.upstream(exc) from None
        if self._trailer:
            yield self._trailer

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.chunks()])

    async def aclose(self) -> None:
        close = getattr(self._stream, "aclose", None)
        if close is None:
            return
        try:
            await close()
        except Exception as exc:  # closing a broken stream may fail again; nothing to do
            logger.debug("closing a LiteLLM stream failed: {}", type(exc).__name__)
