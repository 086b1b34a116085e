"""Request content never reaches the log: a real ``nexus serve`` at TRACE level with JSON logs,
requests carrying a unique marker in every content field, over relayed local and cloud backends
and a translated one, successes and errors alike; afterwards the marker is nowhere in its stderr,
and every line is one JSON object."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.configs import backend, gateway
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import FakeModel

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

MARKER = "zq-private-7e41c9"
CLAUDE = "claude-3-5-sonnet-20241022"
CHAT = "/v1/chat/completions"
ENV = {"NEXUS_LOG_FORMAT": "json", "NEXUS_LOG_LEVEL": "trace"}


def chat(model: str, *, stream: bool = False, **extra: Any) -> dict[str, Any]:
    messages = [
        {"role": "system", "content": f"system {MARKER}"},
        {"role": "user", "content": [{"type": "text", "text": f"user {MARKER}"}]},
    ]
    return {"model": model, "messages": messages, "stream": stream, "user": MARKER, **extra}


TOOLS = [{"type": "function", "function": {"name": "f", "description": MARKER, "parameters": {}}}]


def requests() -> list[tuple[str, bytes | dict[str, Any]]]:
    return [
        (CHAT, chat("m")),
        (CHAT, chat("m", stream=True, tools=TOOLS)),
        (CHAT, chat("gpt-4o")),
        (CHAT, chat("gpt-4o", stream=True)),
        (CHAT, chat(CLAUDE)),
        (CHAT, chat(CLAUDE, stream=True)),
        (CHAT, chat(CLAUDE, x_vendor=MARKER)),  # a DEBUG line names the field it did not send
        (CHAT, chat(CLAUDE, logit_bias={"1": 1})),  # the provider refuses it: a 400
        (CHAT, chat("no-such-model")),  # 404
        (CHAT, chat("broken")),  # every candidate answers 500
        (CHAT, b'{"model": "m", "messages": [{"content": "' + MARKER.encode() + b'"'),  # 400
        (CHAT, {"model": "m", "messages": MARKER}),  # 400
        ("/v1/embeddings", {"model": "m", "input": [MARKER, MARKER]}),
        ("/v1/embeddings", {"model": "gpt-4o", "input": MARKER}),
    ]


def json_lines(stderr: str) -> list[dict[str, Any]]:
    lines = [line for line in stderr.splitlines() if line.strip()]
    others = [line for line in lines if not line.startswith("{")]
    assert not others, "not one JSON object a line:\n" + "\n".join(others)
    return [json.loads(line) for line in lines]


def test_request_content_is_never_logged(tmp_path: Path) -> None:
    with (
        FakeOpenAI([FakeModel("m"), FakeModel("broken")]) as local,
        FakeOpenAI([FakeModel("gpt-4o")]) as cloud,
        FakeAnthropic([CLAUDE]) as claude,
    ):
        cloud.api_key = "sk-cloud"
        backends = [
            backend("gpu", local.url),
            backend("openai", cloud.url, "openai", api_key_env="OPENAI_KEY"),
            backend("claude", claude.url, "anthropic", api_key_env="ANTHROPIC_KEY"),
        ]
        env = {**ENV, "OPENAI_KEY": "sk-cloud", "ANTHROPIC_KEY": claude.api_key}
        with gateway(tmp_path, backends, env=env) as gw, httpx.Client(timeout=30) as client:
            statuses = []
            for path, body in requests():
                if isinstance(body, dict) and body.get("model") == "broken":
                    local.server_error(500, times=1)
                content = body if isinstance(body, bytes) else json.dumps(body).encode()
                headers = {"content-type": "application/json"}
                response = client.post(f"{gw.url}{path}", content=content, headers=headers)
                statuses.append(response.status_code)
            code, stderr = gw.served.stop()
    assert code == 0
    assert statuses == [200, 200, 200, 200, 200, 200, 200, 400, 404, 500, 400, 400, 200, 200]
    records = json_lines(stderr)
    assert sum(1 for r in records if "status" in r) == len(statuses), "every request logged"
    assert any(r["level"] == "DEBUG" and "x_vendor" in r["message"] for r in records)
    assert MARKER not in stderr


def test_a_translated_image_url_is_never_logged(tmp_path: Path) -> None:
    with FakeAnthropic([FakeModel(CLAUDE, vision=True)]) as claude:
        backends = [backend("claude", claude.url, "anthropic", api_key_env="ANTHROPIC_KEY")]
        env = {**ENV, "ANTHROPIC_KEY": claude.api_key}
        with gateway(tmp_path, backends, env=env) as gw:
            image = {"type": "image_url", "image_url": {"url": f"http://127.0.0.1:9/{MARKER}.png"}}
            body = {"model": CLAUDE, "messages": [{"role": "user", "content": [image]}]}
            response = httpx.post(f"{gw.url}{CHAT}", json=body, timeout=30)
            code, stderr = gw.served.stop()
    assert response.status_code == 400
    assert code == 0
    json_lines(stderr)
    assert MARKER not in stderr
