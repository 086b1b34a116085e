"""How a handler reaches the gateway: the app is a :class:`NexusApp`, which holds its
:class:`~nexus.gateway.Gateway` as a typed attribute (nothing else is kept on the app)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.requests import HTTPConnection

from nexus.gateway import Gateway


class NexusApp(FastAPI):
    """A FastAPI app serving one :class:`Gateway`."""

    def __init__(self, gateway: Gateway, **options: Any) -> None:
        super().__init__(**options)
        self.gateway = gateway


def gateway_of(connection: HTTPConnection) -> Gateway:
    """The gateway of the app serving ``connection``."""
    app = connection.scope["app"]
    assert isinstance(app, NexusApp), "the app must be built by nexus.app.create_app"
    return app.gateway
