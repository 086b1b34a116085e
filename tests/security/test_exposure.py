"""The start-up warning of a gateway anyone on the network could use to spend the cloud keys:
a real ``nexus serve`` bound beyond loopback, with a cloud backend and no client keys. (Bound to
0.0.0.0 for a second; the test itself talks to 127.0.0.1 only.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.configs import nexus_toml
from tests.e2e.serving import free_port

pytestmark = pytest.mark.e2e

NEXUS = str(Path(sys.executable).with_name("nexus"))
WARNING = "anyone who can reach this port can spend their API keys"
CLOUD = {"name": "openai", "url": "http://127.0.0.1:9", "type": "openai", "api_key_env": "K"}
LOCAL = {"name": "gpu", "url": "http://127.0.0.1:9", "type": "vllm"}


def served_log(tmp_path: Path, host: str, backends: list[dict[str, str]], **server: str) -> str:
    """Start `nexus serve` on ``host``, wait for /health on 127.0.0.1, stop it; its stderr."""
    config = tmp_path / "nexus.toml"
    config.write_text(nexus_toml(backends, server=server), encoding="utf-8")
    port = free_port()
    log = tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEXUS_")}
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [NEXUS, "serve", "--config", str(config), "--host", host, "--port", str(port)],
            env={**env, "K": "sk-x", "CLIENTS": "c1"},
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    try:
        deadline = time.monotonic() + 15
        while True:
            assert process.poll() is None, log.read_text()
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=0.5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "nexus serve did not answer"
                time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
    return log.read_text(errors="replace")


def test_the_warning_appears_beyond_loopback_with_cloud_and_no_keys(tmp_path: Path) -> None:
    text = served_log(tmp_path, "0.0.0.0", [CLOUD, LOCAL])
    [line] = [line for line in text.splitlines() if WARNING in line]
    assert "WARNING" in line
    assert "0.0.0.0" in line and "openai" in line and "api_keys_env" in line
    assert "sk-x" not in text


@pytest.mark.parametrize(
    ("host", "backends", "server"),
    [
        ("127.0.0.1", [CLOUD], {}),
        ("0.0.0.0", [CLOUD], {"api_keys_env": "CLIENTS"}),
        ("0.0.0.0", [LOCAL], {}),
    ],
    ids=["loopback", "client-keys", "no-cloud"],
)
def test_no_warning_otherwise(
    tmp_path: Path, host: str, backends: list[dict[str, str]], server: dict[str, str]
) -> None:
    text = served_log(tmp_path, host, backends, **server)
    assert "listening on" in text.lower() or "Nexus listening" in text
    assert WARNING not in text


def test_clients_keys_count_as_client_keys() -> None:
    from nexus.config import NexusConfig
    from nexus.server import exposure_warning

    open_to_all = NexusConfig.model_validate({"backends": [CLOUD]})
    keyed = NexusConfig.model_validate(
        {"backends": [CLOUD], "clients": [{"name": "ci", "api_key_env": "CI_KEY"}]}
    )
    assert exposure_warning(open_to_all) is not None
    assert exposure_warning(keyed) is None
