"""A known API key (the canary) fed through every path never shows up in any output or log.

The key is the credential of two cloud backends: one whose chat answers 401 and embeddings 502
with a body that echoes the key (as OpenAI does), one whose model listing (the health probe)
does. The test sends JSON, streaming and embeddings requests, reads every admin and
observability endpoint, the dashboard and its events, runs ``nexus config check``, and greps all
of it, with every log record at TRACE level, for the key. The same again for a real
``nexus serve`` and its stderr (JSON log lines: one object per line with timestamp, level,
message and the bound fields).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from nexus.api.dashboard import state_events
from nexus.observability.logs import configure_logging
from tests.api.gateway import CHAT, chat_body
from tests.e2e.configs import gateway as serve_gateway
from tests.e2e.configs import nexus_toml
from tests.fakes.chat import EMBEDDINGS_PATH, openai_error
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import FakeModel
from tests.observability.observed import observed, restore_default_logging

CANARY = "sk-canary-7f3e9b1c4d2a8e6f0b5c"
ENV = {"CANARY_KEY": CANARY}
ADMIN_PATHS = (
    "/v1/backends",
    "/v1/models",
    "/v1/route?model=gpt-4o",
    "/v1/route?model=other",
    "/health",
    "/health/ready",
    "/metrics",
    "/v1/stats",
    "/v1/history",
    "/",
)


@pytest.fixture
def trace_logs() -> Iterator[None]:
    """Every log record as a JSON line on stderr, then loguru's default handler again."""
    configure_logging("trace", "json")
    yield
    restore_default_logging()


def echoing_fakes(start_fake) -> tuple[FakeOpenAI, FakeOpenAI]:
    """``rejects``: probes pass, chat answers 401 and embeddings 502, both echoing the key;
    ``probe_rejects``: expects another key, so its probe gets OpenAI's 401 with the key in it."""
    rejects, probe_rejects = start_fake(FakeOpenAI), start_fake(FakeOpenAI)
    rejects.api_key = CANARY
    rejects.set_models(FakeModel("gpt-4o"))
    echo = openai_error(f"Incorrect API key provided: {CANARY}.", "invalid_request_error")
    rejects.respond(401, json_body=echo, path=CHAT)
    rejects.respond(502, json_body=echo, path=EMBEDDINGS_PATH)  # relayed to the client, scrubbed
    probe_rejects.api_key = "sk-the-right-one"
    probe_rejects.set_models(FakeModel("gpt-4o"))
    return rejects, probe_rejects


def cloud_backends(rejects: FakeOpenAI, probe_rejects: FakeOpenAI) -> list[dict[str, object]]:
    common = {"type": "openai", "api_key_env": "CANARY_KEY"}
    return [
        {"name": "cloud", "url": rejects.url, **common},
        {"name": "cloud-b", "url": probe_rejects.url, **common},
    ]


def everything(response: httpx.Response) -> str:
    return str(dict(response.headers)) + response.text


def requests_sent() -> list[tuple[str, dict[str, object]]]:
    return [
        ("/v1/embeddings", {"model": "gpt-4o", "input": "hi"}),  # 502 with the key in its body
        (CHAT, chat_body("gpt-4o", stream=True)),  # 401: the backend is out at once
        (CHAT, chat_body("gpt-4o")),  # 503 naming the env var
    ]


async def test_the_key_never_appears_in_process(start_fake, trace_logs, capfd) -> None:
    rejects, probe_rejects = echoing_fakes(start_fake)
    backends = cloud_backends(rejects, probe_rejects)
    seen: list[str] = []
    async with observed(backends, environ=ENV) as gw:
        for path, body in requests_sent():
            response = await gw.client.post(path, json=body)
            assert response.status_code >= 400
            seen.append(everything(response))
        for path in ADMIN_PATHS:
            seen.append(everything(await gw.client.get(path)))
        stream = state_events(gw.app.gateway)
        seen += [(await anext(stream)).decode(), (await anext(stream)).decode()]
        await stream.aclose()
        statuses = gw.statuses()
    output = capfd.readouterr()
    assert statuses == {"cloud": "unhealthy", "cloud-b": "unhealthy"}
    assert any(r.headers.get("authorization") == f"Bearer {CANARY}" for r in rejects.requests)
    assert "API key rejected (CANARY_KEY)" in "".join(seen), "the failure is still explained"
    assert output.err.count('"level"') > 5, "logs were captured"
    for text in (*seen, output.out, output.err):
        assert CANARY not in text


def test_config_check_output_masks_the_key(tmp_path: Path) -> None:
    path = tmp_path / "nexus.toml"
    backends = [{"name": "cloud", "url": "http://127.0.0.1:9", "type": "openai"}]
    path.write_text(nexus_toml([{**b, "api_key_env": "CANARY_KEY"} for b in backends]))
    result = subprocess.run(
        [str(Path(sys.executable).with_name("nexus")), "config", "check", "--config", str(path)],
        env={"PATH": "/usr/bin:/bin", "CANARY_KEY": CANARY},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert '"api_key": "****"' in result.stdout
    assert CANARY not in result.stdout + result.stderr


@pytest.mark.e2e
def test_the_key_never_appears_from_nexus_serve(
    start_fake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rejects, probe_rejects = echoing_fakes(start_fake)
    backends = cloud_backends(rejects, probe_rejects)
    env = {**ENV, "NEXUS_LOG_FORMAT": "json", "NEXUS_LOG_LEVEL": "trace"}
    seen: list[str] = []
    with serve_gateway(tmp_path, backends, env=env) as gw:
        with httpx.Client(base_url=gw.url, timeout=10) as client:
            for path, body in requests_sent():
                seen.append(everything(client.post(path, json=body)))
            seen += [everything(client.get(path)) for path in ADMIN_PATHS]
            with client.stream("GET", "/dashboard/events") as events:
                sse = events.iter_lines()
                seen += [next(sse) for _ in range(4)]  # retry, blank, event, data
        code, stderr = gw.served.stop()
    assert code == 0
    lines = [line for line in stderr.splitlines() if line.strip()]
    # A log call inside a signal handler breaks this: loguru refuses to re-enter a sink and
    # prints a plain-text "Logging error" block instead.
    others = [line for line in lines if not line.startswith("{")]
    assert not others, "not one JSON object a line:\n" + "\n".join(others)
    records = [orjson.loads(line) for line in lines]
    assert all({"timestamp", "level", "message"} <= set(record) for record in records)
    answered = [r for r in records if "request_id" in r and "status" in r]
    assert len(answered) == 3 and {r["backend"] for r in answered} == {"cloud", "none"}
    assert any("API key rejected (CANARY_KEY)" in text for text in seen)
    for text in (*seen, stderr):
        assert CANARY not in text
