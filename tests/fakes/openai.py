"""Fake OpenAI-compatible server (OpenAI itself, vLLM, llama.cpp, LM Studio, exo): ``GET
/v1/models``, llama.cpp's ``GET /health``, and ``POST /v1/chat/completions`` / ``POST
/v1/embeddings`` (:mod:`tests.fakes.chat`: knobs and programmable failures).

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

from tests.fakes.chat import OpenAICompatibleFake
from tests.fakes.server import FakeModel

CREATED = 1_700_000_000


class FakeOpenAI(OpenAICompatibleFake):
    """OpenAI-compatible ``/v1/models`` and inference; see the module docstrings for the knobs."""

    context_field: str | None = "max_model_len"
    owned_by = "vllm"

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/v1/models", self.list_models, methods=["GET"]),
            Route("/health", self.health, methods=["GET"]),
            *self.inference_routes(),
        ]

    async def list_models(self, request: Request) -> JSONResponse:
        rejected = self.check_key(request)
        if rejected is not None:
            return rejected
        data = [self._entry(m) for m in self.models]
        return JSONResponse({"object": "list", "data": data})

    async def health(self, request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

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
