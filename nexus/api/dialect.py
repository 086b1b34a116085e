"""What a client dialect provides: a request parser and a renderer around the same gateway."""

from __future__ import annotations

from typing import Any, Protocol

from starlette.responses import Response

from nexus.gateway import Outcome
from nexus.routing import RequestKind


class Dialect(Protocol):
    def parse(self, raw: bytes, kind: RequestKind) -> dict[str, Any]:
        """The request body, checked as far as the gateway needs; raises InvalidRequest."""
        ...

    def render(self, outcome: Outcome) -> Response:
        """The HTTP response for ``outcome``: the answer passed on, or the error in this
        dialect's envelope, with the ``X-Nexus-*`` headers."""
        ...
