"""The settings tree of ``nexus.toml`` (README, "Configuration"): frozen, unknown keys rejected,
every field described and bounded. Cross-field rules live in :mod:`nexus.config.checks`.

API keys never appear here: a backend names the environment variable that holds its key
(``api_key_env``); :mod:`nexus.config.credentials` reads it.
"""

from __future__ import annotations

import os
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from nexus.config.checks import glob_problem, semantic_problems
from nexus.config.kinds import Api, BackendKind, Priority, Transport, Zone, kind_of
from nexus.config.quality import QualityConfig
from nexus.config.tracing import TracingConfig

ENV_VAR_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
EnvVarName = Annotated[str, Field(pattern=ENV_VAR_PATTERN, max_length=128)]
ModelName = Annotated[str, Field(min_length=1, max_length=256)]
#: A backend's or client's name: shown in headers, logs and metrics, so plain printable text.
Name = Annotated[
    str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._:@/+-]*$")
]


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


class Section(BaseModel):
    """Base of every section: immutable, and unknown keys are errors, never ignored."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=False)


def _auto_workers(value: Any) -> Any:
    """``"auto"``: one worker per core this process may run on (its CPU affinity), at most 64."""
    if value == "auto":
        affinity = getattr(os, "sched_getaffinity", None)
        return min(len(affinity(0)) if affinity else os.cpu_count() or 1, 64)
    if isinstance(value, str) and not value.strip().isdigit():
        raise ValueError(f'{value!r} is not allowed (1 to 64, or "auto")')
    return value


class ServerConfig(Section):
    host: str = Field("0.0.0.0", min_length=1, max_length=255, description="Bind address.")
    port: int = Field(8000, ge=1, le=65535, description="Listen port.")
    request_timeout_seconds: float = Field(
        300.0, gt=0, le=86400, description="Whole-request limit for one upstream attempt (504)."
    )
    connect_timeout_seconds: float = Field(
        5.0, gt=0, le=300, description="TCP/TLS connect limit; a failed connect fails over."
    )
    max_body_bytes: int = Field(
        10 * 1024 * 1024, ge=1024, le=1024**3, description="Larger request bodies get 413."
    )
    api_keys_env: EnvVarName | None = Field(
        None, description="Env var holding comma-separated client keys required on /v1/*."
    )
    workers: Annotated[int, BeforeValidator(_auto_workers)] = Field(
        1,
        ge=1,
        le=64,
        description='Processes serving the port, or "auto": one per core (state per process '
        "unless shared).",
    )
    cors_origins: tuple[Annotated[str, Field(pattern=r"^(\*|https?://[^/\s]+)$")], ...] = Field(
        (),
        description="Browser origins (scheme://host[:port], or *) that may call /v1 (CORS).",
    )


def _with_trailing_dot(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(v if not isinstance(v, str) or v.endswith(".") else v + "." for v in value)
    return value


class DiscoveryConfig(Section):
    enabled: bool = Field(True, description="Browse mDNS for local backends.")
    service_types: Annotated[
        tuple[Annotated[str, Field(pattern=r"^_[A-Za-z0-9-]+\._(tcp|udp)\.local\.$")], ...],
        BeforeValidator(_with_trailing_dot),
    ] = Field(
        ("_ollama._tcp.local.", "_llm._tcp.local."),
        max_length=16,
        description="mDNS service types to browse (a trailing '.' is added).",
    )
    grace_period_seconds: int = Field(
        60, ge=0, le=86400, description="How long a vanished service stays before removal."
    )


class HealthCheckConfig(Section):
    enabled: bool = Field(True, description="Probe backends in the background.")
    interval_seconds: float = Field(30.0, ge=1, le=3600, description="Seconds between probes.")
    timeout_seconds: float = Field(5.0, gt=0, le=300, description="Limit of one probe.")
    failure_threshold: int = Field(
        3, ge=1, le=100, description="Consecutive failures before a backend is unhealthy."
    )
    recovery_threshold: int = Field(
        2, ge=1, le=100, description="Consecutive successes before it is healthy again."
    )


class Strategy(StrEnum):
    SMART = "smart"
    ROUND_ROBIN = "round_robin"
    PRIORITY_ONLY = "priority_only"
    RANDOM = "random"


class WeightsConfig(Section):
    priority: int = Field(50, ge=0, le=100, description="Weight of the backend's priority.")
    load: int = Field(30, ge=0, le=100, description="Weight of its in-flight load.")
    latency: int = Field(20, ge=0, le=100, description="Weight of its latency.")
    ttft: int = Field(
        100, ge=0, le=100, description="Percent of the time-to-first-token penalty applied."
    )
    error_rate: int = Field(
        100, ge=0, le=100, description="Percent of the error-rate penalty applied."
    )


def _privacy(value: Any) -> Any:
    value = _lower(value)
    return "open" if value == "unrestricted" else value  # the reference project's spelling


class PolicyConfig(Section):
    model_pattern: str = Field(
        min_length=1, max_length=256, description="Glob matched against the resolved model."
    )
    privacy: Annotated[Zone, BeforeValidator(_privacy)] = Field(
        Zone.OPEN, description="'restricted' keeps matching requests on restricted backends."
    )
    min_tier: int | None = Field(None, ge=1, le=5, description="Minimum backend tier.")


class BudgetConfig(Section):
    """The gateway's monthly spend budget (the Rust Nexus keys), by UTC calendar month."""

    monthly_limit_usd: float | None = Field(
        None, gt=0, le=1e9, description="USD per UTC month (none: no budget)."
    )
    soft_limit_percent: float = Field(
        75.0, gt=0, le=100, description="From this share on, cloud only when nothing local can."
    )
    hard_limit_action: Annotated[
        Literal["warn", "block_cloud", "block_all"], BeforeValidator(_lower)
    ] = Field("warn", description="At the limit: warn, block_cloud (local only) or block_all.")
    reconciliation_interval_secs: float = Field(
        1.0, ge=0.1, le=3600, description="Seconds between writes (and reads) of the spend."
    )


class RoutingConfig(Section):
    strategy: Annotated[Strategy, BeforeValidator(_lower)] = Field(
        Strategy.SMART, description="How candidates are ordered."
    )
    max_retries: int = Field(
        2, ge=0, le=10, description="Further attempts on other candidates after a failure."
    )
    weights: WeightsConfig = Field(default_factory=WeightsConfig, description="Smart weights.")
    aliases: dict[ModelName, ModelName] = Field(
        default_factory=dict, description="alias -> model; chains up to 3 hops."
    )
    fallbacks: dict[ModelName, tuple[ModelName, ...]] = Field(
        default_factory=dict, description="model -> models tried in order when it cannot serve."
    )
    policies: tuple[PolicyConfig, ...] = Field(
        (), max_length=1000, description="Traffic policies; the first match wins."
    )
    budget: BudgetConfig = Field(default_factory=BudgetConfig, description="Spend budget.")


LogLevel = Literal["trace", "debug", "info", "warning", "error", "critical"]


def _log_level(value: Any) -> Any:
    value = _lower(value)
    return "warning" if value == "warn" else value


class LoggingConfig(Section):
    level: Annotated[LogLevel, BeforeValidator(_log_level)] = Field(
        "info", description="Lowest level written."
    )
    format: Annotated[Literal["pretty", "json"], BeforeValidator(_lower)] = Field(
        "pretty", description="'json' writes one JSON object per line."
    )


class PriceConfig(Section):
    input_per_1k: float = Field(ge=0, le=1000, description="USD per 1,000 input tokens.")
    output_per_1k: float = Field(ge=0, le=1000, description="USD per 1,000 output tokens.")


def _known_type(value: Any) -> Any:
    if isinstance(value, str) and kind_of(value) is None:
        raise ValueError(
            f"{value!r} is not a known backend type (local: ollama, vllm, llamacpp, lmstudio, "
            "exo, generic; cloud: openai, anthropic, google, or a LiteLLM provider id)"
        )
    return _lower(value)


def _http_url(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
        scheme, sep, rest = value.partition("://")
        if scheme.lower() not in ("http", "https") or not sep or not rest.strip("/"):
            raise ValueError(f"{value!r} is not an http:// or https:// URL with a host")
        return value.rstrip("/")
    return value


class BackendConfig(Section):
    name: Name = Field(description="Unique; shown in headers, errors, CLI and metrics.")
    url: Annotated[str, BeforeValidator(_http_url)] = Field(
        max_length=2048, description="Base URL, with or without the API version path."
    )
    type: Annotated[str, BeforeValidator(_known_type)] = Field(description="Backend type.")
    api_key_env: EnvVarName | None = Field(
        None, description="Env var holding the API key (required for cloud types)."
    )
    zone: Annotated[Zone, BeforeValidator(_lower)] = Field(
        Zone.RESTRICTED, description="Privacy zone; by default local restricted, cloud open."
    )
    tier: int = Field(1, ge=1, le=5, description="Capability tier.")
    priority: int = Field(50, ge=0, le=10000, description="Lower is preferred.")
    models: tuple[ModelName, ...] | None = Field(
        None, max_length=10000, description="Fixed model list; only these are routed here."
    )
    max_concurrent: int | None = Field(
        None, ge=1, le=1_000_000, description="In-flight limit; at the limit it is skipped."
    )
    apis: tuple[str, ...] | None = Field(
        None,
        max_length=len(Api),
        description="Client APIs it speaks natively (default: by type); others are translated.",
    )

    @field_validator("apis")
    @classmethod
    def _speakable(cls, value: tuple[str, ...] | None, info: ValidationInfo) -> Any:
        if value is None:
            return None
        names = ", ".join(api.value for api in Api)
        unknown = [name for name in value if name not in Api.__members__.values()]
        if unknown:
            raise ValueError(f"{unknown[0]!r} is not an API Nexus serves ({names})")
        kind = kind_of(info.data["type"]) if isinstance(info.data.get("type"), str) else None
        if kind is None:
            return value
        if kind.transport is Transport.RELAY and Api.CHAT not in value:
            raise ValueError(
                f"must include 'chat': Nexus translates the other APIs onto a {kind.name} "
                "backend's chat completions"
            )
        beyond = [name for name in value if name not in kind.may_speak]
        if beyond:
            own = ", ".join(sorted(kind.may_speak)) or "none"
            raise ValueError(
                f"{beyond[0]!r} cannot be spoken natively by a {kind.name} backend "
                f"(natively: {own}; LiteLLM translates the others)"
            )
        return value

    @model_validator(mode="before")
    @classmethod
    def _zone_by_type(cls, data: Any) -> Any:
        """Without an explicit zone, local types are restricted and cloud types open."""
        if (
            isinstance(data, dict)
            and data.get("zone") is None
            and isinstance(data.get("type"), str)
        ):
            kind = kind_of(data["type"])
            if kind is not None:
                data = {**data, "zone": kind.default_zone}
        return data

    @property
    def kind(self) -> BackendKind:
        kind = kind_of(self.type)
        assert kind is not None, "validated at load"
        return kind

    @property
    def native_apis(self) -> frozenset[Api]:
        """The client APIs relayed to this backend as they are (the rest are translated)."""
        return self.kind.apis if self.apis is None else frozenset(Api(name) for name in self.apis)


def _redis_url(value: Any) -> Any:
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    if isinstance(text, str):
        scheme, sep, rest = text.strip().partition("://")
        if scheme.lower() not in ("redis", "rediss", "unix") or not sep or not rest:
            raise ValueError("is not a redis://, rediss:// or unix:// URL")
        return text.strip()
    return value


class StateConfig(Section):
    """Where replicas and workers share backend state (cooldowns, health, in-flight, counters)."""

    backend: Annotated[Literal["memory", "redis"], BeforeValidator(_lower)] = Field(
        "memory", description="'memory': each process on its own; 'redis': shared through Redis."
    )
    redis_url: Annotated[SecretStr, BeforeValidator(_redis_url)] = Field(
        SecretStr("redis://127.0.0.1:6379/0"),
        description="Redis URL (may hold a password, so it is never shown).",
    )
    key_prefix: str = Field(
        "nexus:",
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9:._-]+$",
        description="Prefix of every Redis key (several clusters may share one Redis).",
    )
    sync_interval_seconds: float = Field(
        0.25, ge=0.05, le=5, description="Seconds between background syncs with Redis."
    )
    sync_timeout_seconds: float = Field(
        1.0, ge=0.05, le=10, description="Limit of one background sync."
    )
    acquire_timeout_seconds: float = Field(
        0.05,
        ge=0.005,
        le=1,
        description="Longest wait of a request for Redis (max_concurrent check); then local.",
    )
    lease_ttl_seconds: float = Field(
        5.0, ge=1, le=300, description="An in-flight lease of a dead replica expires after this."
    )
    usage_path: str | None = Field(
        None,
        min_length=1,
        max_length=4096,
        description="SQLite file of usage and spend (memory backend). Default: nexus-usage.db "
        "in the working directory when a budget is set; otherwise usage since start only.",
    )

    @model_validator(mode="after")
    def _ttl_outlives_sync(self) -> StateConfig:
        if self.lease_ttl_seconds < 4 * self.sync_interval_seconds:
            raise ValueError(
                f"lease_ttl_seconds ({self.lease_ttl_seconds:g}) must be at least 4 times "
                f"sync_interval_seconds ({self.sync_interval_seconds:g})"
            )
        return self


class QueueConfig(Section):
    """Requests wait here when every backend that could serve them is at ``max_concurrent``
    (the Rust Nexus key names). Any other reason for having no backend is answered at once."""

    enabled: bool = Field(True, description="Queue requests instead of a 503 at capacity.")
    max_size: int = Field(
        100, ge=0, le=100_000, description="Requests that may wait at once (0: no queue)."
    )
    max_wait_seconds: float = Field(
        30.0, gt=0, le=3600, description="Longest wait; then 503 with Retry-After."
    )

    @property
    def active(self) -> bool:
        return self.enabled and self.max_size > 0


class SecurityConfig(Section):
    """What the gateway host itself may do on a client's behalf."""

    fetch_remote_images: bool = Field(
        False,
        description="Download a client's http(s) image_url for a provider that cannot take it "
        "by URL. Off: such a request is a 400 asking for a data: URL. On: the gateway host "
        "fetches URLs clients choose (LiteLLM refuses private and loopback addresses).",
    )


def _globs(value: Any) -> Any:
    if isinstance(value, list | tuple):
        for pattern in value:
            problem = glob_problem(pattern) if isinstance(pattern, str) else None
            if problem:
                raise ValueError(f"{pattern!r} is not a valid glob ({problem})")
    return value


class ClientConfig(Section):
    """A client (tenant): its key, what it may ask for and how far its data may travel."""

    name: Name = Field(description="Unique; shown in logs, history and stats (never the key).")
    api_key_env: EnvVarName = Field(description="Env var holding this client's key.")
    models: Annotated[tuple[ModelName, ...] | None, AfterValidator(_globs)] = Field(
        None, max_length=1000, description="Model globs it may request (default: every model)."
    )
    privacy: Annotated[Zone, BeforeValidator(_lower)] = Field(
        Zone.OPEN, description="restricted: its requests never leave restricted backends."
    )
    priority: Annotated[Priority, BeforeValidator(_lower)] = Field(
        Priority.NORMAL, description="Queue priority of its requests without X-Nexus-Priority."
    )
    max_priority: Annotated[Priority, BeforeValidator(_lower)] = Field(
        Priority.HIGH, description="Highest priority its X-Nexus-Priority may ask for."
    )
    rpm: int | None = Field(
        None, ge=1, le=10**9, description="Requests per minute (token bucket; none: no limit)."
    )
    tpm: int | None = Field(
        None,
        ge=1,
        le=10**12,
        description="Tokens per minute: input plus max_tokens, corrected by the usage reported.",
    )
    daily_usd: float | None = Field(None, gt=0, le=1e9, description="USD per UTC day.")
    monthly_usd: float | None = Field(None, gt=0, le=1e9, description="USD per UTC month.")
    soft_limit_percent: float = Field(
        80.0, gt=0, le=100, description="From this share of a budget on, local backends first."
    )
    hard_limit_action: Annotated[
        Literal["warn", "local_only", "block"], BeforeValidator(_lower)
    ] = Field("block", description="At a budget: warn, local_only or block.")
    admin: bool = Field(False, description="May read every client's usage (GET /v1/usage).")


class NexusConfig(Section):
    """The whole configuration. ``NexusConfig()`` is the zero-config default."""

    server: ServerConfig = Field(default_factory=ServerConfig, description="HTTP server.")
    discovery: DiscoveryConfig = Field(default_factory=DiscoveryConfig, description="mDNS.")
    health_check: HealthCheckConfig = Field(
        default_factory=HealthCheckConfig, description="Background probing."
    )
    routing: RoutingConfig = Field(default_factory=RoutingConfig, description="Routing rules.")
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="Log output.")
    state: StateConfig = Field(default_factory=StateConfig, description="Shared state.")
    security: SecurityConfig = Field(
        default_factory=SecurityConfig, description="What the gateway host may fetch."
    )
    queue: QueueConfig = Field(default_factory=QueueConfig, description="Waiting at capacity.")
    quality: QualityConfig = Field(
        default_factory=QualityConfig, description="Quality-aware routing."
    )
    tracing: TracingConfig = Field(
        default_factory=TracingConfig, description="OpenTelemetry traces (OTLP)."
    )
    pricing: dict[ModelName, PriceConfig] = Field(
        default_factory=dict, description="USD price overrides per model."
    )
    backends: tuple[BackendConfig, ...] = Field(
        (), max_length=10000, description="Statically configured backends."
    )
    clients: tuple[ClientConfig, ...] = Field(
        (), max_length=10000, description="Client keys as tenants."
    )

    @model_validator(mode="after")
    def _consistent(self) -> NexusConfig:
        problems = semantic_problems(self)
        if problems:
            raise ValueError("\n".join(problems))
        return self
