"""``[tracing]``: off by default, its keys and their bounds, and ``nexus serve`` without the
tracing extra installed."""

from __future__ import annotations

import sys

import pytest
from typer.testing import CliRunner

from nexus.cli import app
from nexus.config import NexusConfig, load_config
from nexus.errors import ConfigError

runner = CliRunner()


def test_tracing_is_off_by_default() -> None:
    tracing = NexusConfig().tracing
    assert tracing.enabled is False
    assert tracing.endpoint == "http://localhost:4318/v1/traces"
    assert (tracing.protocol, tracing.sample_ratio, tracing.service_name) == (
        "http/protobuf",
        1.0,
        "nexus",
    )


def test_the_tracing_keys_load(write_config) -> None:
    path = write_config(
        '[tracing]\nenabled = true\nendpoint = "https://otel.example:4318/v1/traces"\n'
        'protocol = "http/protobuf"\nsample_ratio = 0.25\nservice_name = "edge"\n'
    )
    tracing = load_config(path).tracing
    assert tracing.enabled and tracing.sample_ratio == 0.25 and tracing.service_name == "edge"
    assert tracing.endpoint == "https://otel.example:4318/v1/traces"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('protocol = "grpc"', "tracing.protocol: 'grpc' is not supported (only http/protobuf is)"),
        ("sample_ratio = 1.5", "tracing.sample_ratio: 1.5 is not allowed (0 to 1)"),
        ("sample_ratio = -0.1", "tracing.sample_ratio: -0.1 is not allowed (0 to 1)"),
        ('endpoint = "localhost:4318"', "tracing.endpoint: 'localhost:4318' is not an http"),
        ('service_name = ""', "tracing.service_name: '' is not allowed"),
        ("sampler = 1", "tracing.sampler: unknown key (allowed here: enabled, endpoint, "),
    ],
)
def test_tracing_problems_are_one_line_each(write_config, text: str, expected: str) -> None:
    path = write_config(f"[tracing]\n{text}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    [line] = caught.value.problems
    assert line.startswith(f"{path}: {expected}"), line


def test_serve_with_tracing_on_and_the_extra_missing_is_one_line_and_exit_2(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    config = tmp_path / "nexus.toml"
    config.write_text("[tracing]\nenabled = true\n")
    result = runner.invoke(app, ["serve", "--config", str(config), "--no-discovery"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert lines == [
        "error: [tracing] enabled = true needs the tracing extra: "
        "pip install 'nexus-gateway[tracing]'"
    ]
