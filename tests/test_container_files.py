"""Dockerfile and docker-compose.yml, checked statically (no container engine runs here), plus
the image's HEALTHCHECK command run for real against a served gateway."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

import httpx
import pytest
import yaml

from nexus.config import load_config
from tests.conftest import REPO
from tests.e2e.serving import free_port, nexus_serve


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def instruction(name: str) -> list[str]:
    return [args for kind, args in dockerfile_instructions() if kind == name]


def healthcheck_command() -> list[str]:
    [args] = instruction("HEALTHCHECK")
    exec_form = args.split("CMD", 1)[1].strip()
    command: list[str] = json.loads(exec_form)
    return command


def base_image() -> str:
    """The FROM image with ``${ARG}`` references replaced by the ARG defaults."""
    [base] = instruction("FROM")
    defaults = dict(arg.split("=", 1) for arg in instruction("ARG") if "=" in arg)
    return re.sub(r"\$\{(\w+)\}", lambda match: defaults[match.group(1)], base)


def test_dockerfile_base_user_port() -> None:
    assert re.fullmatch(r"python:3\.1[1-9]-slim", base_image())
    [user] = instruction("USER")
    assert user not in ("root", "0")
    assert "useradd" in " ".join(instruction("RUN")) and user in " ".join(instruction("RUN"))
    assert instruction("EXPOSE") == ["8000"]
    assert json.loads(instruction("ENTRYPOINT")[0]) == ["nexus"]
    assert json.loads(instruction("CMD")[-1]) == ["serve"]
    env = " ".join(instruction("ENV"))
    assert "LITELLM_OFFLINE_MODE=true" in env and "LITELLM_LOCAL_MODEL_COST_MAP=True" in env


def test_the_image_can_write_its_usage_ledger_to_a_volume() -> None:
    # a budget keeps nexus-usage.db in the working directory: the nexus user must own it
    assert instruction("WORKDIR")[-1] == "/var/lib/nexus"
    assert json.loads(instruction("VOLUME")[0]) == ["/var/lib/nexus"]
    assert "chown nexus /var/lib/nexus" in " ".join(instruction("RUN"))


def test_healthcheck_command_really_checks_health(tmp_path) -> None:
    command = healthcheck_command()
    assert command[:2] == ["python", "-c"]
    with nexus_serve("--no-discovery", "--no-health-check", cwd=tmp_path) as served:
        port = served.url.rsplit(":", 1)[1]
        code = command[2].replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        assert code != command[2], "the check must target port 8000 inside the image"
        assert subprocess.run([sys.executable, "-c", code], timeout=10).returncode == 0
        assert httpx.get(f"{served.url}/health").status_code == 200
    dead = command[2].replace("127.0.0.1:8000", f"127.0.0.1:{free_port()}")
    assert subprocess.run([sys.executable, "-c", dead], capture_output=True).returncode != 0


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return loaded


def test_compose_mounts_config_read_only_and_passes_keys(compose) -> None:
    nexus = compose["services"]["nexus"]
    config_mounts = [v for v in nexus["volumes"] if v.endswith(":/etc/nexus/nexus.toml:ro")]
    assert len(config_mounts) == 1
    assert nexus["environment"]["NEXUS_CONFIG"] == "/etc/nexus/nexus.toml"
    for key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
        assert nexus["environment"][key] == "${" + key + ":-}", "keys come from the environment"
    assert "8000:8000" in nexus["ports"]
    assert nexus["build"] == "."
    assert "nexus-state:/var/lib/nexus" in nexus["volumes"] and "nexus-state" in compose["volumes"]


def test_compose_config_validates_and_targets_the_ollama_service(compose) -> None:
    assert compose["services"]["ollama"]["image"].startswith("ollama/ollama")
    source = compose["services"]["nexus"]["volumes"][0].split(":")[0]
    config = load_config(REPO / source)
    [ollama] = [b for b in config.backends if b.type == "ollama"]
    assert httpx.URL(ollama.url).host == "ollama"
