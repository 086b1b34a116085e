"""``[state]`` and ``[server] workers``: defaults, bounds, environment, masking; the memory
backend adds nothing to the app."""

from __future__ import annotations

import os

import pytest
from typer.testing import CliRunner

from nexus.app import create_app
from nexus.cli import app as cli
from nexus.config import NexusConfig, load_config
from nexus.errors import ConfigError
from tests.api.gateway import gateway


def test_defaults_are_memory_and_one_worker() -> None:
    config = NexusConfig()
    assert config.state.backend == "memory" and config.server.workers == 1
    assert config.state.redis_url.get_secret_value() == "redis://127.0.0.1:6379/0"
    assert config.state.acquire_timeout_seconds <= 0.05
    assert config.state.sync_interval_seconds <= 0.25


def test_environment_sets_redis_url_and_workers(write_config, monkeypatch) -> None:
    path = write_config('[state]\nbackend = "redis"\n')
    monkeypatch.setenv("NEXUS_REDIS_URL", "redis://:s3cret@cache:6380/2")
    monkeypatch.setenv("NEXUS_WORKERS", "4")
    config = load_config(path)
    assert config.state.redis_url.get_secret_value() == "redis://:s3cret@cache:6380/2"
    assert config.server.workers == 4


def test_auto_workers_are_one_per_usable_core(write_config, monkeypatch) -> None:
    cores = len(os.sched_getaffinity(0))
    assert load_config(write_config('[server]\nworkers = "auto"\n')).server.workers == cores
    monkeypatch.setenv("NEXUS_WORKERS", "auto")
    assert load_config(write_config("")).server.workers == cores
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(100)))
    assert NexusConfig.model_validate({"server": {"workers": "auto"}}).server.workers == 64


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('[state]\nredis_url = "http://cache:6379"\n', "state.redis_url: is not a redis://"),
        ('[state]\nbackend = "etcd"\n', "state.backend: 'etcd' is not allowed"),
        ("[server]\nworkers = 65\n", "server.workers: 65 is not allowed (1 to 64)"),
        (
            '[server]\nworkers = "all"\n',
            "server.workers: 'all' is not allowed (1 to 64, or \"auto\")",
        ),
        (
            "[state]\nlease_ttl_seconds = 1\nsync_interval_seconds = 1\n",
            "state: lease_ttl_seconds (1) must be at least 4 times sync_interval_seconds (1)",
        ),
    ],
)
def test_bad_values_name_the_key(write_config, text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(text))
    assert [line for line in caught.value.problems if problem in line] != [], caught.value.problems


def test_a_bad_url_from_the_environment_is_not_echoed(write_config, monkeypatch) -> None:
    monkeypatch.setenv("NEXUS_REDIS_URL", "http://user:pw-canary@cache")
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(""))
    [line] = caught.value.problems
    assert line.startswith("environment NEXUS_REDIS_URL: state.redis_url:")
    assert "pw-canary" not in line


def test_config_check_masks_the_redis_url(write_config) -> None:
    path = write_config('[state]\nbackend = "redis"\nredis_url = "redis://:pw-canary@cache:6379"\n')
    result = CliRunner().invoke(cli, ["config", "check", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert "pw-canary" not in result.output
    assert '"backend": "redis"' in result.stdout


async def test_memory_backend_starts_nothing_and_hooks_nothing() -> None:
    async with gateway([]) as gw:
        assert gw.app.gateway.shared is None
        assert gw.app.gateway.registry.listener is None
        body = (await gw.client.get("/v1/stats")).json()
        assert body["process"]["state"] == "memory" and isinstance(body["process"]["pid"], int)
    assert create_app(NexusConfig()).gateway.registry.listener is None
