"""The proxy as a pure ASGI app: decide, then forward.

``gate.proxy.pipeline.decide`` matches, authenticates and authorizes; this
module only answers denials, builds the upstream headers and forwards. Every
request gets one decision log line. A denied request never reaches an upstream.
"""

from __future__ import annotations

import logging
import time

from starlette.types import Receive, Scope, Send

from gate import metrics
from gate.config.model import GateConfig
from gate.config.snapshot import Snapshot, SnapshotHolder
from gate.errors import UpstreamError
from gate.proxy.forward import ClientDisconnectedError, Forwarder
from gate.proxy.headers import UpstreamHeaders
from gate.proxy.pipeline import Decision, ProxyRequest, decide
from gate.proxy.replies import send_denial, send_json
from gate.state import SharedState

logger = logging.getLogger(__name__)


class DecisionLog:
    """The fields of the one decision log line of a proxied request."""

    def __init__(self, request_id: str) -> None:
        self.started = time.perf_counter()
        self.request_id = request_id
        self.route_id: str | None = None
        self.subject: str | None = None
        self.issuer: str | None = None
        self.granted = False
        self.reason_id = "unknown"
        self.status = 500

    def record(self, decision: Decision) -> None:
        self.route_id = decision.route.id if decision.route else None
        self.subject = decision.token.subject if decision.token else None
        self.issuer = decision.token.issuer if decision.token else None
        self.granted = decision.granted
        self.reason_id = decision.reason_id
        self.status = decision.status

    def emit(self, event: str = "proxy_decision", kind: str = "proxy request") -> None:
        level = logging.INFO if self.granted else logging.WARNING
        if not logger.isEnabledFor(level):  # the fields below cost more than the check
            return
        logger.log(
            level,
            "%s %s",
            kind,
            "granted" if self.granted else "denied",
            extra={
                "event": event,
                "request_id": self.request_id,
                "route_id": self.route_id,
                "subject": self.subject,
                "issuer": self.issuer,
                "granted": self.granted,
                "reason_id": self.reason_id,
                "status": self.status,
                "duration_ms": round((time.perf_counter() - self.started) * 1000, 3),
            },
        )


class HeaderBuilders:
    """The ``UpstreamHeaders`` of the current config, rebuilt when the config changes."""

    def __init__(self) -> None:
        # The config object itself is kept, not its id(), because a freed
        # config's id can be reused by the next one.
        self._for: tuple[GateConfig, UpstreamHeaders] | None = None

    def of(self, snapshot: Snapshot) -> UpstreamHeaders:
        cached = self._for
        if cached is not None and cached[0] is snapshot.config:
            return cached[1]

        builder = UpstreamHeaders(snapshot.config.identity_headers, snapshot.config.forwarding)
        self._for = (snapshot.config, builder)
        return builder


class ProxyHandler:
    """Pass requests that meet their route's checks to the route's upstream."""

    def __init__(self, holder: SnapshotHolder, forwarder: Forwarder, state: SharedState) -> None:
        self.holder = holder
        self.state = state
        self.forwarder = forwarder
        self.headers = HeaderBuilders()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        snapshot = self.holder.current
        builder = self.headers.of(snapshot)
        log = DecisionLog(builder.forwarded.request_id(scope["headers"]))

        try:
            await self._handle(snapshot, builder, scope, receive, send, log)
        except UpstreamError as error:
            log.reason_id, log.status = error.reason_id, error.status
            logger.warning(
                "upstream failed",
                extra={
                    "event": "upstream_error",
                    "request_id": log.request_id,
                    "route_id": log.route_id,
                    "reason_id": error.reason_id,
                    "status": error.status,
                },
            )
            await send_json(send, error.status, {"error": error.reason_id, "error_description": error.description})
        except ClientDisconnectedError:
            # 499 is the status nginx logs for a client that closed the connection first.
            log.reason_id, log.status = "client_disconnected", 499
        finally:
            log.emit()
            metrics.observe_proxy_request(scope, log.route_id, log.granted, log.reason_id, log.started)

    async def _handle(
        self, snapshot: Snapshot, builder: UpstreamHeaders, scope: Scope, receive: Receive, send: Send, log: DecisionLog
    ) -> None:
        decision = await decide(snapshot, ProxyRequest.from_scope(scope), self.state)
        log.record(decision)
        if not decision.granted or decision.route is None or decision.path is None:
            await send_denial(send, decision)
            return

        route = decision.route
        client = scope.get("client")
        headers = builder.build(
            scope["headers"],
            peer=client[0] if client else None,
            scheme=scope.get("scheme", "http"),
            request_id=log.request_id,
            claims=decision.token.claims if decision.token else None,
            keep_authorization=route.forward_authorization,
        )
        url = route.upstream_url(decision.path, scope["query_string"])
        log.status = await self.forwarder.forward(scope, receive, send, url, headers, route.read_timeout)
