"""The ``X-Nexus-*`` response headers (README, "HTTP API"), built from one value object.

Every response of ``/v1/chat/completions`` and ``/v1/embeddings`` carries them, success or error,
JSON or SSE. Values are made header-safe: printable ASCII passes as is, anything else is
percent-encoded, so nothing a backend or client named can inject a header.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import quote

NONE = "none"
_PRINTABLE = re.compile(r"^[\x20-\x7e]*$")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def header_safe(value: str) -> str:
    """``value`` as a header value that cannot break the header block."""
    return value if _PRINTABLE.match(value) else quote(value, safe="")


def request_id(client_value: str | None) -> str:
    """The client's ``X-Request-Id`` when it is a plain token (≤ 128 of ``A-Za-z0-9._:-``),
    else a new random id (32 hex digits)."""
    if client_value and _REQUEST_ID.match(client_value):
        return client_value
    return os.urandom(16).hex()


#: Every response header Nexus sets on the inference endpoints (browsers may read them: CORS).
HEADER_NAMES = (
    "x-nexus-backend",
    "x-nexus-backend-type",
    "x-nexus-route-reason",
    "x-nexus-privacy-zone",
    "x-nexus-cost-estimated",
    "x-nexus-fallback-model",
    "x-request-id",
    "retry-after",
)


@dataclass(frozen=True, slots=True)
class NexusHeaders:
    """What Nexus did for one request. ``backend`` None means no backend was chosen."""

    request_id: str
    backend: str | None = None
    location: str | None = None  # "local" | "cloud"
    route_reason: str | None = None
    zone: str | None = None
    cost_usd: float | None = None
    fallback_model: str | None = None
    extra: tuple[tuple[str, str], ...] = ()  # e.g. the tenant's x-ratelimit-* headers

    def as_list(self) -> list[tuple[str, str]]:
        headers = [
            ("x-nexus-backend", header_safe(self.backend or NONE)),
            ("x-nexus-backend-type", self.location or NONE),
            ("x-nexus-route-reason", self.route_reason or NONE),
            ("x-nexus-privacy-zone", self.zone or NONE),
            ("x-request-id", self.request_id),
        ]
        if self.cost_usd is not None:
            headers.append(("x-nexus-cost-estimated", f"{self.cost_usd:.4f}"))
        if self.fallback_model is not None:
            headers.append(("x-nexus-fallback-model", header_safe(self.fallback_model)))
        if self.extra:
            headers += self.extra
        return headers

    def as_dict(self) -> dict[str, str]:
        return dict(self.as_list())
