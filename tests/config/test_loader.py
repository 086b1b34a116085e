"""Loading nexus.toml: precedence, defaults, and one actionable line per problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from nexus.config import load_config
from nexus.config.kinds import Zone
from nexus.errors import ConfigError
from tests.conftest import REPO

BACKEND = '[[backends]]\nname = "{name}"\nurl = "http://127.0.0.1:11434"\ntype = "{type}"\n'


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return list(caught.value.problems)


def test_bundled_example_validates() -> None:
    config = load_config(REPO / "nexus.toml")
    assert [b.name for b in config.backends] == ["local-ollama", "gpu-vllm"]
    assert config.routing.aliases["fast"] == "llama3.2:3b"
    assert config.routing.policies[0].privacy is Zone.RESTRICTED


def test_missing_default_file_is_zero_config(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config()
    assert config.backends == ()
    assert config.server.port == 8000
    assert config.discovery.enabled is True


def test_missing_explicit_file_is_an_error(tmp_path) -> None:
    missing = tmp_path / "nope.toml"
    assert problems(missing) == [f"{missing}: file not found"]


def test_nexus_config_env_names_the_file(tmp_path, monkeypatch, write_config) -> None:
    path = write_config("[server]\nport = 9100\n", name="other.toml")
    monkeypatch.setenv("NEXUS_CONFIG", str(path))
    monkeypatch.chdir(tmp_path)
    assert load_config().server.port == 9100


def test_precedence_cli_over_env_over_file(monkeypatch, write_config) -> None:
    path = write_config('[server]\nport = 9000\nhost = "10.0.0.1"\n[logging]\nlevel = "debug"\n')
    assert load_config(path).server.port == 9000
    monkeypatch.setenv("NEXUS_PORT", "9001")
    monkeypatch.setenv("NEXUS_LOG_LEVEL", "ERROR")
    config = load_config(path)
    assert (config.server.port, config.server.host, config.logging.level) == (
        9001,
        "10.0.0.1",
        "error",
    )
    config = load_config(path, cli={"port": 9002, "host": None, "discovery": False})
    assert (config.server.port, config.server.host) == (9002, "10.0.0.1")
    assert config.discovery.enabled is False


def test_env_booleans_and_formats(monkeypatch, write_config) -> None:
    monkeypatch.setenv("NEXUS_DISCOVERY", "false")
    monkeypatch.setenv("NEXUS_HEALTH_CHECK", "0")
    monkeypatch.setenv("NEXUS_LOG_FORMAT", "JSON")
    config = load_config(write_config(""))
    assert config.discovery.enabled is False
    assert config.health_check.enabled is False
    assert config.logging.format == "json"


def test_bad_env_value_names_the_variable(monkeypatch, write_config) -> None:
    monkeypatch.setenv("NEXUS_PORT", "http")
    [line] = problems(write_config(""))
    assert line.startswith("environment NEXUS_PORT: server.port: 'http' is not allowed")


def test_tier_out_of_range(write_config) -> None:
    path = write_config(BACKEND.format(name="a", type="ollama") + "tier = 9\n")
    assert problems(path) == [f"{path}: backends[0].tier: 9 is not allowed (1 to 5)"]


def test_tier_in_second_backend_names_its_index(write_config) -> None:
    text = BACKEND.format(name="a", type="ollama") + BACKEND.format(name="b", type="vllm")
    path = write_config(text + "tier = 0\n")
    assert problems(path) == [f"{path}: backends[1].tier: 0 is not allowed (1 to 5)"]


def test_unknown_zone(write_config) -> None:
    path = write_config(BACKEND.format(name="a", type="ollama") + 'zone = "purple"\n')
    [line] = problems(path)
    assert line.startswith(f"{path}: backends[0].zone: 'purple' is not allowed (")
    assert "'restricted'" in line and "'open'" in line


@pytest.mark.parametrize("spelling", ["restricted", "Restricted", "RESTRICTED", "Open", "open"])
def test_zone_any_case(write_config, spelling: str) -> None:
    path = write_config(BACKEND.format(name="a", type="ollama") + f'zone = "{spelling}"\n')
    assert load_config(path).backends[0].zone == spelling.lower()


def test_default_zone_by_type(write_config, monkeypatch) -> None:
    text = BACKEND.format(name="local", type="ollama") + BACKEND.format(name="cloud", type="openai")
    path = write_config(text + 'api_key_env = "OPENAI_API_KEY"\n')
    local, cloud = load_config(path).backends
    assert (local.zone, cloud.zone) == (Zone.RESTRICTED, Zone.OPEN)


def test_unknown_key(write_config) -> None:
    path = write_config(BACKEND.format(name="a", type="ollama") + 'colour = "red"\n')
    [line] = problems(path)
    assert line.startswith(f"{path}: backends[0].colour: unknown key (allowed here: name, url,")


def test_unknown_top_level_section(write_config) -> None:
    [line] = problems(write_config("[queues]\nenabled = true\n"))
    assert ": queues: unknown key (allowed here: server, discovery," in line


def test_duplicate_backend_name(write_config) -> None:
    text = BACKEND.format(name="gpu", type="ollama") + BACKEND.format(name="gpu", type="vllm")
    path = write_config(text)
    assert problems(path) == [
        f"{path}: backends[1].name: 'gpu' is already used by backends[0] (names must be unique)"
    ]


def test_cloud_backend_without_api_key_env(write_config) -> None:
    path = write_config(BACKEND.format(name="claude", type="anthropic"))
    [line] = problems(path)
    assert line.startswith(
        f"{path}: backends[0].api_key_env: is required for cloud type 'anthropic'"
    )


def test_other_litellm_provider_is_cloud(write_config) -> None:
    path = write_config(BACKEND.format(name="m", type="Mistral") + 'api_key_env = "MISTRAL_KEY"\n')
    backend = load_config(path).backends[0]
    assert (backend.type, backend.kind.is_cloud, backend.zone) == ("mistral", True, Zone.OPEN)


def test_unknown_backend_type(write_config) -> None:
    [line] = problems(write_config(BACKEND.format(name="x", type="skynet")))
    assert "backends[0].type: 'skynet' is not a known backend type" in line


def test_alias_cycle(write_config) -> None:
    path = write_config('[routing.aliases]\na = "b"\nb = "c"\nc = "a"\n')
    lines = problems(path)
    assert f"{path}: routing.aliases.a: 'a' -> 'b' -> 'c' -> 'a' is a cycle" in lines[0]
    assert len(lines) == 3  # each alias on the cycle is named


def test_alias_chain_of_three_hops_is_allowed(write_config) -> None:
    path = write_config('[routing.aliases]\na = "b"\nb = "c"\nc = "d"\n')
    assert load_config(path).routing.aliases["a"] == "b"


def test_alias_chain_over_three_hops(write_config) -> None:
    path = write_config('[routing.aliases]\na = "b"\nb = "c"\nc = "d"\nd = "e"\n')
    [line] = problems(path)
    assert line == (
        f"{path}: routing.aliases.a: 'a' -> 'b' -> 'c' -> 'd' -> 'e' is more than 3 hops "
        "(at most 3 allowed)"
    )


def test_toml_syntax_error(write_config) -> None:
    path = write_config("[server]\nport = = 8000\n")
    [line] = problems(path)
    assert line.startswith(f"{path}: TOML syntax error:")
    assert "line 2" in line


def test_invalid_glob_is_an_error(write_config) -> None:
    path = write_config('[[routing.policies]]\nmodel_pattern = "gpt-[4"\nprivacy = "restricted"\n')
    [line] = problems(path)
    assert "routing.policies[0].model_pattern: 'gpt-[4' is not a valid glob" in line


def test_quoted_key_paths(write_config) -> None:
    path = write_config('[pricing."gpt-4.1"]\ninput_per_1k = -1\noutput_per_1k = 0.01\n')
    assert problems(path) == [
        f'{path}: pricing."gpt-4.1".input_per_1k: -1 is not allowed (0 to 1000)'
    ]


def test_several_problems_each_get_a_line(write_config) -> None:
    text = BACKEND.format(name="a", type="ollama") + 'tier = 9\nzone = "purple"\n'
    lines = problems(write_config(text + "[server]\nport = 0\n"))
    assert [line.split(": ")[1] for line in lines] == [
        "server.port",
        "backends[0].zone",
        "backends[0].tier",
    ]


def test_config_is_frozen() -> None:
    config = load_config(REPO / "nexus.toml")
    with pytest.raises(Exception, match="frozen"):
        config.server.port = 1  # type: ignore[misc]


def test_service_types_get_trailing_dot(write_config) -> None:
    path = write_config('[discovery]\nservice_types = ["_ollama._tcp.local"]\n')
    assert load_config(path).discovery.service_types == ("_ollama._tcp.local.",)
