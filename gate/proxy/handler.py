"""The proxy as a pure ASGI app: match, authenticate, authorize, forward.

Every request gets one decision log line. A request that fails a check is
answered here and never reaches an upstream.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time

from starlette.types import Receive, Scope, Send

from gate import metrics
from gate.config.snapshot import Snapshot, SnapshotHolder
from gate.errors import BearerError, UpstreamError
from gate.proxy.authorize import authorize
from gate.proxy.bearer import bearer_token, challenge, error_body
from gate.proxy.forward import Forwarder
from gate.proxy.headers import IdentityHeaders, upstream_request_headers
from gate.proxy.paths import PathError, normalise_path
from gate.proxy.routes import Route
from gate.state import SharedState
from gate.tokens.revocation_list import reject_if_revoked
from gate.tokens.verifier import VerifiedToken

logger = logging.getLogger(__name__)

_QUERY_SYNTAX = re.compile(rb"^[A-Za-z0-9\-._~!$&'()*+,;=:@%/?]*$")


class _Decision:
    """What the decision log line reports about one proxied request."""

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.route_id: str | None = None
        self.subject: str | None = None
        self.issuer: str | None = None
        self.granted = False
        self.reason_id = "unknown"
        self.status = 500


class ProxyHandler:
    """Pass requests that meet their route's checks to the route's upstream."""

    def __init__(self, holder: SnapshotHolder, forwarder: Forwarder, state: SharedState) -> None:
        self.holder = holder
        self.state = state
        self.forwarder = forwarder
        self._identity_for: dict[int, IdentityHeaders] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        snapshot = self.holder.current
        started = time.perf_counter()
        decision = _Decision(os.urandom(8).hex())

        try:
            await self._handle(snapshot, scope, receive, send, decision)
        except BearerError as error:
            await _send_bearer_error(send, error, decision)
        except UpstreamError as error:
            await _send_json(send, error.status, {"error": error.reason_id, "error_description": error.description})
            decision.reason_id, decision.status = error.reason_id, error.status
        finally:
            _log_decision(decision, started)
            metrics.observe_proxy_request(scope, decision.route_id, decision.granted, decision.reason_id, started)

    async def _handle(
        self, snapshot: Snapshot, scope: Scope, receive: Receive, send: Send, decision: _Decision
    ) -> None:
        path = await self._normalised_path(scope, send, decision)
        if path is None:
            return

        route = snapshot.routes.match(path)
        if route is None:
            decision.reason_id, decision.status = "no_route", 404
            await _send_json(send, 404, {"error": "not_found", "error_description": "No route matches this path."})
            return
        decision.route_id = route.id

        token = await self._authenticate(snapshot, route, scope, decision)
        headers = self._upstream_headers(snapshot, route, scope, token, decision)

        decision.granted = True
        decision.reason_id = "public_route" if token is None else "token_accepted"
        url = route.upstream_url(path, scope["query_string"])
        decision.status = await self.forwarder.forward(scope, receive, send, url, headers)

    async def _normalised_path(self, scope: Scope, send: Send, decision: _Decision) -> str | None:
        raw_path = scope.get("raw_path") or scope["path"].encode()
        try:
            path = normalise_path(raw_path)
            if not _QUERY_SYNTAX.match(scope["query_string"]):
                raise PathError("the query string contains characters that must be percent-encoded")
        except PathError as error:
            decision.reason_id, decision.status = "bad_path", 400
            await _send_json(
                send, 400, {"error": "invalid_path", "error_description": f"The request path is rejected: {error}."}
            )
            return None
        return path

    async def _authenticate(
        self, snapshot: Snapshot, route: Route, scope: Scope, decision: _Decision
    ) -> VerifiedToken | None:
        if route.mode == "public":
            return None

        token = await snapshot.verifier.verify(bearer_token(scope["headers"]))
        await reject_if_revoked(self.state, token, snapshot.config.issuer)
        decision.subject = token.subject
        decision.issuer = token.issuer
        authorize(route, token)
        return token

    def _upstream_headers(
        self, snapshot: Snapshot, route: Route, scope: Scope, token: VerifiedToken | None, decision: _Decision
    ) -> list[tuple[bytes, bytes]]:
        identity = self._identity_headers(snapshot)
        client_headers: list[tuple[bytes, bytes]] = scope["headers"]
        host = next((value for name, value in client_headers if name == b"host"), b"")
        client = scope.get("client")

        added = [
            (b"x-forwarded-for", (client[0] if client else "unknown").encode()),
            (b"x-forwarded-proto", scope.get("scheme", "http").encode()),
            (b"x-request-id", decision.request_id.encode()),
        ]
        if host:
            added.append((b"x-forwarded-host", host))
        if token is not None:
            added.extend(identity.values_for(token.claims))

        without_request_id = [(name, value) for name, value in client_headers if name != b"x-request-id"]
        return upstream_request_headers(
            without_request_id, identity=identity, keep_authorization=route.forward_authorization, added=added
        )

    def _identity_headers(self, snapshot: Snapshot) -> IdentityHeaders:
        key = id(snapshot.config.identity_headers)
        identity = self._identity_for.get(key)
        if identity is None:
            identity = IdentityHeaders(snapshot.config.identity_headers)
            self._identity_for = {key: identity}
        return identity


async def _send_json(
    send: Send, status: int, body: dict[str, str], extra_headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    payload = json.dumps(body, separators=(",", ":")).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        (b"cache-control", b"no-store"),
        *(extra_headers or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


async def _send_bearer_error(send: Send, error: BearerError, decision: _Decision) -> None:
    decision.reason_id, decision.status = error.reason_id, error.status
    payload = error_body(error)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        (b"cache-control", b"no-store"),
        (b"www-authenticate", challenge(error).encode()),
    ]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def _log_decision(decision: _Decision, started: float) -> None:
    level = logging.INFO if decision.granted else logging.WARNING
    logger.log(
        level,
        "proxy request %s",
        "granted" if decision.granted else "denied",
        extra={
            "event": "proxy_decision",
            "request_id": decision.request_id,
            "route_id": decision.route_id,
            "subject": decision.subject,
            "issuer": decision.issuer,
            "granted": decision.granted,
            "reason_id": decision.reason_id,
            "status": decision.status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
        },
    )
