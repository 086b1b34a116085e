"""``[tracing]``: OpenTelemetry export of one server span per request and one client span per
upstream attempt (:mod:`nexus.observability.tracing`). Off by default; off, OpenTelemetry is
never imported. Turning it on needs the ``tracing`` extra (``pip install
'nexus-gateway[tracing]'``): :func:`missing_extra` says so before the server listens.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

#: What ``nexus serve`` prints when tracing is on and the packages are not installed.
MISSING_EXTRA = (
    "[tracing] enabled = true needs the tracing extra: pip install 'nexus-gateway[tracing]'"
)


def _endpoint(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
        scheme, sep, rest = value.partition("://")
        if scheme.lower() not in ("http", "https") or not sep or not rest.strip("/"):
            raise ValueError(f"{value!r} is not an http:// or https:// URL with a host")
    return value


def _protocol(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() == "http/protobuf":
        return "http/protobuf"
    raise ValueError(f"{value!r} is not supported (only http/protobuf is)")


class TracingConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = Field(False, description="Export OpenTelemetry traces over OTLP.")
    endpoint: Annotated[str, BeforeValidator(_endpoint)] = Field(
        "http://localhost:4318/v1/traces",
        max_length=2048,
        description="The collector's OTLP/HTTP traces URL (path included).",
    )
    protocol: Annotated[Literal["http/protobuf"], BeforeValidator(_protocol)] = Field(
        "http/protobuf", description="OTLP transport: only http/protobuf."
    )
    sample_ratio: float = Field(
        1.0,
        ge=0,
        le=1,
        description="Share of new traces sampled; a client's sampled traceparent is honoured.",
    )
    service_name: str = Field(
        "nexus", min_length=1, max_length=128, description="The service.name resource attribute."
    )


def missing_extra() -> str | None:
    """:data:`MISSING_EXTRA` when the OpenTelemetry SDK or its OTLP/HTTP exporter cannot be
    imported (call only with tracing on: it imports them)."""
    try:
        import opentelemetry.exporter.otlp.proto.http.trace_exporter
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError:
        return MISSING_EXTRA
    return None
