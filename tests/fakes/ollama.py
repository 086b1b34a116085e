"""Fake Ollama: ``GET /api/tags``, ``POST /api/show`` and ``GET /v1/models``, as Ollama 0.6+
answers them (``capabilities`` in /api/show; older servers omit it: ``show_capabilities=False``),
plus the OpenAI-compatible ``POST /v1/chat/completions`` and ``POST /v1/embeddings`` Nexus uses
(:mod:`tests.fakes.chat`: knobs and programmable failures; ``api_key`` is None by default, as
Ollama checks no key, and applies to the ``/v1`` routes only).
"""

from __future__ import annotations

import hashlib
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from tests.fakes.chat import OpenAICompatibleFake, openai_error
from tests.fakes.server import FakeModel

CREATED = 1_717_000_000
MODIFIED_AT = "2024-05-29T12:00:00.000000000Z"


class FakeOllama(OpenAICompatibleFake):
    """Ollama. ``architecture`` names the ``model_info`` keys (``llama.context_length``)."""

    architecture = "llama"
    show_capabilities = True
    system_fingerprint = "fp_ollama"
    honours_base64 = False  # Ollama's /v1/embeddings answers floats to encoding_format "base64"

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/api/tags", self.tags, methods=["GET"]),
            Route("/api/show", self.show, methods=["POST"]),
            Route("/v1/models", self.openai_models, methods=["GET"]),
            *self.inference_routes(),
        ]

    async def tags(self, request: Request) -> JSONResponse:
        return JSONResponse({"models": [self._tag(m) for m in self.models]})

    async def show(self, request: Request) -> JSONResponse:
        payload = await request.json()
        name = payload.get("model") or payload.get("name")
        model = self.model(name) or self.model(f"{name}:latest")
        if model is None:
            return JSONResponse({"error": f"model '{name}' not found"}, status_code=404)
        return JSONResponse(self._show(model))

    async def openai_models(self, request: Request) -> JSONResponse:
        rejected = self.check_key(request)
        if rejected is not None:
            return rejected
        data = [
            {"id": m.id, "object": "model", "created": CREATED, "owned_by": "library"}
            for m in self.models
        ]
        return JSONResponse({"object": "list", "data": data})

    def unknown_model(self, model: str) -> JSONResponse:
        message = f'model "{model}" not found, try pulling it first'
        return JSONResponse(openai_error(message, "api_error"), status_code=404)

    def _tag(self, model: FakeModel) -> dict[str, Any]:
        return {
            "name": model.id,
            "model": model.id,
            "modified_at": MODIFIED_AT,
            "size": 4_661_224_676,
            "digest": hashlib.sha256(model.id.encode()).hexdigest(),
            "details": {
                "parent_model": "",
                "format": "gguf",
                "family": self.architecture,
                "families": [self.architecture],
                "parameter_size": "8.0B",
                "quantization_level": "Q4_0",
            },
            **model.extra,
        }

    def _show(self, model: FakeModel) -> dict[str, Any]:
        arch = self.architecture
        info: dict[str, Any] = {
            "general.architecture": arch,
            "general.parameter_count": 8_030_261_248,
            f"{arch}.attention.head_count": 32,
            f"{arch}.block_count": 32,
        }
        if model.context_length is not None:
            info[f"{arch}.context_length"] = model.context_length
        info[f"{arch}.embedding_length"] = 4096
        body: dict[str, Any] = {
            "license": "LICENSE",
            "modelfile": f"FROM {model.id}\n",
            "parameters": 'stop "<|eot_id|>"',
            "template": "{{ .Prompt }}",
            "details": self._tag(model)["details"],
            "model_info": info,
            "modified_at": MODIFIED_AT,
        }
        if self.show_capabilities:
            caps = ["completion"]
            caps += ["vision"] if model.vision else []
            caps += ["tools"] if model.tools else []
            body["capabilities"] = caps
        return body
