"""A scripted HTTP/1.1 upstream on raw sockets, and an ASGI client side, for the native client's tests.

uvicorn hides what the native client must handle (idle connections closed
under it, 1xx responses, bodies read until close), so these tests respond
with bytes written by hand.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from starlette.types import Message

from gate.config.model import UpstreamClientConfig
from gate.proxy.forward import RequestBody
from gate.proxy.headers import Headers
from gate.proxy.native_client import NativeClient


@dataclass
class Request:
    """One request as the upstream read it: the head's lines and the body with its framing removed."""

    connection: int
    lines: list[bytes]
    body: bytes

    def header(self, name: bytes) -> list[bytes]:
        prefix = name.lower() + b":"
        return [line[len(prefix) :].strip() for line in self.lines[1:] if line.lower().startswith(prefix)]


Reply = Callable[[Request, asyncio.StreamWriter], Awaitable[bool]]
"""Respond to one request; return whether the connection stays open."""


@dataclass
class ScriptedServer:
    reply: Reply
    url: str = ""
    connections: int = 0
    requests: list[Request] = field(default_factory=list)
    listener: asyncio.Server | None = None

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        try:
            while True:
                request = await read_request(reader, number)
                if request is None:
                    return
                self.requests.append(request)
                if not await self.reply(request, writer):
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return  # asyncio logs a handler cancelled at shutdown as an error; it is not one
        finally:
            writer.close()


async def read_request(reader: asyncio.StreamReader, connection: int) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head[:-4].split(b"\r\n")
    request = Request(connection, lines, b"")
    length = request.header(b"content-length")
    if length:
        request.body = await reader.readexactly(int(length[0]))
    elif request.header(b"transfer-encoding") == [b"chunked"]:
        while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
            request.body += await reader.readexactly(size)
            await reader.readexactly(2)
        await reader.readexactly(2)
    return request


@asynccontextmanager
async def scripted(reply: Reply) -> AsyncIterator[ScriptedServer]:
    server = ScriptedServer(reply)
    listener = await asyncio.start_server(server.serve, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    server.url = f"http://127.0.0.1:{port}"
    server.listener = listener
    async with listener:
        yield server


def answer(raw: bytes, *, keep_open: bool = True) -> Reply:
    async def reply(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(raw)
        await writer.drain()
        return keep_open

    return reply


@dataclass
class Exchange:
    """What the ASGI client received in one forwarded exchange."""

    status: int
    messages: list[Message]

    @property
    def headers(self) -> Headers:
        return self.messages[0]["headers"]

    @property
    def body(self) -> bytes:
        return b"".join(message.get("body", b"") for message in self.messages[1:])

    @property
    def finished(self) -> bool:
        return not self.messages[-1].get("more_body", False) and len(self.messages) > 1


def native_client(**settings: object) -> NativeClient:
    return NativeClient(UpstreamClientConfig(engine="native", **settings))


async def forward(
    client: NativeClient,
    url: str,
    *,
    method: str = "GET",
    headers: Headers | None = None,
    body: list[bytes] | None = None,
    read_timeout: float | None = 2.0,
    send_delay: float = 0.0,
) -> Exchange:
    """Forward one request, its body sent in the given chunks, and collect what reaches the client.

    ``send_delay`` makes the client slow: each message it receives takes that many seconds.
    """
    messages: list[Message] = []
    chunks = list(body or [])

    async def receive() -> Message:
        if not chunks:
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.request", "body": chunks.pop(0), "more_body": bool(chunks)}

    async def send(message: Message) -> None:
        messages.append(message)
        await asyncio.sleep(send_delay)

    request_body = RequestBody(receive, has_body=body is not None)
    status = await client.exchange({"method": method}, send, url, headers or [], request_body, read_timeout)
    return Exchange(status, messages)
