"""A nexus.toml of the Rust project Nexus follows keeps working (issue 14, defect 10).

Keys Nexus implements work; keys of that format Nexus does not implement load with one warning
each (the table in ``nexus/config/rust_keys.py``); genuinely unknown keys stay errors.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from loguru import logger

from nexus.config import load_config
from nexus.config.kinds import Zone
from nexus.config.model import NexusConfig
from nexus.config.rust_keys import EACH, RUST_ONLY
from nexus.errors import ConfigError
from tests.conftest import REPO

#: The Rust project's example (its docs, section 2.11 of the reference) with every section it
#: parses and every key of those sections: [quality] and [queue] uncommented, plus
#: [routing.budget], [lifecycle], [fleet] and the keys it parses but never uses.
RUST_EXAMPLE = """\
# nexus.toml: minimal hybrid setup
[server]
host = "127.0.0.1"
port = 8000
request_timeout_seconds = 300
max_concurrent_requests = 1000

[discovery]
enabled = false            # no mDNS on this host
service_types = ["_ollama._tcp.local", "_llm._tcp.local"]
grace_period_seconds = 60

[health_check]
enabled = true
interval_seconds = 15
timeout_seconds = 5
failure_threshold = 3
recovery_threshold = 2

[routing]
strategy = "smart"
max_retries = 1
[routing.weights]
priority = 60
load = 25
latency = 15

[routing.aliases]
"fast" = "qwen2.5:7b"      # clients ask for "fast"
"smart" = "llama3.1:70b"

[routing.fallbacks]
"llama3.1:70b" = ["qwen2.5:32b", "gpt-4o"]

[[routing.policies]]       # anything named secret-* must stay on Restricted backends
model_pattern = "secret-*"
privacy = "restricted"
fallback_allowed = false

[[routing.policies]]
model_pattern = "gpt-4*"
min_tier = 3
max_cost_per_request = 0.5
fallback_allowed = true

[routing.budget]
monthly_limit_usd = 50.0
soft_limit_percent = 75.0
hard_limit_action = "block_cloud"
reconciliation_interval_secs = 60

[logging]
level = "info"
format = "json"
enable_content_logging = false
[logging.component_levels]
routing = "debug"
api = "info"

[quality]
error_rate_threshold = 0.5
ttft_penalty_threshold_ms = 3000
metrics_interval_seconds = 30

[queue]
enabled = true
max_size = 100
max_wait_seconds = 30

[lifecycle]
timeout_ms = 300000
vram_headroom_percent = 20
vram_buffer_percent = 10
vram_heuristic_max_gb = 16

[fleet]
enabled = false
min_sample_days = 7
min_request_count = 100
analysis_interval_seconds = 3600
max_recommendations = 5
"""

RUST_BACKENDS = """
[[backends]]
name = "workstation"
url = "http://localhost:11434"
type = "ollama"
priority = 10
zone = "Restricted"        # reference needs the capitalised form
tier = 2

[[backends]]
name = "openai"
url = "https://api.openai.com"
type = "openai"
api_key_env = "OPENAI_API_KEY"
priority = 90
zone = "Open"
tier = 3
"""

UNIMPLEMENTED = {
    "server.max_concurrent_requests",
    "routing.policies[].max_cost_per_request",
    "routing.policies[].fallback_allowed",
    "logging.component_levels",
    "logging.enable_content_logging",
    "lifecycle.timeout_ms",
    "lifecycle.vram_headroom_percent",
    "lifecycle.vram_buffer_percent",
    "lifecycle.vram_heuristic_max_gb",
    "fleet.enabled",
    "fleet.min_sample_days",
    "fleet.min_request_count",
    "fleet.analysis_interval_seconds",
    "fleet.max_recommendations",
}
NOT_IMPLEMENTED = "accepted from the Rust Nexus format but not implemented"


@pytest.fixture
def warnings() -> Iterator[list[str]]:
    """The messages of every WARNING (or worse) logged while the test runs."""
    messages: list[str] = []
    sink = logger.add(lambda m: messages.append(m.record["message"]), level="WARNING")
    yield messages
    logger.remove(sink)


def warned_keys(messages: list[str], path: Path) -> list[str]:
    """The key each warning names: ``<file>: <key>: accepted from ...``."""
    keys = []
    for message in messages:
        assert message.startswith(f"{path}: "), message
        key, _, rest = message.removeprefix(f"{path}: ").partition(": ")
        assert rest.startswith(NOT_IMPLEMENTED) and "no effect" in rest, message
        keys.append(key)
    return keys


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return list(caught.value.problems)


def test_the_rust_example_loads_with_one_warning_per_unimplemented_key(
    write_config, warnings: list[str]
) -> None:
    path = write_config(RUST_EXAMPLE + RUST_BACKENDS)
    config = load_config(path)
    keys = warned_keys(warnings, path)
    assert sorted(keys) == sorted(UNIMPLEMENTED), "exactly one warning per unimplemented key"
    assert (config.server.host, config.routing.weights.priority) == ("127.0.0.1", 60)
    assert config.routing.aliases["fast"] == "qwen2.5:7b"
    assert [p.model_pattern for p in config.routing.policies] == ["secret-*", "gpt-4*"]
    assert config.routing.policies[0].privacy is Zone.RESTRICTED
    assert config.routing.policies[1].min_tier == 3
    assert [b.zone for b in config.backends] == [Zone.RESTRICTED, Zone.OPEN]
    assert config.logging.format == "json"


def test_a_warning_says_what_the_key_is(write_config, warnings: list[str]) -> None:
    path = write_config("[fleet]\nmin_sample_days = 7\n")
    load_config(path)
    [message] = warnings
    assert message.startswith(f"{path}: fleet.min_sample_days: {NOT_IMPLEMENTED}")
    assert "has no effect" in message


def test_files_without_rust_only_keys_load_silently(write_config, warnings: list[str]) -> None:
    load_config(REPO / "nexus.toml")
    load_config(write_config("[quality]\n[queue]\n"))  # empty tables set nothing
    assert warnings == []


def test_an_invalid_file_raises_without_warnings(write_config, warnings: list[str]) -> None:
    problems(write_config("[fleet]\nmin_sample_days = 7\n[server]\nport = 0\n"))
    assert warnings == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[quallity]\nerror_rate_threshold = 0.5\n", "quallity: unknown key (allowed here: "),
        ("[server]\nmax_concurrent_request = 5\n", "server.max_concurrent_request: unknown key"),
        ("[queue]\nmax_sizee = 5\n", "queue.max_sizee: unknown key (allowed here: enabled, "),
        (
            "[routing.budget]\nmonthly_limit = 5.0\n",
            "routing.budget.monthly_limit: unknown key (allowed here: monthly_limit_usd, ",
        ),
        ("[quality]\nenabled = true\n", "quality.enabled: unknown key"),  # docs-only key
        (
            '[[routing.policies]]\nmodel_pattern = "*"\nfallback_alowed = true\n',
            "routing.policies[0].fallback_alowed: unknown key",
        ),
        ("queue = 5\n", "queue: 5 is not allowed (input should be a valid dictionary"),
    ],
)
def test_a_typo_is_still_an_error_naming_the_key(write_config, text: str, expected: str) -> None:
    path = write_config(text)
    assert [line.startswith(f"{path}: {expected}") for line in problems(path)] == [True]


def test_unknown_key_lists_the_accepted_rust_keys_too(write_config) -> None:
    [line] = problems(write_config("[quallity]\n"))
    assert line.endswith(
        "(allowed here: server, discovery, health_check, routing, logging, state, security, "
        "queue, quality, tracing, pricing, backends, clients, lifecycle, fleet)"
    )
    [line] = problems(write_config("[routing]\nbudgett = 5\n"))
    assert line.endswith(
        "(allowed here: strategy, max_retries, weights, aliases, fallbacks, policies, budget)"
    )
    [line] = problems(write_config("[server]\nmax_concurrent_request = 5\n"))
    assert line.endswith(", cors_origins, max_concurrent_requests)")


def test_errors_in_rust_sections_come_with_the_other_errors(write_config) -> None:
    path = write_config("[fleet]\nmin_samples = 5\n[server]\nport = 0\n")
    assert [line.split(": ")[1] for line in problems(path)] == ["fleet.min_samples", "server.port"]


def test_policies_as_a_table_says_to_write_an_array_of_tables(write_config) -> None:
    path = write_config('[routing.policies.default]\nmodel_pattern = "*"\nprivacy = "restricted"\n')
    [line] = problems(path)
    assert line.startswith(f"{path}: routing.policies: a table is not allowed (")
    assert "[[routing.policies]]" in line and "model_pattern" in line
    assert "[routing.policies.default]" in line
    assert "dict" not in line and "valid list" not in line and "valid tuple" not in line


def test_every_row_is_a_key_the_settings_tree_lacks() -> None:
    """Implementing a key means deleting its row: a row naming a field of the tree fails here."""
    for key in RUST_ONLY:
        model: type | None = NexusConfig
        for part in key.replace(EACH, "." + EACH).split("."):
            if part == EACH:
                continue
            fields = getattr(model, "model_fields", {})
            if part not in fields:
                break
            annotation = fields[part].annotation
            inner = [a for a in (annotation, *getattr(annotation, "__args__", ())) if a]
            model = next((a for a in inner if hasattr(a, "model_fields")), None)
        else:
            pytest.fail(f"{key} is implemented: delete its row from nexus/config/rust_keys.py")


NEXUS = str(Path(sys.executable).with_name("nexus"))


def test_config_check_prints_the_warnings_and_exits_0(tmp_path: Path) -> None:
    path = tmp_path / "nexus.toml"
    path.write_text(RUST_EXAMPLE + RUST_BACKENDS, encoding="utf-8")
    result = subprocess.run(
        [NEXUS, "config", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "OPENAI_API_KEY": "sk-test"},
    )
    assert result.returncode == 0, result.stderr
    assert orjson.loads(result.stdout)["server"]["host"] == "127.0.0.1"
    warned = [line for line in result.stderr.splitlines() if NOT_IMPLEMENTED in line]
    assert len(warned) == len(UNIMPLEMENTED), result.stderr
    assert all(line.startswith(f"warning: {path}: ") for line in warned), warned
    for key in UNIMPLEMENTED:
        assert sum(f"{path}: {key}: " in line for line in warned) == 1, key
    assert [line for line in result.stderr.splitlines() if line.startswith("error:")] == []


@pytest.mark.e2e
def test_serve_starts_with_the_rust_example_and_logs_the_warnings(tmp_path: Path) -> None:
    from tests.e2e.serving import nexus_serve

    path = tmp_path / "nexus.toml"
    path.write_text(RUST_EXAMPLE, encoding="utf-8")  # no backends: nothing to reach
    with nexus_serve("--config", str(path), "--no-health-check", cwd=tmp_path) as served:
        code, stderr = served.stop()
    assert code == 0, stderr
    for key in UNIMPLEMENTED:
        assert f"{path}: {key}: {NOT_IMPLEMENTED}" in stderr, key


def test_the_rust_quality_keys_take_effect_with_their_meaning(write_config) -> None:
    config = load_config(
        write_config(
            "[quality]\nerror_rate_threshold = 0.25\nttft_penalty_threshold_ms = 800\n"
            "metrics_interval_seconds = 5\n"
        )
    )
    quality = config.quality
    assert (quality.error_rate_threshold, quality.ttft_penalty_threshold_ms) == (0.25, 800.0)
    assert quality.metrics_interval_seconds == 5.0
    assert NexusConfig().quality.error_rate_threshold == 0.5  # the Rust default


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[quality]\nerror_rate_threshold = 0\n", "quality.error_rate_threshold: 0 "),
        ("[quality]\nwindow_seconds = 45\n", "45 is not a multiple of 10"),
        (
            "[quality]\nbase_ejection_seconds = 60\nmax_ejection_seconds = 30\n",
            "max_ejection_seconds: 30 is below base_ejection_seconds (60)",
        ),
    ],
)
def test_bad_quality_values_are_errors(write_config, text: str, expected: str) -> None:
    [line] = problems(write_config(text))
    assert expected in line, line
