"""The CLI through typer's runner: config init/check, --version, --help; ``nexus usage``
against a running ``nexus serve``."""

from __future__ import annotations

import subprocess
from typing import Any

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from nexus import __version__
from nexus.cli import app
from nexus.cli.config_cmds import example_config
from tests.conftest import REPO
from tests.e2e.serving import NEXUS, nexus_serve
from tests.fakes.server import FakeModel

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


USAGE_KEYS = {"CLOUD_KEY": "sk-cloud-usage", "CI_KEY": "ci-key-123", "OPS_KEY": "ops-key-789"}


def usage_config(tmp_path, upstream: str) -> str:
    path = tmp_path / "usage.toml"
    path.write_text(
        f"""
[discovery]
enabled = false
[state]
usage_path = "{tmp_path / "usage.db"}"
[pricing.m]
input_per_1k = 10.0
output_per_1k = 10.0
[[backends]]
name = "cloud"
url = "{upstream}"
type = "openai"
api_key_env = "CLOUD_KEY"
[[clients]]
name = "ci"
api_key_env = "CI_KEY"
rpm = 60
daily_usd = 5.0
[[clients]]
name = "ops"
api_key_env = "OPS_KEY"
admin = true
"""
    )
    return str(path)


def nexus_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The installed ``nexus`` in a wide terminal, as a user runs it."""
    environ = {"COLUMNS": "200", "PATH": "/usr/bin:/bin", **env}
    return subprocess.run([NEXUS, *args], capture_output=True, text=True, timeout=20, env=environ)


@pytest.mark.e2e
def test_usage_reads_a_running_gateway(tmp_path, fake_openai) -> None:
    fake_openai.set_models(FakeModel("m"))
    config = usage_config(tmp_path, fake_openai.url)
    with nexus_serve("--config", config, cwd=tmp_path, env=USAGE_KEYS) as served:
        ci = {"authorization": f"Bearer {USAGE_KEYS['CI_KEY']}"}
        for _ in range(2):
            body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
            answer = httpx.post(f"{served.url}/v1/chat/completions", json=body, headers=ci)
            assert answer.status_code == 200, answer.text
        own = nexus_cli("usage", "--url", served.url, "--api-key", USAGE_KEYS["CI_KEY"])
        every = nexus_cli("usage", "--url", served.url, NEXUS_API_KEY=USAGE_KEYS["OPS_KEY"])
        as_json = nexus_cli("usage", "--json", "--url", served.url, "--api-key", "ops-key-789")
        keyless = nexus_cli("usage", "--url", served.url)
        wrong = nexus_cli("usage", "--url", served.url, "--api-key", "not-a-key")
    for result in (own, every, as_json):
        assert result.returncode == 0, result.stderr
    for result in (own, every, as_json, keyless, wrong):
        assert not any(key in result.stdout + result.stderr for key in USAGE_KEYS.values())
    assert "ci" in own.stdout and "ops" not in own.stdout and "Gateway" not in own.stdout
    assert "2 / 2" in own.stdout  # requests today / this month
    assert "day: " in own.stdout and "left (ok), renews in" in own.stdout
    assert "60 rpm" in own.stdout and "5.0000 USD/day" in own.stdout
    assert "ops" in every.stdout and "default" in every.stdout
    assert "Gateway this month: 2 requests" in every.stdout
    data = orjson.loads(as_json.stdout)
    assert [t["name"] for t in data["tenants"]] == ["default", "ci", "ops"]
    assert data["tenants"][1]["month"]["requests"] == 2
    assert data["tenants"][1]["budgets"][0]["status"] == "ok"
    assert data["gateway"]["month"]["requests"] == 2
    for refused, why in ((keyless, "it needs a client key"), (wrong, "the key was refused")):
        assert refused.returncode == 1 and refused.stdout == ""
        [line] = refused.stderr.strip().splitlines()
        assert line == (
            f"error: {served.url}/v1/usage answered HTTP 401: {why}; "
            "send a client key with --api-key or NEXUS_API_KEY"
        )


def test_usage_of_an_unreachable_gateway_is_one_line_and_exit_1(refused_url) -> None:
    result = runner.invoke(app, ["usage", "--url", refused_url, "--json"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: cannot reach Nexus at {refused_url}")
    assert "Usage" in runner.invoke(app, ["usage", "--help"]).stdout


def test_usage_shows_the_gateway_budget_to_an_admin(monkeypatch) -> None:
    spent = {"requests": 40, "input_tokens": 1200, "output_tokens": 300, "spend_usd": 12.5}
    budget = {
        "period": "month", "limit_usd": 10.0, "spent_usd": 12.5, "remaining_usd": 0.0,
        "status": "hard_limit", "renews_in_seconds": 3 * 86_400 + 7200,
        "hard_limit_action": "block_all",
    }  # fmt: skip
    body = {
        "object": "usage", "day": "2026-12-05", "month": "2026-12",
        "tenants": [{"name": "default", "day": spent, "month": spent, "budgets": [],
                     "limits": dict.fromkeys(("rpm", "tpm", "daily_usd", "monthly_usd"))}],
        "gateway": {"month": spent, "budget": budget},
    }  # fmt: skip
    asked: list[str] = []

    def fetch(url: str, path: str, **options: Any) -> dict[str, Any]:
        asked.append(path)
        return body

    monkeypatch.setattr("nexus.cli.usage.fetch", fetch)
    result = runner.invoke(app, ["usage"])
    assert result.exit_code == 0, result.output
    assert asked == ["/v1/usage"]
    assert result.stdout.splitlines()[-1] == (
        "Gateway this month: 40 requests, 1,200 tokens in, 300 out, 12.5000 USD; budget month: "
        "0.0000 of 10.0000 left (hard_limit), renews in 3d 2h, then block_all"
    )


def test_serve_with_an_unusable_usage_ledger_is_one_line_and_exit_2(tmp_path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    config = tmp_path / "nexus.toml"
    config.write_text(
        f'[state]\nusage_path = "{blocker}/usage.db"\n[routing.budget]\nmonthly_limit_usd = 5\n'
    )
    result = runner.invoke(app, ["serve", "--config", str(config), "--no-discovery"])
    assert result.exit_code == 2
    assert result.output.strip().startswith("error: usage ledger: cannot open the SQLite file")
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("words", "cword", "expected"),
    [
        ("nexus con", 1, "config"),
        ("nexus serve --no-d", 2, "--no-discovery"),
        ("nexus us", 1, "usage"),
    ],
)
def test_shell_completion_completes_commands_and_options(words, cword, expected) -> None:
    # what the script of `nexus --show-completion bash` asks the program when Tab is pressed
    environ = {"_NEXUS_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    result = subprocess.run([NEXUS], capture_output=True, text=True, timeout=20, env=environ)
    assert result.stdout.split() == [expected]


def test_show_completion_prints_a_bash_script() -> None:
    result = subprocess.run(
        [NEXUS, "--show-completion", "bash"], capture_output=True, text=True, timeout=20
    )
    assert result.returncode == 0
    assert "complete -o default -F _nexus_completion nexus" in result.stdout


def test_route_explain_shows_what_quality_did_to_each_backend() -> None:
    from nexus.cli.remote import quality_cell

    base = {"status": "ok", "reason": None, "back_in_seconds": None, "penalty": 0.0}
    lowered = {**base, "ttft_ms": 4500.0, "error_rate": 0.02, "penalty": 0.51, "effect": "lowered"}
    assert quality_cell(lowered) == "lowered 51%: ttft 4500 ms, errors 2.0%"
    ejected = {**base, "status": "ejected", "ttft_ms": None, "error_rate": 0.4}
    ejected |= {"effect": "excluded", "back_in_seconds": 25}
    assert quality_cell(ejected) == "excluded, back in 25 s: errors 40.0%"
    assert quality_cell({**base, "ttft_ms": None, "error_rate": None, "effect": "none"}) == "none"
    assert quality_cell(None) == ""


COMMANDS = [
    ["serve"],
    ["models"],
    ["health"],
    ["route"],
    ["usage"],
    ["config", "init"],
    ["config", "check"],
    ["backends", "list"],
]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_man_style_help(command: list[str]) -> None:
    text = runner.invoke(app, [*command, "--help"], terminal_width=200).stdout
    assert "Examples" in text and f"nexus {' '.join(command)}" in text.split("Examples", 1)[1]
    assert "Exit status" in text and "0 " in text.split("Exit status", 1)[1]


def test_help_shows_the_environment_variables_literally() -> None:
    text = runner.invoke(app, ["serve", "--help"], terminal_width=200).stdout
    for shown in ("[env NEXUS_HOST]", "[env NEXUS_PORT]", "$NEXUS_CONFIG"):
        assert shown in text, shown
    top = runner.invoke(app, ["--help"], terminal_width=200).stdout
    assert "Environment" in top and "NEXUS_URL" in top and "NEXUS_API_KEY" in top
