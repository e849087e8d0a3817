"""WebSocket connections through the same route checks as HTTP requests.

The handshake is a GET, so ``decide`` judges it like any request. A denied
handshake gets the same 401, 403 or 404 response as HTTP when the server
supports the ASGI "websocket.http.response" extension (uvicorn 0.55 does).
Otherwise it is closed with code 1008 (policy violation). A granted one is
connected upstream with aiohttp's ``ws_connect``, and messages are relayed in
both directions until either side closes.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from multidict import CIMultiDict
from starlette.types import Receive, Scope, Send
from yarl import URL

from gate.config.snapshot import SnapshotHolder
from gate.proxy.forward import Forwarder
from gate.proxy.handler import DecisionLog, HeaderBuilders
from gate.proxy.pipeline import Decision, ProxyRequest, Rejection, decide
from gate.proxy.replies import denial_parts
from gate.state import SharedState

logger = logging.getLogger(__name__)

# The handshake headers that aiohttp writes itself for the upstream handshake.
_HANDSHAKE_HEADERS = frozenset(
    {b"sec-websocket-key", b"sec-websocket-version", b"sec-websocket-extensions", b"sec-websocket-protocol"}
)
POLICY_VIOLATION = 1008
NORMAL_CLOSURE = 1000


class WebSocketProxy:
    """Relay WebSocket connections that pass their route's checks."""

    def __init__(self, holder: SnapshotHolder, forwarder: Forwarder, state: SharedState) -> None:
        self.holder = holder
        self.forwarder = forwarder
        self.state = state
        self.headers = HeaderBuilders()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        snapshot = self.holder.current
        builder = self.headers.of(snapshot)
        log = DecisionLog(builder.forwarded.request_id(scope["headers"]))

        try:
            if (await receive())["type"] != "websocket.connect":
                return

            decision = await decide(snapshot, ProxyRequest.from_scope(scope), self.state)
            log.record(decision)
            if not decision.granted or decision.route is None or decision.path is None:
                await deny_websocket(scope, send, decision)
                return

            client = scope.get("client")
            headers = builder.build(
                [(name, value) for name, value in scope["headers"] if name not in _HANDSHAKE_HEADERS],
                peer=client[0] if client else None,
                scheme="https" if scope.get("scheme") == "wss" else "http",
                request_id=log.request_id,
                claims=decision.token.claims if decision.token else None,
                keep_authorization=decision.route.forward_authorization,
            )
            url = decision.route.upstream_url(decision.path, scope.get("query_string", b""))
            log.status = await self._relay(scope, receive, send, url, headers, log)
        finally:
            log.emit(event="websocket_decision")

    async def _relay(
        self, scope: Scope, receive: Receive, send: Send, url: str, headers: list[tuple[bytes, bytes]], log: DecisionLog
    ) -> int:
        try:
            upstream = await self.forwarder.session.ws_connect(
                URL(url, encoded=True),
                headers=CIMultiDict((name.decode("latin-1"), value.decode("latin-1")) for name, value in headers),
                protocols=_subprotocols(scope),
                timeout=aiohttp.ClientWSTimeout(ws_close=self.forwarder.config.connect_timeout),
            )
        except (aiohttp.ClientError, TimeoutError) as error:
            logger.warning(
                "upstream WebSocket handshake failed", extra={"event": "upstream_error", "error": type(error).__name__}
            )
            log.reason_id = "upstream_unreachable"
            failed = Decision(
                False,
                "upstream_unreachable",
                502,
                error=Rejection("bad_gateway", "The upstream WebSocket handshake failed."),
            )
            await deny_websocket(scope, send, failed)
            return 502

        async with upstream:
            await send({"type": "websocket.accept", "subprotocol": upstream.protocol})
            to_upstream = asyncio.create_task(_client_to_upstream(receive, upstream))
            to_client = asyncio.create_task(_upstream_to_client(upstream, send))
            done, pending = await asyncio.wait({to_upstream, to_client}, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

        for task in done:
            if not task.cancelled() and task.exception() is not None:
                error = task.exception()
                logger.warning(
                    "WebSocket relay ended with an error",
                    extra={"event": "websocket_error", "error": type(error).__name__},
                )
        return 101


def _subprotocols(scope: Scope) -> tuple[str, ...]:
    return tuple(scope.get("subprotocols") or ())


async def _client_to_upstream(receive: Receive, upstream: aiohttp.ClientWebSocketResponse) -> None:
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            await upstream.close(code=message.get("code", NORMAL_CLOSURE))
            return
        if message.get("text") is not None:
            await upstream.send_str(message["text"])
        elif message.get("bytes") is not None:
            await upstream.send_bytes(message["bytes"])


async def _upstream_to_client(upstream: aiohttp.ClientWebSocketResponse, send: Send) -> None:
    async for message in upstream:
        if message.type == aiohttp.WSMsgType.TEXT:
            await send({"type": "websocket.send", "text": message.data})
        elif message.type == aiohttp.WSMsgType.BINARY:
            await send({"type": "websocket.send", "bytes": message.data})
        elif message.type == aiohttp.WSMsgType.ERROR:
            break

    code = upstream.close_code if upstream.close_code and upstream.close_code < 5000 else NORMAL_CLOSURE
    await send({"type": "websocket.close", "code": code})


async def deny_websocket(scope: Scope, send: Send, decision: Decision) -> None:
    """Reject a WebSocket handshake with ``decision``'s HTTP response, or close code 1008."""
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": POLICY_VIOLATION})
        return

    start, body = denial_parts(decision)
    await send({**start, "type": "websocket.http.response.start"})
    await send({**body, "type": "websocket.http.response.body"})
