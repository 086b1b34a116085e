"""Fake Gemini API: ``GET /v1beta/models`` with ``x-goog-api-key`` checked and
``pageSize``/``pageToken`` pagination, answering with Google's own error bodies (a wrong key is
a 400 ``API_KEY_INVALID``, a missing one a 403, as the real service does)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from tests.fakes.server import FakeModel, FakeUpstream


def google_error(status: int, state: str, message: str, reason: str | None = None) -> JSONResponse:
    error: dict[str, Any] = {"code": status, "message": message, "status": state}
    if reason is not None:
        error["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": reason,
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            }
        ]
    return JSONResponse({"error": error}, status_code=status)


class FakeGemini(FakeUpstream):
    """Gemini. ``max_page_size`` caps ``pageSize`` (1000, as the real API; 50 when not sent)."""

    api_key = "AIza-test-key"
    max_page_size = 1000

    def routes(self) -> list[BaseRoute]:
        return [Route("/v1beta/models", self.list_models, methods=["GET"])]

    def check_key(self, request: Request) -> JSONResponse | None:
        sent = request.headers.get("x-goog-api-key") or request.query_params.get("key")
        if sent is None:
            message = "Method doesn't allow unregistered callers."
            return google_error(403, "PERMISSION_DENIED", message)
        if sent != self.api_key:
            message = "API key not valid. Please pass a valid API key."
            return google_error(400, "INVALID_ARGUMENT", message, reason="API_KEY_INVALID")
        return None

    async def list_models(self, request: Request) -> JSONResponse:
        rejected = self.check_key(request)
        if rejected is not None:
            return rejected
        size = min(int(request.query_params.get("pageSize", "50")), self.max_page_size)
        start = int(request.query_params.get("pageToken") or 0)
        page = self.models[start : start + size]
        body: dict[str, Any] = {"models": [self._entry(m) for m in page]}
        if start + size < len(self.models):
            body["nextPageToken"] = str(start + size)
        return JSONResponse(body)

    def _entry(self, model: FakeModel) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "name": f"models/{model.id}",
            "version": "001",
            "displayName": model.id.replace("-", " ").title(),
            "description": f"Fake {model.id}",
            "outputTokenLimit": 8192,
            "supportedGenerationMethods": list(model.methods),
            "temperature": 1,
            "topP": 0.95,
            "topK": 40,
        }
        if model.context_length is not None:
            entry["inputTokenLimit"] = model.context_length
        return {**entry, **model.extra}
