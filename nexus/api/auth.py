"""Client authentication for ``/v1/*`` when ``[server] api_keys_env`` is set.

The named environment variable holds comma-separated client keys; a request must send
``Authorization: Bearer <one of them>`` or ``x-api-key: <one of them>`` (what the anthropic SDK
and Claude Code send). Keys are compared in constant time against every
configured key. When the variable is unset or empty, every ``/v1/*`` request is refused (fail
closed) and the error says which variable to set. ``/health``, ``/metrics`` and the dashboard stay
open.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping, Sequence

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from nexus.api.endpoints import BY_PATH
from nexus.api.openai_dialect import error_response
from nexus.config.model import ClientConfig
from nexus.gateway import Failed, Problem
from nexus.gateway.tenants import DEFAULT, Tenant
from nexus.headers import NexusHeaders, request_id

PROTECTED_PREFIX = "/v1/"
#: Where the middleware leaves the request's tenant in the ASGI scope.
TENANT = "nexus.tenant"


class ClientKeys:
    """The accepted client keys and whose they are: the keys of ``api_keys_env`` (tenant
    ``default``) and one per ``[[clients]]`` entry. :meth:`tenant_for` checks one request's
    ``Authorization`` (or ``x-api-key``) header against every key."""

    def __init__(
        self,
        env_var: str | None,
        environ: Mapping[str, str] | None = None,
        clients: Sequence[ClientConfig] = (),
    ) -> None:
        env = os.environ if environ is None else environ
        self.env_var = env_var or ", ".join(client.api_key_env for client in clients)
        raw = env.get(env_var, "") if env_var else ""
        keys = [(key.strip().encode(), DEFAULT) for key in raw.split(",") if key.strip()]
        self.unset: list[str] = []
        for client in clients:
            key = env.get(client.api_key_env, "").strip()
            if key:
                keys.append((key.encode(), Tenant.from_config(client)))
            else:
                self.unset.append(f"{client.name} ({client.api_key_env})")
        self._keys = tuple(keys)

    @property
    def configured(self) -> bool:
        return bool(self._keys)

    def allows(self, authorization: str | None, x_api_key: str | None = None) -> bool:
        return self.tenant_for(authorization, x_api_key) is not None

    def tenant_for(self, authorization: str | None, x_api_key: str | None = None) -> Tenant | None:
        """The tenant whose key the request carries, or None."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            offered = token.strip().encode()
        elif x_api_key and x_api_key.strip():
            offered = x_api_key.strip().encode()
        else:
            return None
        found = None
        for key, tenant in self._keys:  # no early exit: the time does not depend on the match
            if hmac.compare_digest(offered, key):
                found = tenant
        return found


class ClientAuthMiddleware:
    """Refuses ``/v1/*`` requests without a valid client key with 401 in the OpenAI envelope."""

    def __init__(self, app: ASGIApp, keys: ClientKeys) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PROTECTED_PREFIX):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        tenant = self.keys.tenant_for(headers.get("authorization"), headers.get("x-api-key"))
        if tenant is not None:
            scope[TENANT] = tenant
            return await self.app(scope, receive, send)
        refusal = self._refusal(request_id(headers.get("x-request-id")), scope["path"])
        await refusal(scope, receive, send)

    def _refusal(self, rid: str, path: str) -> Response:
        if self.keys.configured:
            message = (
                "missing or invalid API key: send 'Authorization: Bearer <key>' or 'x-api-key'"
            )
        else:
            message = (
                f"no client keys are configured: set the environment variable {self.keys.env_var}"
            )
        failed = Failed(Problem.UNAUTHORIZED, message, NexusHeaders(rid))
        endpoint = BY_PATH.get(path)
        response = endpoint.dialect.render(failed) if endpoint else error_response(failed)
        response.headers["www-authenticate"] = "Bearer"
        return response
