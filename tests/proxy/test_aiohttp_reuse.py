"""The aiohttp engine never hands a pooled connection's unrequested bytes to the next request."""

from __future__ import annotations

import asyncio

import pytest
from starlette.types import Message

from gate.config.model import UpstreamClientConfig
from gate.proxy.forward import Forwarder
from tests.proxy.native_upstream import Request, scripted

FIRST = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst"
UNREQUESTED = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nLEFTOVER"


async def forward_once(forwarder: Forwarder, url: str) -> tuple[int, bytes]:
    messages: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        messages.append(message)

    scope = {"type": "http", "method": "GET", "headers": []}
    status = await forwarder.forward(scope, receive, send, url, [], 2.0)
    return status, b"".join(message.get("body", b"") for message in messages[1:])


@pytest.mark.timeout(30)
async def test_unrequested_response_never_reaches_next_request() -> None:
    answered = 0

    async def reply(_: Request, writer: asyncio.StreamWriter) -> bool:
        nonlocal answered
        answered += 1
        writer.write(FIRST)
        await writer.drain()
        if answered == 1:
            await asyncio.sleep(0.1)  # the first response is complete and pooled by now
            writer.write(UNREQUESTED)
            await writer.drain()
        return True

    forwarder = Forwarder(UpstreamClientConfig(engine="aiohttp", max_connections=1))
    await forwarder.start()
    try:
        async with scripted(reply) as server:
            first = await forward_once(forwarder, server.url + "/a")
            await asyncio.sleep(0.4)  # the unrequested bytes arrive while the connection is idle
            second = await forward_once(forwarder, server.url + "/b")
    finally:
        await forwarder.close()

    assert first == (200, b"first")
    assert second == (200, b"first")
    assert server.connections == 2
