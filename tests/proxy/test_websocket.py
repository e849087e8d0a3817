"""WebSocket connections pass the same route checks and relay messages both ways."""

from __future__ import annotations

import aiohttp
import pytest

from tests.conftest import USERNAME
from tests.proxy.conftest import ProxyGate


async def test_websocket_relays_both_ways(proxy_gate: ProxyGate) -> None:
    headers = {"Authorization": f"Bearer {proxy_gate.token()}", "X-Gate-Subject": "admin-robot"}

    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(proxy_gate.url + "/ws/chat?room=1", headers=headers, protocols=("chat.v1",)) as websocket,
    ):
        greeting = await websocket.receive_str(timeout=5)
        await websocket.send_str("ping")
        text_echo = await websocket.receive_str(timeout=5)
        await websocket.send_bytes(b"\x00\x01")
        bytes_echo = await websocket.receive_bytes(timeout=5)
        protocol = websocket.protocol

    upstream_scope = proxy_gate.upstream.websockets[-1]
    upstream_headers = {name.decode(): value.decode() for name, value in upstream_scope["headers"]}
    assert greeting == "hello"
    assert text_echo == "echo: ping"
    assert bytes_echo == b"echo: \x00\x01"
    assert protocol == "chat.v1"
    assert upstream_scope["path"] == "/ws/chat"
    assert upstream_scope["query_string"] == b"room=1"
    assert upstream_headers["x-gate-subject"] == USERNAME
    assert "authorization" not in upstream_headers


WEBSOCKET_DENIALS = {
    "no token": ("/ws/chat", None, 401),
    "missing scope": ("/ws/chat", {"scope": "billing:read"}, 403),
    "dot-dot from public": ("/public/%2e%2e/ws/chat", None, 401),
    "no route": ("/nowhere/ws", None, 404),
}


@pytest.mark.parametrize("path, claims, status", WEBSOCKET_DENIALS.values(), ids=WEBSOCKET_DENIALS.keys())
async def test_websocket_handshake_denied(proxy_gate: ProxyGate, path: str, claims: dict | None, status: int) -> None:
    headers = {} if claims is None else {"Authorization": f"Bearer {proxy_gate.token(**claims)}"}
    before = len(proxy_gate.upstream.websockets)

    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            await session.ws_connect(proxy_gate.url + path, headers=headers)

    assert caught.value.status == status
    assert len(proxy_gate.upstream.websockets) == before


async def test_websocket_denial_has_challenge(proxy_gate: ProxyGate) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            await session.ws_connect(proxy_gate.url + "/ws/chat")

    assert caught.value.headers is not None
    assert caught.value.headers["WWW-Authenticate"] == 'Bearer realm="gate"'
