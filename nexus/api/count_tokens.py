"""``POST /v1/messages/count_tokens`` (Anthropic's API, which Claude Code calls): the request's
input tokens as Nexus counts them for routing (tiktoken, exact for OpenAI's encodings and an
estimate for other models), answered by the gateway itself: no backend is asked, so the answer
is the same wherever the model runs. An unknown model is Anthropic's 404."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from nexus.api.anthropic_dialect import ANTHROPIC, parse_count
from nexus.api.context import gateway_of
from nexus.api.endpoints import COUNT_TOKENS
from nexus.api.models import model_entry
from nexus.api.openapi import count_tokens_route
from nexus.errors import InvalidRequest
from nexus.gateway import Failed, Problem
from nexus.headers import NexusHeaders, request_id
from nexus.routing import RequestKind
from nexus.routing.explain import unknown_model_message
from nexus.routing.planner import available_models

router = APIRouter(tags=["inference"])


@router.post(COUNT_TOKENS, response_model=None, **count_tokens_route())
async def count_tokens(request: Request) -> Response:
    gateway = gateway_of(request)
    headers = NexusHeaders(request_id(request.headers.get("x-request-id")))
    try:
        body = parse_count(await request.body())
        requirements = gateway.requirements(body, request.headers, RequestKind.MESSAGES)
    except (InvalidRequest, RecursionError) as exc:
        message = str(exc) if isinstance(exc, InvalidRequest) else "request body is too deep"
        return ANTHROPIC.render(Failed(Problem.INVALID_REQUEST, message, headers))
    snapshot, policy = gateway.registry.snapshot(), gateway.policy
    if model_entry(requirements.requested_model, snapshot, policy) is None:
        models = available_models(snapshot.backends, policy)
        message = unknown_model_message(requirements.requested_model, models)
        return ANTHROPIC.render(Failed(Problem.UNKNOWN_MODEL, message, headers, param="model"))
    content = b'{"input_tokens":%d}' % requirements.input_tokens
    return Response(content, headers=headers.as_dict(), media_type="application/json")
