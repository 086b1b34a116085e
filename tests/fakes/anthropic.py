"""Fake Anthropic: ``GET /v1/models`` with ``x-api-key`` and ``anthropic-version`` checked and
``limit``/``after_id`` pagination, answering with Anthropic's own error bodies."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from tests.fakes.server import FakeModel, FakeUpstream

CREATED_AT = "2025-02-19T00:00:00Z"


def anthropic_error(status: int, kind: str, message: str) -> JSONResponse:
    body = {"type": "error", "error": {"type": kind, "message": message}}
    return JSONResponse(body, status_code=status)


class FakeAnthropic(FakeUpstream):
    """Anthropic. ``api_key`` is the only key accepted; ``max_page_size`` caps ``limit``."""

    api_key = "sk-ant-test-key"
    max_page_size = 1000

    def routes(self) -> list[BaseRoute]:
        return [Route("/v1/models", self.list_models, methods=["GET"])]

    def check_headers(self, request: Request) -> JSONResponse | None:
        """Anthropic's 401 for a missing or wrong key, 400 without ``anthropic-version``."""
        if request.headers.get("x-api-key") != self.api_key:
            return anthropic_error(401, "authentication_error", "invalid x-api-key")
        if "anthropic-version" not in request.headers:
            message = "anthropic-version: header is required"
            return anthropic_error(400, "invalid_request_error", message)
        return None

    async def list_models(self, request: Request) -> JSONResponse:
        rejected = self.check_headers(request)
        if rejected is not None:
            return rejected
        limit = int(request.query_params.get("limit", "20"))
        if not 1 <= limit <= 1000:
            return anthropic_error(400, "invalid_request_error", "limit: out of range")
        limit = min(limit, self.max_page_size)
        ids = [m.id for m in self.models]
        after = request.query_params.get("after_id")
        start = ids.index(after) + 1 if after in ids else 0
        page = self.models[start : start + limit]
        return JSONResponse(
            {
                "data": [self._entry(m) for m in page],
                "has_more": start + limit < len(ids),
                "first_id": page[0].id if page else None,
                "last_id": page[-1].id if page else None,
            }
        )

    def _entry(self, model: FakeModel) -> dict[str, Any]:
        name = model.id.replace("-", " ").title()
        entry = {"type": "model", "id": model.id, "display_name": name, "created_at": CREATED_AT}
        return {**entry, **model.extra}
