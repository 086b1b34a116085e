"""Health probes against real fake upstreams speaking each provider's wire format."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest

from nexus.backends.state import ModelInfo, ProbeResult
from nexus.config.model import BackendConfig
from nexus.errors import Failure
from nexus.health.probes import MAX_PAGES, ShowCache, probe, probe_all
from tests.fakes import (
    FakeAnthropic,
    FakeGemini,
    FakeModel,
    FakeOllama,
    FakeOpenAI,
    FakeUpstream,
)
from tests.fakes.fixtures import StartFake

OPENAI_KEY = "sk-test-0123456789abcdef"
ANTHROPIC_KEY = FakeAnthropic.api_key
GEMINI_KEY = FakeGemini.api_key
ENV = {
    "OPENAI_API_KEY": OPENAI_KEY,
    "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
    "GEMINI_API_KEY": GEMINI_KEY,
    "MISTRAL_API_KEY": "mistral-secret",
}
KEY_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY", "google": "GEMINI_API_KEY"}
FAKE_OF: dict[str, type[FakeUpstream]] = {
    "ollama": FakeOllama,
    "vllm": FakeOpenAI,
    "llamacpp": FakeOpenAI,
    "openai": FakeOpenAI,
    "anthropic": FakeAnthropic,
    "google": FakeGemini,
}
LISTING = {
    "ollama": "/api/tags",
    "vllm": "/v1/models",
    "llamacpp": "/v1/models",
    "openai": "/v1/models",
    "anthropic": "/v1/models",
    "google": "/v1beta/models",
}
TIMEOUT = 2.0


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def backend(type_: str, url: str, **fields: object) -> BackendConfig:
    data: dict[str, object] = {"name": f"{type_}-1", "url": url, "type": type_}
    if type_ in KEY_ENV:
        data["api_key_env"] = KEY_ENV[type_]
    return BackendConfig.model_validate({**data, **fields})


def serve(start_fake: StartFake, type_: str, *models: FakeModel | str) -> FakeUpstream:
    """A started fake for ``type_`` serving ``models`` and accepting the test keys."""
    fake = start_fake(FAKE_OF[type_])
    fake.set_models(*(models or ("model-a",)))
    if isinstance(fake, FakeOpenAI) and type_ == "openai":
        fake.api_key, fake.context_field = OPENAI_KEY, None
    return fake


async def run(
    config: BackendConfig, client: httpx.AsyncClient, timeout: float = TIMEOUT, **kw: object
) -> ProbeResult:
    return await probe(config, client, timeout=timeout, environ=ENV, **kw)  # type: ignore[arg-type]


def ids(result: ProbeResult) -> list[str]:
    assert result.models is not None, result
    return [m.id for m in result.models]


def by_id(result: ProbeResult) -> dict[str, ModelInfo]:
    assert result.models is not None, result
    return {m.id: m for m in result.models}


# -- Ollama ------------------------------------------------------------------------------------


async def test_ollama_models_capabilities_and_context(fake_ollama, client) -> None:
    fake_ollama.set_models(
        FakeModel("llama3.1:8b", context_length=131072, tools=True),
        FakeModel("llava:7b", context_length=4096, vision=True),
        FakeModel("phi3:mini"),
    )
    result = await run(backend("ollama", fake_ollama.url), client)
    assert result.ok and result.failure is None and result.error is None
    assert ids(result) == ["llama3.1:8b", "llava:7b", "phi3:mini"]
    models = by_id(result)
    # Ollama 0.6+ reports capabilities: what it does not list is known to be unsupported.
    assert models["llama3.1:8b"] == ModelInfo("llama3.1:8b", 131072, False, True, True)
    assert models["llava:7b"] == ModelInfo("llava:7b", 4096, True, False, True)
    assert models["phi3:mini"] == ModelInfo("phi3:mini", None, False, False, True)
    assert [r.json() for r in fake_ollama.requests_to("/api/show", "POST")] == [
        {"model": "llama3.1:8b"},
        {"model": "llava:7b"},
        {"model": "phi3:mini"},
    ]
    assert result.latency_ms is not None and result.latency_ms > 0


async def test_ollama_show_results_are_cached(fake_ollama, client) -> None:
    fake_ollama.set_models(FakeModel("a:1", 8192, tools=True), FakeModel("b:1", 2048))
    config, cache = backend("ollama", fake_ollama.url), ShowCache()
    first = await run(config, client, show_cache=cache)
    second = await run(config, client, show_cache=cache)
    assert first == ProbeResult(True, first.latency_ms, first.models)
    assert second.models == first.models
    assert len(fake_ollama.requests_to("/api/tags")) == 2
    assert len(fake_ollama.requests_to("/api/show")) == 2  # once per model, not per probe
    assert len(cache) == 2


async def test_ollama_without_cache_asks_every_time(fake_ollama, client) -> None:
    fake_ollama.set_models("a:1")
    config = backend("ollama", fake_ollama.url)
    await run(config, client)
    await run(config, client)
    assert len(fake_ollama.requests_to("/api/show")) == 2


async def test_ollama_cache_is_refreshed_when_the_digest_changes(fake_ollama, client) -> None:
    fake_ollama.set_models(FakeModel("a:1", 2048))
    config, cache = backend("ollama", fake_ollama.url), ShowCache()
    await run(config, client, show_cache=cache)
    fake_ollama.set_models(FakeModel("a:1", 8192, extra={"digest": "re-pulled"}))
    result = await run(config, client, show_cache=cache)
    assert by_id(result)["a:1"].context_length == 8192
    assert len(fake_ollama.requests_to("/api/show")) == 2


async def test_ollama_failing_show_falls_back_to_name_heuristics(fake_ollama, client) -> None:
    fake_ollama.set_models(FakeModel("llava:13b", 4096, vision=True), "mistral:7b")
    fake_ollama.respond(500, path="/api/show")
    cache = ShowCache()
    result = await run(backend("ollama", fake_ollama.url), client, show_cache=cache)
    assert result.ok
    assert by_id(result)["llava:13b"] == ModelInfo("llava:13b", None, vision=True, json_mode=True)
    assert by_id(result)["mistral:7b"] == ModelInfo("mistral:7b", None, json_mode=True)
    assert len(cache) == 0  # failures are not cached: the next probe asks again
    fake_ollama.reset()
    result = await run(backend("ollama", fake_ollama.url), client, show_cache=cache)
    assert by_id(result)["llava:13b"].context_length == 4096


@pytest.mark.parametrize("broken", [b"not json", b'{"model_info": 5}'])
async def test_ollama_malformed_show_does_not_fail_the_probe(fake_ollama, client, broken) -> None:
    fake_ollama.set_models("llama3:8b")
    fake_ollama.respond(body=broken, path="/api/show")
    result = await run(backend("ollama", fake_ollama.url), client)
    assert result.ok and ids(result) == ["llama3:8b"]


async def test_ollama_hanging_show_still_answers_within_the_timeout(fake_ollama, client) -> None:
    fake_ollama.set_models("llava:7b", "qwen2.5:7b")
    fake_ollama.hang(path="/api/show")
    started = time.monotonic()
    result = await run(backend("ollama", fake_ollama.url), client, timeout=1.0)
    assert time.monotonic() - started < 1.0 + 0.3
    assert result.ok, result
    assert by_id(result)["llava:7b"].vision


async def test_ollama_without_capabilities_field_uses_heuristics(fake_ollama, client) -> None:
    fake_ollama.show_capabilities = False  # Ollama before 0.6
    fake_ollama.set_models(FakeModel("llava:7b", 4096), FakeModel("nous-hermes2:10.7b", 4096))
    result = await run(backend("ollama", fake_ollama.url), client)
    assert by_id(result)["llava:7b"] == ModelInfo("llava:7b", 4096, True, None, True)
    hermes = by_id(result)["nous-hermes2:10.7b"]
    assert hermes.tools and hermes.vision is None and hermes.context_length == 4096


async def test_ollama_url_with_v1_is_probed_at_its_root(fake_ollama, client) -> None:
    fake_ollama.set_models("a:1")
    result = await run(backend("ollama", fake_ollama.url + "/v1"), client)
    assert result.ok
    assert [r.path for r in fake_ollama.requests] == ["/api/tags", "/api/show"]


async def test_ollama_configured_model_matches_its_latest_tag(fake_ollama, client) -> None:
    fake_ollama.set_models(FakeModel("llama3:latest", 8192, tools=True), "other:1")
    config = backend("ollama", fake_ollama.url, models=["llama3", "absent:1"])
    result = await run(config, client)
    assert ids(result) == ["llama3", "absent:1"]
    assert by_id(result)["llama3"] == ModelInfo("llama3", 8192, False, True, True)
    assert [r.json() for r in fake_ollama.requests_to("/api/show")] == [{"model": "llama3:latest"}]


# -- OpenAI-compatible -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_", "context_field"),
    [
        ("vllm", "max_model_len"),
        ("llamacpp", "meta.n_ctx_train"),
        ("lmstudio", "context_length"),
        ("generic", None),
    ],
)
async def test_openai_compatible_listing(start_fake, client, type_, context_field) -> None:
    fake = start_fake(FakeOpenAI)
    fake.context_field = context_field
    fake.set_models(FakeModel("Qwen/Qwen2.5-7B", 32768), FakeModel("llava-hf/llava-1.5", 4096))
    result = await run(backend(type_, fake.url), client)
    assert result.ok
    known = 32768 if context_field else None
    assert by_id(result)["Qwen/Qwen2.5-7B"].context_length == known
    assert by_id(result)["llava-hf/llava-1.5"].vision
    assert [r.path for r in fake.requests] == ["/v1/models"]
    assert "authorization" not in fake.requests[0].headers


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/"])
async def test_openai_path_is_never_doubled(fake_openai, client, suffix) -> None:
    result = await run(backend("vllm", fake_openai.url + suffix), client)
    assert result.ok
    assert [r.path for r in fake_openai.requests] == ["/v1/models"]


async def test_openai_cloud_sends_bearer_key(start_fake, client) -> None:
    fake = serve(start_fake, "openai", "gpt-4o", "gpt-3.5-turbo", "text-embedding-3-small")
    result = await run(backend("openai", fake.url + "/v1"), client)
    assert result.ok
    assert fake.requests[0].headers["authorization"] == f"Bearer {OPENAI_KEY}"
    models = by_id(result)
    assert models["gpt-4o"].vision and models["gpt-4o"].tools and models["gpt-4o"].json_mode
    assert models["gpt-3.5-turbo"].tools and not models["gpt-3.5-turbo"].vision
    assert models["text-embedding-3-small"] == ModelInfo("text-embedding-3-small")
    assert OPENAI_KEY not in repr(result)


async def test_configured_models_restrict_and_order(fake_openai, client) -> None:
    fake_openai.set_models(FakeModel("a", 1000), FakeModel("b", 2000), FakeModel("c", 3000))
    config = backend("vllm", fake_openai.url, models=["c", "alias-not-listed", "a"])
    result = await run(config, client)
    assert result.models == (
        ModelInfo("c", 3000, json_mode=True),
        ModelInfo("alias-not-listed", None, json_mode=True),
        ModelInfo("a", 1000, json_mode=True),
    )


# -- Anthropic ---------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", "/v1"])
async def test_anthropic_lists_models_with_exact_headers(fake_anthropic, client, suffix) -> None:
    fake_anthropic.set_models("claude-sonnet-4-20250514", "claude-3-5-haiku-20241022")
    result = await run(backend("anthropic", fake_anthropic.url + suffix), client)
    assert result.ok, result
    assert ids(result) == ["claude-sonnet-4-20250514", "claude-3-5-haiku-20241022"]
    haiku = by_id(result)["claude-3-5-haiku-20241022"]
    assert haiku == ModelInfo(haiku.id, 200_000, vision=True, tools=True)
    [request] = fake_anthropic.requests
    assert (request.method, request.path) == ("GET", "/v1/models")
    assert request.headers["x-api-key"] == ANTHROPIC_KEY
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in request.headers
    assert fake_anthropic.requests_to("/v1/messages") == []  # never spends tokens


async def test_anthropic_follows_pagination(fake_anthropic, client) -> None:
    names = [f"claude-3-m{i}" for i in range(5)]
    fake_anthropic.set_models(*names)
    fake_anthropic.max_page_size = 2
    result = await run(backend("anthropic", fake_anthropic.url), client)
    assert ids(result) == names
    assert [r.query.get("after_id") for r in fake_anthropic.requests] == [
        None,
        "claude-3-m1",
        "claude-3-m3",
    ]


# -- Gemini ------------------------------------------------------------------------------------


async def test_gemini_filters_strips_prefix_and_reads_limits(fake_gemini, client) -> None:
    fake_gemini.set_models(
        FakeModel("gemini-1.5-pro", 2_097_152),
        FakeModel("text-embedding-004", 2048, methods=("embedContent",)),
        FakeModel("gemini-2.0-flash", 1_048_576),
        FakeModel("aqa", 7168, methods=("generateAnswer",)),
    )
    result = await run(backend("google", fake_gemini.url), client)
    assert result.ok, result
    assert ids(result) == ["gemini-1.5-pro", "gemini-2.0-flash"]
    pro = by_id(result)["gemini-1.5-pro"]
    assert pro == ModelInfo("gemini-1.5-pro", 2_097_152, vision=True, tools=True, json_mode=True)
    [request] = fake_gemini.requests
    assert request.path == "/v1beta/models"
    assert request.headers["x-goog-api-key"] == GEMINI_KEY
    assert "key" not in request.query
    assert GEMINI_KEY not in str(request.query)


async def test_gemini_pagination(fake_gemini, client) -> None:
    fake_gemini.max_page_size = 2
    names = [f"gemini-2.0-m{i}" for i in range(5)]
    fake_gemini.set_models(*names)
    result = await run(backend("google", fake_gemini.url + "/v1beta"), client)
    assert ids(result) == names
    assert [r.query.get("pageToken") for r in fake_gemini.requests] == [None, "2", "4"]
    assert {r.path for r in fake_gemini.requests} == {"/v1beta/models"}


async def test_gemini_pagination_is_bounded(fake_gemini, client) -> None:
    fake_gemini.max_page_size = 1
    fake_gemini.set_models(*(f"gemini-2.0-m{i}" for i in range(MAX_PAGES + 5)))
    result = await run(backend("google", fake_gemini.url), client)
    assert result.ok
    assert len(fake_gemini.requests) == MAX_PAGES
    assert len(ids(result)) == MAX_PAGES


async def test_gemini_invalid_key_400_is_an_auth_failure(fake_gemini, client) -> None:
    fake_gemini.api_key = "the-right-one"  # Google answers a wrong key with 400 API_KEY_INVALID
    result = await run(backend("google", fake_gemini.url), client)
    assert (result.failure, result.error) == (Failure.AUTH, "API key rejected (GEMINI_API_KEY)")
    assert GEMINI_KEY not in repr(result)


# -- static (other LiteLLM providers) ----------------------------------------------------------


async def test_static_backend_makes_no_request() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"unexpected request {request.url}")

    config = backend(
        "mistral",
        "https://api.mistral.ai/v1",
        api_key_env="MISTRAL_API_KEY",
        models=["mistral-large-latest", "codestral-latest"],
    )
    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as client:
        result = await run(config, client)
        missing = await probe(config, client, timeout=1, environ={})
    assert result.ok and ids(result) == ["mistral-large-latest", "codestral-latest"]
    assert (missing.failure, missing.error) == (
        Failure.AUTH,
        "environment variable MISTRAL_API_KEY is not set",
    )


# -- credentials -------------------------------------------------------------------------------


@pytest.mark.parametrize("type_", ["openai", "anthropic", "google"])
@pytest.mark.parametrize(
    ("environ", "problem"), [({}, "is not set"), ({"X": "1"}, "is not set"), (None, "is empty")]
)
async def test_missing_or_empty_key_makes_no_request(
    start_fake, client, type_, environ, problem
) -> None:
    fake = serve(start_fake, type_)
    env_var = KEY_ENV[type_]
    environ = {env_var: "  "} if environ is None else environ
    result = await probe(backend(type_, fake.url), client, timeout=2, environ=environ)
    assert result == ProbeResult.failed(Failure.AUTH, f"environment variable {env_var} {problem}")
    assert fake.requests == []


@pytest.mark.parametrize("type_", ["openai", "anthropic", "google"])
@pytest.mark.parametrize("status", [401, 403])
async def test_rejected_key_is_auth_failure_naming_the_env_var(
    start_fake, client, type_, status
) -> None:
    fake = serve(start_fake, type_)
    fake.respond(status, body=f"bad key {ENV[KEY_ENV[type_]]}")  # bodies may echo the key
    result = await run(backend(type_, fake.url), client)
    assert (result.ok, result.failure) == (False, Failure.AUTH)
    assert result.error == f"API key rejected ({KEY_ENV[type_]})"
    assert ENV[KEY_ENV[type_]] not in repr(result)


async def test_openai_wrong_key_never_leaks(fake_openai, client) -> None:
    fake_openai.api_key = "the-right-one"  # the fake's 401 body echoes what was sent
    result = await run(backend("openai", fake_openai.url), client)
    assert result.error == "API key rejected (OPENAI_API_KEY)"
    assert OPENAI_KEY not in repr(result)


# -- failures, for every wire format ------------------------------------------------------------

TYPES = ["ollama", "vllm", "openai", "anthropic", "google"]


@pytest.mark.parametrize("type_", TYPES)
async def test_hanging_backend_times_out_within_the_limit(start_fake, client, type_) -> None:
    fake = serve(start_fake, type_)
    fake.hang()
    started = time.monotonic()
    result = await run(backend(type_, fake.url), client, timeout=0.5)
    assert time.monotonic() - started < 0.5 + 0.3
    assert (result.failure, result.error) == (Failure.TIMEOUT, "probe timed out after 0.5s")
    assert result.models is None


async def test_timeout_message_uses_whole_seconds(fake_openai, client) -> None:
    fake_openai.delay(1.5)
    result = await run(backend("vllm", fake_openai.url), client, timeout=1)
    assert result.error == "probe timed out after 1s"


@pytest.mark.parametrize("type_", TYPES)
async def test_refused_connection(client, refused_url, type_) -> None:
    result = await run(backend(type_, refused_url), client)
    assert (result.failure, result.error) == (Failure.REFUSED, "connection refused")


@pytest.mark.parametrize("type_", TYPES)
@pytest.mark.parametrize(
    ("status", "failure"),
    [
        (500, Failure.SERVER_ERROR),
        (503, Failure.SERVER_ERROR),
        (429, Failure.RATE_LIMITED),
        (404, Failure.BAD_RESPONSE),
        (400, Failure.BAD_RESPONSE),
    ],
)
async def test_http_errors(start_fake, client, type_, status, failure) -> None:
    fake = serve(start_fake, type_)
    fake.respond(status)
    result = await run(backend(type_, fake.url), client)
    assert (result.ok, result.failure) == (False, failure)
    assert result.error is not None
    assert result.error.startswith(f"HTTP {status} from GET {LISTING[type_]}")
    assert result.latency_ms is not None


@pytest.mark.parametrize("type_", TYPES)
@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"<html>oops</html>", "invalid JSON"),
        (b'{"models": 5, "data": 5}', "unexpected JSON shape"),
        (b"[]", "unexpected JSON shape"),
    ],
)
async def test_malformed_listing(start_fake, client, type_, body, why) -> None:
    fake = serve(start_fake, type_)
    fake.respond(body=body)
    result = await run(backend(type_, fake.url), client)
    assert (result.failure, result.error) == (
        Failure.BAD_RESPONSE,
        f"{why} from GET {LISTING[type_]}",
    )


async def test_latency_is_measured(fake_openai, client) -> None:
    fake_openai.delay(0.2)
    result = await run(backend("vllm", fake_openai.url), client)
    assert result.ok and result.latency_ms is not None
    assert 200 <= result.latency_ms < 1000


async def test_empty_listing_is_a_success(fake_openai, client) -> None:
    fake_openai.set_models()
    result = await run(backend("vllm", fake_openai.url), client)
    assert result == ProbeResult(True, result.latency_ms, ())


# -- probe_all ---------------------------------------------------------------------------------


async def test_probe_all_fifty_backends_ten_hanging(start_fake, client) -> None:
    fakes = {type_: serve(start_fake, type_) for type_ in ("ollama", "vllm", "openai")}
    fakes["anthropic"] = serve(start_fake, "anthropic", "claude-3-5-haiku-20241022")
    fakes["google"] = serve(start_fake, "google", "gemini-2.0-flash")
    hanging = start_fake(FakeOpenAI)
    hanging.hang()
    types = list(fakes)
    configs = [
        backend(types[i % len(types)], fakes[types[i % len(types)]].url, name=f"b{i:02}")
        for i in range(40)
    ] + [backend("vllm", hanging.url, name=f"hang{i}") for i in range(10)]
    started = time.monotonic()
    # 2 s: the 40 good probes and the fakes share this process (and its GIL) with the others; at
    # 1 s an Ollama probe (listing, then its /api/show calls) once ran out of time on a loaded CI
    results = await probe_all(configs, client, timeout=2.0, environ=ENV, show_cache=ShowCache())
    assert time.monotonic() - started < 2.0 + 0.75, "concurrent: about one timeout in all"
    assert list(results) == [c.name for c in configs]
    assert all(results[f"b{i:02}"].ok for i in range(40)), results
    assert {results[f"hang{i}"].failure for i in range(10)} == {Failure.TIMEOUT}
