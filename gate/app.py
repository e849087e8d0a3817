"""The gate ASGI application: gate's own endpoints in front, the proxy behind.

gate's own endpoints (token, introspection, revocation, discovery, JWKS, health,
metrics, decision endpoints) are found by exact path. An Envoy decision
endpoint also takes every path below its own. Every other HTTP request goes
to the proxy. A dict lookup replaces a Starlette ``Router`` here because the
router would match every proxied request against each route pattern, and
because the token path comes from the config, which is reloaded while the
app runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from prometheus_client import start_http_server
from starlette.routing import request_response
from starlette.types import ASGIApp, Receive, Scope, Send

from gate import metrics
from gate.config.reloader import ConfigReloader
from gate.config.snapshot import Snapshot, SnapshotHolder
from gate.health import HealthEndpoints
from gate.oauth.endpoint import TokenEndpoint
from gate.oauth.introspection import IntrospectionEndpoint
from gate.oauth.metadata import (
    AUTHORIZATION_SERVER_PATH,
    JWKS_PATH,
    OPENID_CONFIGURATION_PATH,
    MetadataEndpoints,
)
from gate.oauth.revocation import RevocationEndpoint
from gate.proxy.decision_endpoint import DecisionEndpoint, find_endpoint
from gate.proxy.forward import Forwarder
from gate.proxy.handler import ProxyHandler
from gate.proxy.paths import PathError, normalise_path
from gate.proxy.replies import send_json
from gate.proxy.websocket import WebSocketProxy
from gate.state import MemoryState, SharedState, create_state

logger = logging.getLogger(__name__)

_DISGUISED_ENDPOINT = {
    "error": "invalid_path",
    "error_description": "The path names one of gate's own endpoints in a non-canonical form; use its canonical path.",
}


class GateApp:
    """The ASGI app that ``gate serve`` runs under uvicorn."""

    def __init__(
        self, holder: SnapshotHolder, state: SharedState | None = None, reloader: ConfigReloader | None = None
    ) -> None:
        self.holder = holder
        self.state: SharedState = state or MemoryState()
        self.reloader = reloader or ConfigReloader(holder)
        self.forwarder = Forwarder(holder.current.config.upstream_client)
        self.proxy = ProxyHandler(holder, self.forwarder, self.state)
        self._admin_server: Any = None
        self.websockets = WebSocketProxy(holder, self.forwarder, self.state)
        self.decisions = DecisionEndpoint(holder, self.state)

        metadata = MetadataEndpoints(holder)
        health = HealthEndpoints(holder, self.reloader, self.state)
        self._fixed: dict[str, ASGIApp] = {
            OPENID_CONFIGURATION_PATH: request_response(metadata.metadata),
            AUTHORIZATION_SERVER_PATH: request_response(metadata.metadata),
            JWKS_PATH: request_response(metadata.jwks),
            "/healthz": request_response(health.healthz),
            "/readyz": request_response(health.readyz),
        }
        # With a separate admin listener, /metrics on the main listener is an
        # ordinary path that the routes may send upstream.
        if holder.current.config.admin_listen is None:
            self._fixed["/metrics"] = request_response(metrics.metrics_endpoint)
        self._token_endpoint = TokenEndpoint(holder, self.state).asgi
        self._introspection_endpoint = IntrospectionEndpoint(holder, self.state).asgi
        self._revocation_endpoint = RevocationEndpoint(holder, self.state).asgi

    def endpoint_for(self, snapshot: Snapshot, path: str) -> ASGIApp | None:
        """Return gate's own endpoint at ``path``, or ``None`` for the proxy."""
        if path == snapshot.config.token_path:
            return self._token_endpoint
        if path == snapshot.config.token_endpoint.introspection_path:
            return self._introspection_endpoint
        if path == snapshot.config.token_endpoint.revocation_path:
            return self._revocation_endpoint
        if snapshot.config.decision_endpoints and find_endpoint(snapshot.config, path) is not None:
            return self.decisions
        return self._fixed.get(path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            snapshot = self.holder.current
            path = scope["path"]
            endpoint = self.endpoint_for(snapshot, path)
            if endpoint is None and ("//" in path or "/." in path) and self._disguises_own_endpoint(snapshot, scope):
                await send_json(send, 400, _DISGUISED_ENDPOINT)
                return
            await (endpoint or self.proxy)(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "websocket":
            await self.websockets(scope, receive, send)

    def _disguises_own_endpoint(self, snapshot: Snapshot, scope: Scope) -> bool:
        """Tell whether a path with dot segments or repeated slashes normalises to one of gate's own endpoints.

        Such a request would otherwise go to the proxy, and a catch-all route
        would forward, for example, a token request with its credentials.
        """
        try:
            path = normalise_path(scope.get("raw_path") or scope["path"].encode())
        except PathError:
            return False
        return self.endpoint_for(snapshot, path) is not None

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
        await self.holder.current.start()
        await self.reloader.start()
        self._start_admin_listener()

        snapshot = self.holder.current
        logger.info(
            "gate started",
            extra={"event": "start", "config": snapshot.source, "config_version": snapshot.version},
        )

    async def _shutdown(self) -> None:
        logger.info("gate stopping", extra={"event": "stop", "config_version": self.holder.current.version})
        await self.reloader.stop()
        await self.holder.current.close()
        if self._admin_server is not None:
            self._admin_server.shutdown()
            self._admin_server.server_close()
        await self.forwarder.close()
        await self.state.close()
        logger.info("gate stopped", extra={"event": "stopped"})

    def _start_admin_listener(self) -> None:
        """Serve ``/metrics`` on ``admin_listen``, in a thread of prometheus_client's WSGI server."""
        admin = self.holder.current.config.admin_listen
        if admin is None:
            return

        self._admin_server, _thread = start_http_server(admin.port, addr=admin.host, registry=metrics.REGISTRY)
        logger.info("admin listener started", extra={"event": "admin_listen", "host": admin.host, "port": admin.port})


def create_app(snapshot: Snapshot, *, watch: bool = False, sighup: bool = False) -> GateApp:
    """Build the gate app serving ``snapshot``, with the shared-state backend its config names.

    With ``watch`` the app reloads its config file when it or a file it
    references changes. With ``sighup`` it reloads on ``SIGHUP``, which works
    only when the app's event loop runs in the main thread.
    """
    holder = SnapshotHolder(snapshot)
    return GateApp(
        holder, create_state(snapshot.shared_state), reloader=ConfigReloader(holder, watch=watch, sighup=sighup)
    )
