"""The CLI through typer's runner: config init/check, --version, --help."""

from __future__ import annotations

import orjson
import pytest
from typer.testing import CliRunner

from nexus import __version__
from nexus.cli import app
from nexus.cli.config_cmds import example_config
from tests.conftest import REPO

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"nexus {__version__}"


@pytest.mark.parametrize(
    "args", [["--help"], ["serve", "--help"], ["config", "--help"], ["config", "check", "--help"]]
)
def test_help_on_every_command(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 0
    assert "Usage" in result.stdout


def test_serve_help_lists_contract_flags() -> None:
    text = runner.invoke(app, ["serve", "--help"], terminal_width=200).stdout
    flags = ["--config", "--host", "--port", "--log-level", "--no-discovery", "--no-health-check"]
    assert [flag for flag in flags if flag not in text] == []


def test_config_check_bundled_file_masks_keys(monkeypatch, tmp_path) -> None:
    secret = "sk-canary-0123456789"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    text = (REPO / "nexus.toml").read_text() + (
        '\n[[backends]]\nname = "openai"\nurl = "https://api.openai.com"\ntype = "openai"\n'
        'api_key_env = "OPENAI_API_KEY"\n\n[[backends]]\nname = "claude"\n'
        'url = "https://api.anthropic.com"\ntype = "anthropic"\napi_key_env = "UNSET_KEY_VAR"\n'
    )
    path = tmp_path / "nexus.toml"
    path.write_text(text)
    result = runner.invoke(app, ["config", "check", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert secret not in result.output
    effective = orjson.loads(result.stdout)
    by_name = {backend["name"]: backend for backend in effective["backends"]}
    assert by_name["openai"]["api_key"] == "****"
    assert by_name["claude"]["api_key"] == "<environment variable UNSET_KEY_VAR is not set>"
    assert "api_key" not in by_name["local-ollama"]
    assert effective["routing"]["aliases"]["fast"] == "llama3.2:3b"


def test_config_check_bundled_file_exits_zero() -> None:
    result = runner.invoke(app, ["config", "check", "--config", str(REPO / "nexus.toml")])
    assert result.exit_code == 0
    assert "valid configuration with 2 backend(s)" in result.stderr


LOCAL = '[[backends]]\nname="a"\nurl="http://h"\ntype="ollama"\n'
INVALID = {
    "tier": (LOCAL + "tier=9\n", "backends[0].tier"),
    "zone": (LOCAL + 'zone="purple"\n', "backends[0].zone"),
    "unknown key": ("[server]\nprot = 1\n", "server.prot"),
    "duplicate": (
        '[[backends]]\nname="a"\nurl="http://h"\ntype="ollama"\n'
        '[[backends]]\nname="a"\nurl="http://i"\ntype="vllm"\n',
        "backends[1].name",
    ),
    "cloud without key env": (
        '[[backends]]\nname="g"\nurl="https://x"\ntype="google"\n',
        "backends[0].api_key_env",
    ),
    "alias cycle": ('[routing.aliases]\nx = "y"\ny = "x"\n', "routing.aliases.x"),
    "toml syntax": ("[server\nport = 1\n", "TOML syntax error"),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_config_check_invalid_files_exit_2(tmp_path, case: str) -> None:
    text, expected = INVALID[case]
    path = tmp_path / "bad.toml"
    path.write_text(text)
    result = runner.invoke(app, ["config", "check", "--config", str(path)])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert f"error: {path}: {expected}" in result.stderr


def test_serve_with_invalid_config_exits_2(tmp_path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[server]\nport = 70000\n")
    result = runner.invoke(app, ["serve", "--config", str(path)])
    assert result.exit_code == 2
    assert "server.port: 70000 is not allowed (1 to 65535)" in result.stderr


def test_config_init_writes_the_example(tmp_path) -> None:
    target = tmp_path / "mine.toml"
    result = runner.invoke(app, ["config", "init", "--output", str(target)])
    assert result.exit_code == 0
    assert target.read_text() == example_config()
    check = runner.invoke(app, ["config", "check", "--config", str(target)])
    assert check.exit_code == 0


def test_config_init_refuses_to_overwrite_without_force(tmp_path) -> None:
    target = tmp_path / "nexus.toml"
    target.write_text("# mine\n")
    result = runner.invoke(app, ["config", "init", "--output", str(target)])
    assert result.exit_code == 1
    assert "already exists; use --force" in result.stderr
    assert target.read_text() == "# mine\n"
    forced = runner.invoke(app, ["config", "init", "--output", str(target), "--force"])
    assert forced.exit_code == 0
    assert target.read_text() == example_config()


def test_repository_nexus_toml_is_the_packaged_example() -> None:
    assert (REPO / "nexus.toml").read_text() == example_config()
