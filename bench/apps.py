"""The ASGI apps that bench/run.py starts under uvicorn next to gate.

- ``upstream_app``: the raw ASGI upstream. ``GET`` of any path returns a
  64-byte JSON body, except ``GET /download/BYTES``, which streams that many
  bytes. ``POST`` reads the whole body in chunks and returns its length.
- ``build_bare_proxy``: a reverse proxy with no auth, pure ASGI plus one
  pooled aiohttp session with the settings of gate's forwarder, in front of
  ``$BENCH_UPSTREAM``. It is what gate would cost without its own work.
- ``build_minimal_signer``: a Starlette token endpoint that reads a form,
  checks one app token by its SHA-256 hash and signs an ES256 access token
  with the claims gate issues. It is the baseline of gate's token endpoint.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import jwt
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from multidict import CIMultiDict
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from yarl import URL

from gate.proxy.forward import has_body

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

SMALL_BODY = b'{"status":"ok","service":"upstream","padding":"' + b"x" * 15 + b'"}'  # 64 bytes
DOWNLOAD_CHUNK = b"\0" * (64 * 1024)
JSON_TYPE = (b"content-type", b"application/json")

# Hop-by-hop headers (RFC 9110, section 7.6.1) apply to one connection, so a proxy drops them.
HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding", b"upgrade"}
)


async def run_lifespan(receive: Receive, send: Send, startup: Callable[[], Awaitable[None]] | None = None) -> None:
    """Acknowledge lifespan startup and shutdown, running ``startup`` first if given."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if startup is not None:
                await startup()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def send_small(send: Send, status: int, body: bytes) -> None:
    headers = [JSON_TYPE, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def stream_download(send: Send, size: int) -> None:
    headers = [(b"content-type", b"application/octet-stream"), (b"content-length", str(size).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    remaining = size
    while remaining > 0:
        chunk = DOWNLOAD_CHUNK[: min(remaining, len(DOWNLOAD_CHUNK))]
        remaining -= len(chunk)
        await send({"type": "http.response.body", "body": chunk, "more_body": remaining > 0})
    if size == 0:
        await send({"type": "http.response.body", "body": b""})


async def count_body(receive: Receive) -> int:
    """Read the request body to its end without keeping it; return its length in bytes."""
    length = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return length
        length += len(message.get("body", b""))
        if not message.get("more_body", False):
            return length


async def upstream_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await run_lifespan(receive, send)
        return
    if scope["type"] != "http":
        return

    if scope["method"] == "POST":
        length = await count_body(receive)
        await send_small(send, 200, json.dumps({"received_bytes": length}).encode())
        return

    parts = scope["path"].split("/")
    if len(parts) >= 3 and parts[-2] == "download" and parts[-1].isdigit():
        await stream_download(send, int(parts[-1]))
        return
    await send_small(send, 200, SMALL_BODY)


class BareProxy:
    """Forward every request to one upstream origin, with no checks at all."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        # The settings of gate/proxy/forward.py with its config defaults.
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=200, ttl_dns_cache=60),
            timeout=aiohttp.ClientTimeout(total=None, connect=5.0, sock_read=60.0),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await run_lifespan(receive, send, self.start)
        elif scope["type"] == "http":
            await self.forward(scope, receive, send)

    async def forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.session is not None, "the session starts with the lifespan"
        target = scope["raw_path"] + (b"?" + scope["query_string"] if scope["query_string"] else b"")
        headers = CIMultiDict(
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in scope["headers"]
            if name not in HOP_BY_HOP
        )
        body = request_body(receive) if has_body(scope["headers"]) else None
        response = await self.session.request(
            scope["method"],
            URL(self.upstream + target.decode("latin-1"), encoded=True),
            headers=headers,
            data=body,
            allow_redirects=False,
        )

        async with response:
            response_headers = [(name, value) for name, value in response.raw_headers if name.lower() not in HOP_BY_HOP]
            await send({"type": "http.response.start", "status": response.status, "headers": response_headers})
            async for chunk in response.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})


async def request_body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        if message.get("body"):
            yield message["body"]
        if not message.get("more_body", False):
            return


class BareNativeProxy(BareProxy):
    """The bare proxy on gate's native forwarding engine (gate/proxy/native_client.py) instead of aiohttp."""

    async def start(self) -> None:
        from gate.config.model import UpstreamClientConfig
        from gate.proxy.native_client import NativeClient

        self.client = NativeClient(UpstreamClientConfig(engine="native"))

    async def forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        from gate.proxy.forward import RequestBody

        target = scope["raw_path"] + (b"?" + scope["query_string"] if scope["query_string"] else b"")
        headers = [(name, value) for name, value in scope["headers"] if name not in HOP_BY_HOP and name != b"host"]
        body = RequestBody(receive, has_body=has_body(scope["headers"]))
        await self.client.exchange(scope, send, self.upstream + target.decode("latin-1"), headers, body, None)


def build_bare_proxy() -> BareProxy:
    """Build the bare proxy for ``$BENCH_UPSTREAM`` (``uvicorn --factory``) on ``$BENCH_ENGINE``."""
    if os.environ.get("BENCH_ENGINE") == "native":
        return BareNativeProxy(os.environ["BENCH_UPSTREAM"])
    return BareProxy(os.environ["BENCH_UPSTREAM"])


def build_minimal_signer() -> Starlette:
    """Build the minimal ES256 token endpoint (``uvicorn --factory``).

    Reads ``$BENCH_SIGNER_SETTINGS``, a JSON file with ``private_key_file``,
    ``kid``, ``issuer``, ``token_path``, ``client_id``, ``username``,
    ``app_token_sha256``, ``audience``, ``scope`` and ``lifetime``.
    """
    settings = json.loads(Path(os.environ["BENCH_SIGNER_SETTINGS"]).read_text())
    key = load_pem_private_key(Path(settings["private_key_file"]).read_bytes(), password=None)
    expected_hash = bytes.fromhex(settings["app_token_sha256"])

    async def token(request: Request) -> JSONResponse:
        form = dict(parse_qsl((await request.body()).decode()))
        presented = hashlib.sha256(form.get("password", "").encode()).digest()
        if form.get("username") != settings["username"] or not hmac.compare_digest(presented, expected_hash):
            return JSONResponse({"error": "invalid_client"}, status_code=401)

        now = int(time.time())
        claims = {
            "iss": settings["issuer"],
            "sub": settings["username"],
            "aud": settings["audience"],
            "iat": now,
            "nbf": now,
            "exp": now + settings["lifetime"],
            "jti": secrets.token_urlsafe(16),
            "client_id": form.get("client_id", ""),
            "scope": settings["scope"],
        }
        headers = {"typ": "at+jwt", "kid": settings["kid"]}
        access_token = jwt.encode(claims, key, algorithm="ES256", headers=headers)  # type: ignore[arg-type]
        body = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": settings["lifetime"],
            "scope": settings["scope"],
        }
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    return Starlette(routes=[Route(settings["token_path"], token, methods=["POST"])])
