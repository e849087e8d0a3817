"""The decision endpoint: gate as the auth service that an ingress queries before it forwards.

It runs the proxy's ``decide`` on the original request that the ingress
describes (see ``gate.proxy.ingress``) and forwards nothing. The same
normalisation, verified-token cache, revocation check, metrics and decision
log line as the proxy apply, so one config gives the same verdict in both
deployments.

- Granted: 200 with an empty body and the route's identity headers built from
  the token's claims, which the ingress copies onto the upstream request. No
  header the client sent is echoed back, so a client cannot smuggle an
  identity header through the ingress's copy rules.
- Denied: the proxy's status, RFC 6750 ``WWW-Authenticate`` header and JSON
  body. nginx ``auth_request`` turns any status other than 401 and 403 into a
  500, so for nginx a 400 or 404 is sent as 403; the body's ``reason`` keeps
  the proxy's reason id.
- A peer outside the endpoint's ``trusted_ingresses`` gets 403
  ``untrusted_ingress``, because its headers could describe any request.
"""

from __future__ import annotations

import ipaddress
import json
import logging

from starlette.types import Receive, Scope, Send

from gate import metrics
from gate.config.model import DecisionEndpointConfig, GateConfig
from gate.config.snapshot import Snapshot, SnapshotHolder
from gate.proxy.handler import DecisionLog, HeaderBuilders
from gate.proxy.ingress import IngressRequestError, original_request, serves
from gate.proxy.pipeline import Decision, decide
from gate.proxy.replies import denial_parts, json_response_parts
from gate.state import SharedState

logger = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

NGINX_STATUSES = frozenset({401, 403})
"""The denial statuses nginx ``auth_request`` passes to the client; it sends 500 for any other status."""


def find_endpoint(config: GateConfig, path: str) -> DecisionEndpointConfig | None:
    """Return the decision endpoint that serves ``path``, if any."""
    for endpoint in config.decision_endpoints:
        if serves(endpoint, path):
            return endpoint
    return None


class IngressNetworks:
    """The parsed ``trusted_ingresses`` of the current config, rebuilt when the config changes."""

    def __init__(self) -> None:
        self._for: tuple[GateConfig, dict[str, tuple[Network, ...]]] | None = None

    def trusts(self, config: GateConfig, endpoint: DecisionEndpointConfig, peer: str | None) -> bool:
        if peer is None:
            return False
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self._networks(config)[endpoint.path])

    def _networks(self, config: GateConfig) -> dict[str, tuple[Network, ...]]:
        cached = self._for
        if cached is not None and cached[0] is config:
            return cached[1]

        parsed = {
            endpoint.path: tuple(ipaddress.ip_network(network, strict=False) for network in endpoint.trusted_ingresses)
            for endpoint in config.decision_endpoints
        }
        self._for = (config, parsed)
        return parsed


class DecisionEndpoint:
    """The ASGI app behind every configured decision endpoint path."""

    def __init__(self, holder: SnapshotHolder, state: SharedState) -> None:
        self.holder = holder
        self.state = state
        self.headers = HeaderBuilders()
        self.networks = IngressNetworks()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        snapshot = self.holder.current
        log = DecisionLog(self.headers.of(snapshot).forwarded.request_id(scope["headers"]))
        try:
            start, body = await self._answer(snapshot, scope, log)
            await send(start)
            await send(body)
        finally:
            log.emit("auth_decision", "decision request")
            metrics.observe_proxy_request(scope, log.route_id, log.granted, log.reason_id, log.started)

    async def _answer(self, snapshot: Snapshot, scope: Scope, log: DecisionLog) -> tuple[dict, dict]:
        endpoint = find_endpoint(snapshot.config, scope["path"])
        if endpoint is None:
            # A reload removed the endpoint after the app dispatched this request here.
            return _rejection(log, 404, "not_found", "No decision endpoint at this path.", "no_route")

        client = scope.get("client")
        peer = client[0] if client else None
        if not self.networks.trusts(snapshot.config, endpoint, peer):
            logger.warning(
                "decision request from an untrusted address",
                extra={"event": "untrusted_ingress", "request_id": log.request_id, "client": peer},
            )
            return _rejection(log, 403, "access_denied", "This address is not a trusted ingress.", "untrusted_ingress")

        try:
            request = original_request(endpoint, scope)
        except IngressRequestError as error:
            return _rejection(log, 400, "invalid_request", f"The ingress request is invalid: {error}.", "bad_ingress")

        decision = await decide(snapshot, request, self.state)
        log.record(decision)
        if decision.granted:
            return self._granted(snapshot, decision, log)
        return _denied(endpoint, decision, log)

    def _granted(self, snapshot: Snapshot, decision: Decision, log: DecisionLog) -> tuple[dict, dict]:
        headers = [
            (b"content-length", b"0"),
            (b"cache-control", b"no-store"),
            (b"x-request-id", log.request_id.encode()),
        ]
        if decision.token is not None:
            headers.extend(self.headers.of(snapshot).identity.values_for(decision.token.claims))
        return (
            {"type": "http.response.start", "status": 200, "headers": headers},
            {"type": "http.response.body", "body": b""},
        )


def _denied(endpoint: DecisionEndpointConfig, decision: Decision, log: DecisionLog) -> tuple[dict, dict]:
    start, body = denial_parts(decision)
    if endpoint.ingress == "nginx" and decision.status not in NGINX_STATUSES:
        start["status"] = 403
        log.status = 403
    return start, body


def _rejection(log: DecisionLog, status: int, error: str, description: str, reason_id: str) -> tuple[dict, dict]:
    log.reason_id, log.status = reason_id, status
    body = json.dumps({"error": error, "error_description": description, "reason": reason_id}).encode()
    return json_response_parts(status, body)
