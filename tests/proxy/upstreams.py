"""Upstreams and a raw HTTP/1.1 client for proxy tests."""

from __future__ import annotations

import asyncio
import gzip
import socket
from dataclasses import dataclass, field

from tests.servers import RecordingUpstream

GZIP_BODY = gzip.compress(b'{"compressed": true}' * 50)
COOKIES = [b"session=abc; Path=/; HttpOnly", b"theme=dark; Path=/", b"lang=en, fr; Path=/"]


@dataclass
class ScriptedUpstream(RecordingUpstream):
    """A recording upstream with a few special paths.

    - ``/cookies``: three ``Set-Cookie`` headers and a repeated ``X-Multi`` header;
    - ``/gzip``: a gzip body with ``Content-Encoding: gzip`` and ``Content-Length``;
    - ``/drip``: sends a chunk every 20 ms until the client leaves, then records it in ``cancelled``;
    - any WebSocket: sends "hello", then echoes each message with "echo: " in front;
    - ``/stall``: sends one chunk, then nothing for two seconds;
    - ``/echo``: streams the request body back as it arrives, without keeping it, and
      records a client that leaves mid-body in ``cancelled``.
    """

    cancelled: list[str] = field(default_factory=list)
    echoed_bytes: list[int] = field(default_factory=list)
    websockets: list[dict] = field(default_factory=list)

    async def __call__(self, scope: dict, receive, send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path.endswith("/drip"):
            await self._drip(scope, receive, send)
        elif path.endswith("/stall"):
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"first part\n", "more_body": True})
            await asyncio.sleep(2)
            await send({"type": "http.response.body", "body": b"too late\n"})
        elif path.endswith("/echo"):
            await self._echo(scope, receive, send)
        elif path.endswith("/cookies"):
            await self._respond(
                scope,
                receive,
                send,
                [(b"set-cookie", value) for value in COOKIES]
                + [(b"x-multi", b"one"), (b"x-multi", b"two"), (b"content-length", b"2")],
                b"ok",
            )
        elif path.endswith("/gzip"):
            headers = [
                (b"content-encoding", b"gzip"),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(GZIP_BODY)).encode()),
            ]
            await self._respond(scope, receive, send, headers, GZIP_BODY)
        else:
            await super().__call__(scope, receive, send)

    async def _respond(self, scope, receive, send, headers, body) -> None:
        await super().__call__(scope, receive, _Discard())
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _drip(self, scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        disconnect = asyncio.ensure_future(_until_disconnect(receive))
        for _ in range(500):  # at most 10 seconds
            if disconnect.done():
                self.cancelled.append(scope["path"])
                return
            await send({"type": "http.response.body", "body": b"tick\n", "more_body": True})
            await asyncio.sleep(0.02)
        disconnect.cancel()
        await send({"type": "http.response.body", "body": b""})

    async def _echo(self, scope, receive, send) -> None:
        headers = [(b"content-type", b"application/octet-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.cancelled.append(scope["path"])
                return
            chunk = message.get("body", b"")
            total += len(chunk)
            if chunk:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if not message.get("more_body"):
                break
        self.echoed_bytes.append(total)
        await send({"type": "http.response.body", "body": b""})

    async def _websocket(self, scope, receive, send) -> None:
        self.websockets.append(scope)
        await receive()  # websocket.connect
        await send({"type": "websocket.accept", "subprotocol": (scope.get("subprotocols") or [None])[0]})
        await send({"type": "websocket.send", "text": "hello"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                await send({"type": "websocket.send", "text": "echo: " + message["text"]})
            else:
                await send({"type": "websocket.send", "bytes": b"echo: " + message["bytes"]})


class _Discard:
    async def __call__(self, message: dict) -> None:
        return None


async def _until_disconnect(receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


@dataclass
class RawResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]


def send_raw(base_url: str, request: bytes, timeout: float = 5.0) -> RawResponse:
    """Send ``request`` byte for byte and read the response until the server closes.

    Requests should carry ``Connection: close``. The body is returned as sent
    on the wire, so a chunked body keeps its chunk framing.
    """
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as connection:
        connection.sendall(request)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk

    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = [tuple(part.strip() for part in line.split(":", 1)) for line in header_lines]
    return RawResponse(int(status_line.split()[1]), headers, body)  # type: ignore[arg-type]
