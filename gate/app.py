"""The gate ASGI application: gate's own endpoints in front, the proxy behind.

gate's own endpoints (token, discovery, JWKS, health) are Starlette endpoints
found by exact path; every other HTTP request goes to the proxy. A dict lookup
replaces a Starlette ``Router`` here because the router would match every
proxied request against each route pattern, and because the token path comes
from the config, which is reloaded while the app runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from starlette.routing import request_response
from starlette.types import ASGIApp, Receive, Scope, Send

from gate.config.snapshot import Snapshot, SnapshotHolder
from gate.health import HealthEndpoints
from gate.oauth.endpoint import TokenEndpoint
from gate.oauth.metadata import (
    AUTHORIZATION_SERVER_PATH,
    JWKS_PATH,
    OPENID_CONFIGURATION_PATH,
    MetadataEndpoints,
)
from gate.proxy.forward import Forwarder
from gate.proxy.handler import ProxyHandler
from gate.state import MemoryState, SharedState, create_state

logger = logging.getLogger(__name__)


class GateApp:
    """The ASGI app that ``gate serve`` runs under uvicorn."""

    def __init__(self, holder: SnapshotHolder, state: SharedState | None = None) -> None:
        self.holder = holder
        self.state: SharedState = state or MemoryState()
        self.forwarder = Forwarder(holder.current.config.upstream_client)
        self.proxy = ProxyHandler(holder, self.forwarder, self.state)

        metadata = MetadataEndpoints(holder)
        health = HealthEndpoints(holder, self.state)
        self._fixed: dict[str, ASGIApp] = {
            OPENID_CONFIGURATION_PATH: request_response(metadata.metadata),
            AUTHORIZATION_SERVER_PATH: request_response(metadata.metadata),
            JWKS_PATH: request_response(metadata.jwks),
            "/healthz": request_response(health.healthz),
            "/readyz": request_response(health.readyz),
        }
        self._token_endpoint = request_response(TokenEndpoint(holder, self.state))

    def endpoint_for(self, snapshot: Snapshot, path: str) -> ASGIApp | None:
        """Return gate's own endpoint at ``path``, or ``None`` for the proxy."""
        if path == snapshot.config.token_path:
            return self._token_endpoint
        return self._fixed.get(path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            endpoint = self.endpoint_for(self.holder.current, scope["path"])
            await (endpoint or self.proxy)(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        else:
            # TODO: proxy WebSocket connections under the same route checks.
            await send({"type": "websocket.close", "code": 1008})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self._run_hook(self._startup, "startup", send)
            elif message["type"] == "lifespan.shutdown":
                await self._run_hook(self._shutdown, "shutdown", send)
                return

    async def _run_hook(self, hook: Callable, phase: str, send: Send) -> None:
        try:
            await hook()
        except Exception as error:
            logger.exception("lifespan %s failed", phase)
            await send({"type": f"lifespan.{phase}.failed", "message": str(error)})
            return
        await send({"type": f"lifespan.{phase}.complete"})

    async def _startup(self) -> None:
        await self.forwarder.start()
        await self.state.start()

    async def _shutdown(self) -> None:
        await self.forwarder.close()
        await self.state.close()


def create_app(snapshot: Snapshot) -> GateApp:
    """Build the gate app serving ``snapshot``, with the shared-state backend its config names."""
    return GateApp(SnapshotHolder(snapshot), create_state(snapshot.shared_state))
