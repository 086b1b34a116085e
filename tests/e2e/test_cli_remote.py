"""`nexus backends list`, `nexus models` and `nexus health` against a running `nexus serve`."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
import orjson
import pytest

from tests.e2e.serving import NEXUS, free_port, nexus_serve
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.ollama import FakeOllama
from tests.fakes.server import FakeModel

pytestmark = pytest.mark.e2e

KEY = "sk-ant-canary-e2e-0123456789"


def cli(*args: str, wide: bool = True) -> subprocess.CompletedProcess[str]:
    env = {"COLUMNS": "200", "PATH": "/usr/bin:/bin"} if wide else None
    return subprocess.run([NEXUS, *args], capture_output=True, text=True, timeout=20, env=env)


def write_config(tmp_path: Path, ollama: str, anthropic: str, dead: str) -> Path:
    path = tmp_path / "nexus.toml"
    path.write_text(
        f"""
[discovery]
enabled = false
[health_check]
interval_seconds = 2
timeout_seconds = 1
[[backends]]
name = "laptop"
url = "{ollama}"
type = "ollama"
[[backends]]
name = "claude"
url = "{anthropic}"
type = "anthropic"
api_key_env = "NEXUS_TEST_ANTHROPIC_KEY"
models = ["claude-3-5-sonnet-20241022"]
[[backends]]
name = "dead"
url = "{dead}"
type = "vllm"
"""
    )
    return path


def wait_for_probes(url: str) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        data = httpx.get(f"{url}/v1/backends").json()["data"]
        if all(b["status"] != "unknown" for b in data):
            return
        time.sleep(0.05)
    raise AssertionError("backends still unknown")


def test_cli_reads_a_running_gateway(tmp_path, fake_ollama: FakeOllama, refused_url: str) -> None:
    fake_ollama.set_models(FakeModel("llama3.2:3b", context_length=131072, vision=True))
    anthropic = FakeAnthropic()
    anthropic.api_key = KEY
    with anthropic:
        anthropic.set_models(FakeModel("claude-3-5-sonnet-20241022"))
        config = write_config(tmp_path, fake_ollama.url, anthropic.url, refused_url)
        env = {"NEXUS_TEST_ANTHROPIC_KEY": KEY}
        with nexus_serve("--config", str(config), cwd=tmp_path, env=env) as served:
            wait_for_probes(served.url)
            table = cli("backends", "list", "--url", served.url)
            as_json = cli("backends", "list", "--url", served.url, "--json")
            models = cli("models", "--url", served.url, "--json")
            models_table = cli("models", "--url", served.url)
            health = cli("health", "--url", served.url)
            health_json = cli("health", "--url", served.url, "--json")
            served.stop()
            log = served.stderr()
    for result in (table, as_json, models, models_table, health, health_json):
        assert result.returncode == 0, result.stderr
        assert KEY not in result.stdout + result.stderr
    assert KEY not in log
    assert "laptop" in table.stdout and "healthy" in table.stdout
    assert "dead: connection refused" in table.stdout
    statuses = {b["name"]: b["status"] for b in orjson.loads(as_json.stdout)["data"]}
    assert statuses == {"laptop": "healthy", "claude": "healthy", "dead": "unhealthy"}
    ids = sorted(m["id"] for m in orjson.loads(models.stdout)["data"])
    assert ids == ["claude-3-5-sonnet-20241022", "llama3.2:3b"]
    assert "131,072" in models_table.stdout
    assert "Status:   degraded" in health.stdout
    assert "Backends: 2/3 healthy" in health.stdout
    assert orjson.loads(health_json.stdout)["models"] == 2


@pytest.mark.parametrize("command", [["backends", "list"], ["models"], ["health", "--json"]])
def test_unreachable_gateway_is_one_line_and_exit_1(command: list[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = cli(*command, "--url", url)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: cannot reach Nexus at {url}")


def test_nexus_url_environment_variable(tmp_path) -> None:
    with nexus_serve("--no-discovery", "--no-health-check", cwd=tmp_path) as served:
        env = {"NEXUS_URL": served.url, "PATH": "/usr/bin:/bin"}
        result = subprocess.run(
            [NEXUS, "health", "--json"], capture_output=True, text=True, env=env, timeout=20
        )
    assert result.returncode == 0
    assert orjson.loads(result.stdout)["backends"]["total"] == 0


def test_route_explain(tmp_path, fake_ollama: FakeOllama, refused_url: str) -> None:
    fake_ollama.set_models(FakeModel("llama3.2:3b"))
    config = tmp_path / "nexus.toml"
    config.write_text(
        f"""
[discovery]
enabled = false
[routing.aliases]
fast = "llama3.2:3b"
[[backends]]
name = "laptop"
url = "{fake_ollama.url}"
type = "ollama"
[[backends]]
name = "dead"
url = "{refused_url}"
type = "vllm"
"""
    )
    with nexus_serve("--config", str(config), cwd=tmp_path) as served:
        wait_for_probes(served.url)
        plain = cli("route", "fast", "--url", served.url)
        explained = cli("route", "fast", "--explain", "--url", served.url)
        as_json = cli("route", "fast", "--json", "--url", served.url)
        unknown = cli("route", "gpt-9", "--url", served.url)
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.strip() == "fast: capability-match, tried in order: laptop (llama3.2:3b)"
    assert "does not list model 'llama3.2:3b'" in explained.stdout
    assert "kept" in explained.stdout and "skipped" in explained.stdout
    data = orjson.loads(as_json.stdout)
    assert data["routable"] is True and data["model"] == "llama3.2:3b"
    assert unknown.returncode == 0
    assert unknown.stdout.startswith("gpt-9: HTTP 404 model_not_found")


def test_remote_commands_send_the_client_key(tmp_path) -> None:
    config = tmp_path / "nexus.toml"
    config.write_text('[[clients]]\nname = "ops"\napi_key_env = "NEXUS_TEST_OPS_KEY"\n')
    env = {"NEXUS_TEST_OPS_KEY": "ops-secret-key"}
    with nexus_serve("--no-discovery", "--config", str(config), cwd=tmp_path, env=env) as served:
        refused = cli("backends", "list", "--url", served.url)
        keyed = cli("backends", "list", "--url", served.url, "--api-key", "ops-secret-key")
        models = cli("models", "--url", served.url, "--json", "--api-key", "ops-secret-key")
        routed = cli("route", "m", "--url", served.url, "--json", "--api-key", "ops-secret-key")
    assert refused.returncode == 1
    assert refused.stderr.strip().endswith(
        "answered HTTP 401: it needs a client key; send a client key with --api-key or "
        "NEXUS_API_KEY"
    )
    assert keyed.returncode == 0 and "ops-secret-key" not in keyed.stdout + keyed.stderr
    assert models.returncode == 0 and orjson.loads(models.stdout)["object"] == "list"
    assert routed.returncode == 0 and orjson.loads(routed.stdout)["routable"] is False
