"""Fake OpenAI-compatible server (OpenAI itself, vLLM, llama.cpp, LM Studio, exo): ``GET
/v1/models`` and llama.cpp's ``GET /health``.

``context_field`` picks where a model's context length appears in the listing, as the real
servers do: ``"max_model_len"`` (vLLM), ``"meta.n_ctx_train"`` (llama.cpp), ``"context_length"``
(LM Studio / OpenRouter style) or None (OpenAI: never). With ``api_key`` set, requests need
``Authorization: Bearer <api_key>`` and get OpenAI's 401 body otherwise.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from tests.fakes.server import FakeModel, FakeUpstream

CREATED = 1_700_000_000


class FakeOpenAI(FakeUpstream):
    """OpenAI-compatible ``/v1/models``; see the module docstring for the knobs."""

    context_field: str | None = "max_model_len"
    api_key: str | None = None
    owned_by = "vllm"

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/v1/models", self.list_models, methods=["GET"]),
            Route("/health", self.health, methods=["GET"]),
        ]

    async def list_models(self, request: Request) -> JSONResponse:
        rejected = self.check_key(request)
        if rejected is not None:
            return rejected
        data = [self._entry(m) for m in self.models]
        return JSONResponse({"object": "list", "data": data})

    async def health(self, request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    def check_key(self, request: Request) -> JSONResponse | None:
        """OpenAI's 401 when ``api_key`` is set and the request does not carry it."""
        if self.api_key is None:
            return None
        sent = request.headers.get("authorization", "")
        if sent == f"Bearer {self.api_key}":
            return None
        shown = sent.removeprefix("Bearer ")
        error = {
            "message": f"Incorrect API key provided: {shown}.",  # OpenAI echoes (part of) it
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
        return JSONResponse({"error": error}, status_code=401)

    def _entry(self, model: FakeModel) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "id": model.id,
            "object": "model",
            "created": CREATED,
            "owned_by": self.owned_by,
        }
        ctx = model.context_length
        if ctx is not None and self.context_field == "meta.n_ctx_train":
            entry["meta"] = {"vocab_type": 2, "n_vocab": 128256, "n_ctx_train": ctx}
        elif ctx is not None and self.context_field is not None:
            entry[self.context_field] = ctx
        entry.update(model.extra)
        return entry
