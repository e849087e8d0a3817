"""Benchmark and check the async HTTP clients that could forward gate's requests.

One run starts a raw ASGI upstream and, for each client library, a minimal
pure-ASGI proxy that forwards to it with one pooled client created at startup.
Each server is its own uvicorn process pinned to CPU 1, and wrk runs on CPU 0.
The script prints a throughput table and pass/fail results of correctness checks
(raw bytes, repeated headers, raw request target, added headers, cookies,
redirects, request bodies). Every process it starts is stopped before it exits.

Usage:
    python bench/forwarding_clients.py [--duration S] [--connections N]

Needs wrk and taskset on PATH (Debian packages `wrk` and `util-linux`). Clients
whose package is not installed are skipped with a message.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import gzip
import hashlib
import http.cookiejar
import importlib.metadata
import importlib.util
import json
import logging
import os
import platform
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
HeaderList = list[tuple[bytes, bytes]]

LOGGER = logging.getLogger("forwarding_clients")

HOST = "127.0.0.1"
CLIENT_ENV = "GATE_BENCH_CLIENT"
UPSTREAM_ENV = "GATE_BENCH_UPSTREAM"
POOL_SIZE = 100
UPSTREAM_TIMEOUT_SECONDS = 30.0
SERVER_START_TIMEOUT_SECONDS = 20.0
SERVER_STOP_TIMEOUT_SECONDS = 5.0
CHECK_TIMEOUT_SECONDS = 10.0

# Hop-by-hop headers (RFC 9110, section 7.6.1) apply to one connection only, so
# the proxy drops them, and the headers a Connection header names, in both directions.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)

SMALL_BODY = b'{"status":"ok","service":"upstream","padding":"' + b"x" * 15 + b'"}'  # 64 bytes
GZIP_BODY = gzip.compress(b'{"compressed":true,"text":"' + b"gate " * 200 + b'"}', mtime=0)
REDIRECT_LOCATION = b"/moved-here"
CHECK_TARGET = b"/a/%2e%2e/b?x=%2F"
POST_BODY_CHUNKS = (b"first-chunk;", b"second-chunk;" * 100, b"last")


# ---------------------------------------------------------------------------
# Upstream: a raw ASGI app with one route per check.
# ---------------------------------------------------------------------------


async def run_lifespan(receive: Receive, send: Send) -> None:
    """Acknowledge lifespan startup and shutdown for an app with no resources."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def read_body(receive: Receive) -> bytes:
    parts = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(parts)


async def send_response(send: Send, status: int, headers: HeaderList, body: bytes) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def upstream_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Serve the benchmark body, the check fixtures, and echo every other request.

    Routes match the raw path exactly. The echo response reports the raw path,
    query string, headers and body digest, so checks can compare them with what
    their client sent to the proxy.
    """
    if scope["type"] == "lifespan":
        await run_lifespan(receive, send)
        return
    if scope["type"] != "http":
        return

    raw_path = scope.get("raw_path") or scope["path"].encode()
    json_type = (b"content-type", b"application/json")
    if raw_path == b"/small":
        await send_response(send, 200, [json_type], SMALL_BODY)
        return
    if raw_path == b"/gzip":
        headers = [json_type, (b"content-encoding", b"gzip")]
        await send_response(send, 200, headers, GZIP_BODY)
        return
    if raw_path == b"/cookies":
        cookies = [
            (b"set-cookie", b"first=1; Path=/"),
            (b"set-cookie", b"second=2; Path=/"),
        ]
        await send_response(send, 200, [json_type, *cookies], b"{}")
        return
    if raw_path == b"/redirect":
        await send_response(send, 302, [(b"location", REDIRECT_LOCATION)], b"")
        return

    body = await read_body(receive)
    record = {
        "method": scope["method"],
        "raw_path": raw_path.decode("latin-1"),
        "query_string": scope["query_string"].decode("latin-1"),
        "headers": [[name.decode("latin-1"), value.decode("latin-1")] for name, value in scope["headers"]],
        "body_length": len(body),
        "body_sha256": hashlib.sha256(body).hexdigest(),
    }
    await send_response(send, 200, [json_type], json.dumps(record).encode())


# ---------------------------------------------------------------------------
# Forwarders: one class per client library, all behind the same interface.
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class UpstreamResponse:
    status: int
    headers: HeaderList
    body: AsyncIterator[bytes]
    close: Callable[[], Awaitable[None]]


class Forwarder:
    """Base class for one pooled client that sends requests to the upstream origin.

    `target` is the request target exactly as the proxy received it (raw path
    plus query). `headers` are the incoming headers without hop-by-hop ones.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        # Exceptions that mean the upstream request failed. start() adds the library's own.
        self.errors: tuple[type[Exception], ...] = (OSError, TimeoutError)

    async def start(self) -> None:
        """Create the client. Runs once, inside the server's event loop."""

    async def close(self) -> None:
        """Close the client and its connection pool."""

    async def forward(
        self,
        method: str,
        target: bytes,
        headers: HeaderList,
        body: AsyncIterator[bytes] | None,
    ) -> UpstreamResponse:
        raise NotImplementedError


def decode_headers(headers: HeaderList) -> list[tuple[str, str]]:
    return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in headers]


def encode_headers(headers: Iterable[tuple[str, str]]) -> HeaderList:
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]


def reject_all_cookies_jar() -> http.cookiejar.CookieJar:
    """Return a cookie jar that stores nothing, so no response cookie is replayed."""
    return http.cookiejar.CookieJar(policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))


class HttpxForwarder(Forwarder):
    """httpx.AsyncClient with its default (httpcore) transport, configured for a proxy."""

    async def start(self) -> None:
        import httpx

        self.httpx = httpx
        self.errors += (httpx.HTTPError,)
        limits = httpx.Limits(max_connections=POOL_SIZE, max_keepalive_connections=POOL_SIZE)
        self.client = httpx.AsyncClient(
            limits=limits,
            timeout=UPSTREAM_TIMEOUT_SECONDS,
            follow_redirects=False,
            trust_env=False,
            cookies=reject_all_cookies_jar(),
        )

    async def close(self) -> None:
        await self.client.aclose()

    async def forward(
        self,
        method: str,
        target: bytes,
        headers: HeaderList,
        body: AsyncIterator[bytes] | None,
    ) -> UpstreamResponse:
        # httpx.Request adds no client-wide default headers (build_request does),
        # and the "target" extension makes httpcore send the raw target unparsed.
        request = self.httpx.Request(
            method,
            self.upstream + "/",
            headers=headers,
            content=body,
            extensions={"target": target},
        )
        response = await self.client.send(request, stream=True)
        return UpstreamResponse(response.status_code, list(response.headers.raw), response.aiter_raw(), response.aclose)


class HttpxDefaultsForwarder(Forwarder):
    """httpx.AsyncClient() with default settings and its high-level stream() call."""

    async def start(self) -> None:
        import httpx

        self.errors += (httpx.HTTPError,)
        self.client = httpx.AsyncClient()

    async def close(self) -> None:
        await self.client.aclose()

    async def forward(
        self,
        method: str,
        target: bytes,
        headers: HeaderList,
        body: AsyncIterator[bytes] | None,
    ) -> UpstreamResponse:
        url = self.upstream + target.decode("latin-1")
        context = self.client.stream(method, url, headers=headers, content=body)
        response = await context.__aenter__()

        async def close() -> None:
            await context.__aexit__(None, None, None)

        return UpstreamResponse(response.status_code, list(response.headers.raw), response.aiter_raw(), close)


def aiohttp_session_options() -> dict[str, Any]:
    """Return the aiohttp.ClientSession options that make it forward bytes unchanged."""
    import aiohttp

    return {
        "connector": aiohttp.TCPConnector(limit=POOL_SIZE),
        "auto_decompress": False,
        "skip_auto_headers": ("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        "cookie_jar": aiohttp.DummyCookieJar(),
        "trust_env": False,
        "timeout": aiohttp.ClientTimeout(
            total=None, sock_connect=UPSTREAM_TIMEOUT_SECONDS, sock_read=UPSTREAM_TIMEOUT_SECONDS
        ),
    }


class HttpxAiohttpForwarder(HttpxForwarder):
    """httpx.AsyncClient over httpx_aiohttp.AiohttpTransport and a configured aiohttp session."""

    async def start(self) -> None:
        import aiohttp
        import httpx
        from httpx_aiohttp import AiohttpTransport

        self.httpx = httpx
        self.errors += (httpx.HTTPError, aiohttp.ClientError)
        self.session = aiohttp.ClientSession(**aiohttp_session_options())
        self.client = httpx.AsyncClient(
            transport=AiohttpTransport(client=self.session),
            timeout=UPSTREAM_TIMEOUT_SECONDS,
            follow_redirects=False,
            trust_env=False,
            cookies=reject_all_cookies_jar(),
        )

    async def close(self) -> None:
        await self.client.aclose()
        await self.session.close()

    async def forward(
        self,
        method: str,
        target: bytes,
        headers: HeaderList,
        body: AsyncIterator[bytes] | None,
    ) -> UpstreamResponse:
        # AiohttpTransport ignores the "target" extension and sends str(request.url),
        # so the target has to be part of the URL.
        request = self.httpx.Request(
            method,
            self.upstream + target.decode("latin-1"),
            headers=headers,
            content=body,
        )
        response = await self.client.send(request, stream=True)
        return UpstreamResponse(response.status_code, list(response.headers.raw), response.aiter_raw(), response.aclose)


class AiohttpForwarder(Forwarder):
    """aiohttp.ClientSession configured to forward bytes, headers and targets unchanged."""

    async def start(self) -> None:
        import aiohttp
        import multidict
        import yarl

        self.multidict = multidict
        self.yarl = yarl
        self.errors += (aiohttp.ClientError,)
        self.session = aiohttp.ClientSession(**aiohttp_session_options())

    async def close(self) -> None:
        await self.session.close()

    async def forward(
        self,
        method: str,
        target: bytes,
        headers: HeaderList,
        body: AsyncIterator[bytes] | None,
    ) -> UpstreamResponse:
        # encoded=True keeps yarl from requoting and normalizing the target.
        url = self.yarl.URL(self.upstream + target.decode("latin-1"), encoded=True)
        response = await self.session.request(
            method,
            url,
            headers=self.multidict.CIMultiDict(decode_headers(headers)),
            data=body,
            allow_redirects=False,
        )

        async def close() -> None:
            # release() returns the connection to the pool, or closes it when the
            # body was not read to the end (aiohttp 3.14 ResponseHandler.should_close).
            response.release()

        # raw_headers keeps repeated headers and their order, as bytes.
        return UpstreamResponse(response.status, list(response.raw_headers), response.content.iter_any(), close)


class AiohttpDefaultsForwarder(Forwarder):
    """aiohttp.ClientSession() with default settings and a str URL."""

    async def start(self) -> None:
        import aiohttp
        import multidict

        self.multidict = multidict
        self.errors += (aiohttp.ClientError,)
        self.session = aiohttp.ClientSession()

    async def close(self) -> None:
        await self.session.close()

    async def forward(
        self,
        method: str,
        target: bytes,
        headers: HeaderList,
        body: AsyncIterator[bytes] | None,
    ) -> UpstreamResponse:
        response = await self.session.request(
            method,
            self.upstream + target.decode("latin-1"),
            headers=self.multidict.CIMultiDict(decode_headers(headers)),
            data=body,
        )

        async def close() -> None:
            response.release()

        return UpstreamResponse(response.status, list(response.raw_headers), response.content.iter_any(), close)


class NiquestsForwarder(Forwarder):
    """niquests.AsyncSession limited to HTTP/1.1, with its session defaults removed."""

    async def start(self) -> None:
        import niquests
        from urllib3_future.util import SKIP_HEADER

        self.niquests = niquests
        self.skip_header = SKIP_HEADER
        self.errors += (niquests.RequestException,)
        self.session = niquests.AsyncSession(
            pool_connections=1,
            pool_maxsize=POOL_SIZE,
            disable_http2=True,
            disable_http3=True,
            retries=0,
            timeout=UPSTREAM_TIMEOUT_SECONDS,
            allow_incoming_cookies=False,
        )
        self.session.headers.clear()
        self.session.trust_env = False

    async def close(self) -> None:
        await self.session.close()

    async def forward(
        self,
        method: str,
        target: bytes,
        headers: HeaderList,
        body: AsyncIterator[bytes] | None,
    ) -> UpstreamResponse:
        request_headers = decode_headers(headers)
        # urllib3.future adds User-Agent and Accept-Encoding unless their value is SKIP_HEADER.
        present = {name.lower() for name, _ in request_headers}
        for name in ("User-Agent", "Accept-Encoding"):
            if name.lower() not in present:
                request_headers.append((name, self.skip_header))
        request = self.niquests.Request(method, self.upstream + "/", headers=request_headers, data=body)
        prepared = self.session.prepare_request(request)
        # niquests 3.21 adds Transfer-Encoding: chunked to an iterator body even when
        # Content-Length is set, and a request with both is invalid (RFC 9112, 6.3).
        if "content-length" in present:
            prepared.headers.pop("Transfer-Encoding", None)
        # prepare_request requotes the URL, so the raw target is set afterwards.
        prepared.url = self.upstream + target.decode("latin-1")
        response = await self.session.send(prepared, stream=True, allow_redirects=False)
        raw_headers = encode_headers(response.raw.headers.items())
        return UpstreamResponse(response.status_code, raw_headers, await response.iter_raw(), response.close)


class CurlCffiForwarder(Forwarder):
    """curl_cffi.requests.AsyncSession (libcurl) without browser defaults or decoding."""

    async def start(self) -> None:
        from curl_cffi import CurlError, CurlOpt
        from curl_cffi.requests import AsyncSession, RequestsError

        self.errors += (CurlError, RequestsError)
        self.session = AsyncSession(
            max_clients=POOL_SIZE,
            default_headers=False,
            allow_redirects=False,
            trust_env=False,
            discard_cookies=True,
            timeout=UPSTREAM_TIMEOUT_SECONDS,
            curl_options={CurlOpt.PATH_AS_IS: 1},
        )

    async def close(self) -> None:
        await self.session.close()

    async def forward(
        self,
        method: str,
        target: bytes,
        headers: HeaderList,
        body: AsyncIterator[bytes] | None,
    ) -> UpstreamResponse:
        response = await self.session.request(
            method,  # type: ignore[arg-type]
            self.upstream + target.decode("latin-1"),
            headers=decode_headers(headers),
            content=body,
            stream=True,
            accept_encoding=None,
            quote=False,
        )
        raw_headers = encode_headers(response.headers.multi_items())
        return UpstreamResponse(response.status_code, raw_headers, response.aiter_content(), response.aclose)


@dataclasses.dataclass(frozen=True)
class Candidate:
    name: str
    forwarder: type[Forwarder]
    packages: tuple[str, ...]
    benchmark: bool
    description: str


CANDIDATES = (
    Candidate("httpx", HttpxForwarder, ("httpx",), True, "httpx.AsyncClient, default httpcore transport"),
    Candidate(
        "httpx-aiohttp",
        HttpxAiohttpForwarder,
        ("httpx", "httpx_aiohttp"),
        True,
        "httpx.AsyncClient over httpx_aiohttp.AiohttpTransport",
    ),
    Candidate("aiohttp", AiohttpForwarder, ("aiohttp",), True, "aiohttp.ClientSession, configured"),
    Candidate("niquests", NiquestsForwarder, ("niquests",), True, "niquests.AsyncSession, HTTP/1.1 only"),
    Candidate("curl_cffi", CurlCffiForwarder, ("curl_cffi",), True, "curl_cffi.requests.AsyncSession (libcurl)"),
    Candidate(
        "httpx-defaults", HttpxDefaultsForwarder, ("httpx",), False, "httpx.AsyncClient() defaults, client.stream()"
    ),
    Candidate(
        "aiohttp-defaults", AiohttpDefaultsForwarder, ("aiohttp",), False, "aiohttp.ClientSession() defaults, str URL"
    ),
)
CANDIDATES_BY_NAME = {candidate.name: candidate for candidate in CANDIDATES}


# ---------------------------------------------------------------------------
# Proxy: a pure ASGI app that streams requests and responses through a forwarder.
# ---------------------------------------------------------------------------


def strip_hop_by_hop(headers: HeaderList) -> HeaderList:
    named = {b"connection"} | {
        token.strip().lower() for name, value in headers if name.lower() == b"connection" for token in value.split(b",")
    }
    return [(name, value) for name, value in headers if name.lower() not in HOP_BY_HOP | named]


def has_request_body(headers: HeaderList) -> bool:
    for name, value in headers:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return True
    return False


async def iterate_request_body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


class ProxyApp:
    """Forward every HTTP request to the upstream with one shared forwarder."""

    def __init__(self, forwarder: Forwarder) -> None:
        self.forwarder = forwarder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.run_lifespan(receive, send)
        elif scope["type"] == "http":
            await self.forward(scope, receive, send)

    async def run_lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                # An exception here makes uvicorn (--lifespan on) log it and exit.
                await self.forwarder.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.forwarder.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw_path = scope.get("raw_path") or scope["path"].encode()
        query = scope["query_string"]
        target = raw_path + b"?" + query if query else raw_path
        headers = strip_hop_by_hop(scope["headers"])
        body = iterate_request_body(receive) if has_request_body(scope["headers"]) else None

        try:
            upstream = await self.forwarder.forward(scope["method"], target, headers, body)
        except self.forwarder.errors as error:
            LOGGER.warning("forwarding %s %r failed: %r", scope["method"], target, error)
            await send_response(send, 502, [(b"content-type", b"text/plain")], b"upstream request failed\n")
            return

        try:
            response_headers = strip_hop_by_hop(upstream.headers)
            await send({"type": "http.response.start", "status": upstream.status, "headers": response_headers})
            async for chunk in upstream.body:
                if chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await upstream.close()


def build_proxy_app() -> ProxyApp:
    """Build the proxy named by $GATE_BENCH_CLIENT for $GATE_BENCH_UPSTREAM (uvicorn --factory)."""
    candidate = CANDIDATES_BY_NAME[os.environ[CLIENT_ENV]]
    return ProxyApp(candidate.forwarder(os.environ[UPSTREAM_ENV]))


# ---------------------------------------------------------------------------
# Server processes.
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class ServerSettings:
    loop: str
    http: str
    cpu: int


@dataclasses.dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log_tail(self, lines: int = 20) -> str:
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])


def find_free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def start_server(
    name: str, app: str, factory: bool, env: dict[str, str], settings: ServerSettings, log_dir: Path
) -> Server:
    """Start uvicorn with one worker, pinned to settings.cpu, logging to a file."""
    port = find_free_port()
    command = [
        "taskset", "-c", str(settings.cpu),
        sys.executable, "-m", "uvicorn", app,
        "--app-dir", str(Path(__file__).resolve().parent),
        "--host", HOST, "--port", str(port),
        "--loop", settings.loop, "--http", settings.http,
        "--lifespan", "on", "--no-access-log", "--log-level", "warning",
        "--no-server-header", "--no-date-header",
    ]  # fmt: skip
    if factory:
        command.append("--factory")
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    return Server(name, port, process, log_path)


def wait_until_serving(server: Server, path: bytes) -> None:
    """Wait until GET `path` returns 200, or raise RuntimeError with the server's log."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT_SECONDS
    last_error = "no attempt"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited with code {server.process.returncode}:\n{server.log_tail()}")
        try:
            response = exchange(server.port, build_request(b"GET", path, server.port))
            if response.status == 200:
                return
            last_error = f"status {response.status}"
        except OSError as error:
            last_error = repr(error)
        time.sleep(0.1)
    raise RuntimeError(
        f"{server.name} not serving after {SERVER_START_TIMEOUT_SECONDS} s ({last_error}):\n{server.log_tail()}"
    )


def stop_server(server: Server) -> None:
    if server.process.poll() is not None:
        return
    server.process.terminate()
    try:
        server.process.wait(timeout=SERVER_STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(timeout=SERVER_STOP_TIMEOUT_SECONDS)


# ---------------------------------------------------------------------------
# Raw HTTP/1.1 client for the checks: sends exact bytes, returns exact bytes.
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class RawResponse:
    status: int
    headers: HeaderList
    body: bytes

    def header_values(self, name: bytes) -> list[bytes]:
        return [value for key, value in self.headers if key.lower() == name]

    def json(self) -> Any:
        return json.loads(self.body)


def build_request(
    method: bytes, target: bytes, port: int, headers: Iterable[tuple[bytes, bytes]] = (), body: bytes = b""
) -> bytes:
    lines = [method + b" " + target + b" HTTP/1.1", f"Host: {HOST}:{port}".encode()]
    lines += [name + b": " + value for name, value in headers]
    lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def encode_chunked(chunks: Iterable[bytes]) -> bytes:
    encoded = [f"{len(chunk):x}".encode() + b"\r\n" + chunk + b"\r\n" for chunk in chunks]
    return b"".join(encoded) + b"0\r\n\r\n"


def decode_chunked(data: bytes) -> bytes:
    body = bytearray()
    position = 0
    while True:
        line_end = data.index(b"\r\n", position)
        size = int(data[position:line_end].split(b";")[0], 16)
        if size == 0:
            return bytes(body)
        start = line_end + 2
        body += data[start : start + size]
        position = start + size + 2


def exchange(port: int, request: bytes) -> RawResponse:
    """Send one request on a new connection and read the response until the server closes."""
    with socket.create_connection((HOST, port), timeout=CHECK_TIMEOUT_SECONDS) as connection:
        connection.sendall(request)
        received = bytearray()
        while chunk := connection.recv(65536):
            received += chunk

    head, _, rest = bytes(received).partition(b"\r\n\r\n")
    status_line, *header_lines = head.split(b"\r\n")
    headers = []
    for line in header_lines:
        name, _, value = line.partition(b":")
        headers.append((name.strip().lower(), value.strip()))
    response = RawResponse(int(status_line.split()[1]), headers, rest)
    if b"chunked" in b",".join(response.header_values(b"transfer-encoding")).lower():
        response.body = decode_chunked(rest)
    return response


# ---------------------------------------------------------------------------
# Correctness checks, each run against one proxy.
# ---------------------------------------------------------------------------


CheckOutcome = tuple[bool, str]


@dataclasses.dataclass
class CheckResult:
    name: str
    passed: bool
    detail: str


def check_raw_bytes(port: int) -> CheckOutcome:
    response = exchange(port, build_request(b"GET", b"/gzip", port))
    encoding = response.header_values(b"content-encoding")
    passed = response.status == 200 and response.body == GZIP_BODY and encoding == [b"gzip"]
    detail = f"status {response.status}, {len(response.body)} bytes (upstream sent {len(GZIP_BODY)})"
    detail += f", content-encoding {encoding}"
    return (passed, detail)


def check_repeated_headers(port: int) -> CheckOutcome:
    response = exchange(port, build_request(b"GET", b"/cookies", port))
    cookies = response.header_values(b"set-cookie")
    passed = cookies == [b"first=1; Path=/", b"second=2; Path=/"]
    return (passed, f"received {cookies}")


def check_raw_target(port: int) -> CheckOutcome:
    response = exchange(port, build_request(b"GET", CHECK_TARGET, port))
    if response.status != 200:
        return (False, f"status {response.status}")
    record = response.json()
    received = f"{record['raw_path']}?{record['query_string']}" if record["query_string"] else record["raw_path"]
    passed = received.encode("latin-1") == CHECK_TARGET
    return (passed, f"sent {CHECK_TARGET.decode()}, upstream got {received}")


def check_added_headers(port: int) -> CheckOutcome:
    response = exchange(port, build_request(b"GET", b"/echo", port, [(b"X-Gate-Check", b"headers")]))
    if response.status != 200:
        return (False, f"status {response.status}")
    received = collections.Counter((key.lower(), value) for key, value in response.json()["headers"])
    expected = collections.Counter({("host", f"{HOST}:{port}"): 1, ("x-gate-check", "headers"): 1})
    added = sorted((received - expected).elements())
    missing = sorted((expected - received).elements())
    detail = f"added {added or 'none'}"
    if missing:
        detail += f", missing or changed {missing}"
    return (not added and not missing, detail)


def check_cookies_not_replayed(port: int) -> CheckOutcome:
    exchange(port, build_request(b"GET", b"/cookies", port))
    response = exchange(port, build_request(b"GET", b"/echo", port))
    cookies = [value for key, value in response.json()["headers"] if key.lower() == "cookie"]
    return (response.status == 200 and not cookies, f"next request carried cookie {cookies or 'none'}")


def check_redirect_passed(port: int) -> CheckOutcome:
    response = exchange(port, build_request(b"GET", b"/redirect", port))
    location = response.header_values(b"location")
    passed = response.status == 302 and location == [REDIRECT_LOCATION]
    return (passed, f"status {response.status}, location {location}")


def check_request_bodies(port: int) -> CheckOutcome:
    body = b"".join(POST_BODY_CHUNKS)
    digest = hashlib.sha256(body).hexdigest()
    details = []
    passed = True
    framings = {
        "content-length": ([(b"Content-Length", str(len(body)).encode())], body),
        "chunked": ([(b"Transfer-Encoding", b"chunked")], encode_chunked(POST_BODY_CHUNKS)),
    }
    for framing, (headers, payload) in framings.items():
        response = exchange(port, build_request(b"POST", b"/echo", port, headers, payload))
        if response.status != 200:
            passed = False
            details.append(f"{framing}: status {response.status}")
            continue
        record = response.json()
        upstream_headers = {key.lower(): value for key, value in record["headers"]}
        upstream_framing = "content-length" if "content-length" in upstream_headers else "chunked"
        correct = record["body_sha256"] == digest
        if framing == "content-length":
            correct = correct and upstream_headers.get("content-length") == str(len(body))
        passed = passed and correct
        details.append(f"{framing} in: {record['body_length']} bytes, sent upstream as {upstream_framing}")
    return (passed, "; ".join(details))


CHECKS: tuple[tuple[str, Callable[[int], CheckOutcome]], ...] = (
    ("a) gzip body passed through undecoded", check_raw_bytes),
    ("b) both Set-Cookie headers kept", check_repeated_headers),
    ("c) request target sent unmodified", check_raw_target),
    ("d) no headers added or changed", check_added_headers),
    ("e) response cookies not replayed", check_cookies_not_replayed),
    ("f) redirect passed to the client", check_redirect_passed),
    ("g) request bodies forwarded", check_request_bodies),
)


def run_checks(port: int) -> list[CheckResult]:
    results = []
    for name, check in CHECKS:
        try:
            passed, detail = check(port)
        except (OSError, ValueError, KeyError) as error:
            passed, detail = False, f"check raised {error!r}"
        results.append(CheckResult(name, passed, detail))
    return results


# ---------------------------------------------------------------------------
# Load generation with wrk.
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class LoadResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: str
    # CPU time that processes other than wrk and this run's servers used during
    # the measured run, in cores (0.5 = half a core busy on average).
    other_cpu_cores: float = 0.0


LATENCY_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def parse_latency_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"invalid wrk latency {text!r}")
    return float(match.group(1)) * LATENCY_UNITS_MS[match.group(2)]


def run_wrk(url: str, duration: float, connections: int, cpu: int) -> LoadResult:
    """Run wrk with one thread pinned to `cpu` and parse its summary."""
    command = [
        "taskset", "-c", str(cpu), "wrk",
        "-t1", f"-c{connections}", f"-d{duration:g}s", "--timeout", "5s", "--latency", url,
    ]  # fmt: skip
    completed = subprocess.run(command, capture_output=True, text=True, timeout=duration + 30, check=True)
    output = completed.stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
    if rate is None or p50 is None or p99 is None:
        raise ValueError(f"unexpected wrk output:\n{output}{completed.stderr}")
    errors = [line.strip() for line in output.splitlines() if "errors" in line or "Non-2xx" in line]
    return LoadResult(
        float(rate.group(1)), parse_latency_ms(p50.group(1)), parse_latency_ms(p99.group(1)), "; ".join(errors)
    )


def busy_cpu_seconds() -> float:
    """Return the CPU time all CPUs spent busy since boot (idle and iowait excluded)."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """Return the user plus system CPU time of a running process, all threads included."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(url: str, servers: list[Server], arguments: argparse.Namespace) -> LoadResult:
    """Warm up, then run the measured wrk run and record how busy other processes kept the CPUs."""
    if arguments.warmup > 0:
        run_wrk(url, arguments.warmup, arguments.connections, arguments.wrk_cpu)
    pids = [server.process.pid for server in servers]
    own_before = sum(process_cpu_seconds(pid) for pid in pids) + children_cpu_seconds()
    busy_before = busy_cpu_seconds()
    started = time.monotonic()
    result = run_wrk(url, arguments.duration, arguments.connections, arguments.wrk_cpu)
    elapsed = time.monotonic() - started
    own_used = sum(process_cpu_seconds(pid) for pid in pids) + children_cpu_seconds() - own_before
    result.other_cpu_cores = max(0.0, busy_cpu_seconds() - busy_before - own_used) / elapsed
    return result


# ---------------------------------------------------------------------------
# Main.
# ---------------------------------------------------------------------------


def package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def resolve_settings(arguments: argparse.Namespace) -> ServerSettings:
    loop = arguments.loop
    if loop == "auto":
        loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = arguments.http
    if http == "auto":
        http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return ServerSettings(loop, http, arguments.server_cpu)


def print_environment(settings: ServerSettings, arguments: argparse.Namespace) -> None:
    packages = [
        "uvicorn",
        "uvloop",
        "httptools",
        "h11",
        "httpx",
        "httpcore",
        "sniffio",
        "httpx-aiohttp",
        "aiohttp",
        "multidict",
        "yarl",
        "niquests",
        "urllib3-future",
        "curl_cffi",
    ]
    versions = ", ".join(f"{name} {package_version(name)}" for name in packages)
    wrk_version = subprocess.run(
        ["wrk", "--version"], capture_output=True, text=True, timeout=10, check=False
    ).stdout.splitlines()[0]  # wrk 4.1 exits 1 after printing its version
    print(f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs")
    print(f"Packages: {versions}")
    print(
        f"Load: {wrk_version.strip()}, 1 thread, {arguments.connections} connections, pinned to CPU {arguments.wrk_cpu}"
    )
    server = f"uvicorn --loop {settings.loop} --http {settings.http}"
    print(f"Servers: {server}, one worker each, all pinned to CPU {settings.cpu}")
    print(f"Timing: {arguments.warmup:g} s warm-up, then {arguments.duration:g} s measured, per row\n")


def format_table(rows: list[list[str]]) -> str:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def print_load_table(direct: LoadResult | None, results: dict[str, LoadResult]) -> None:
    best = max((result.requests_per_second for result in results.values()), default=0.0)
    rows = [["client", "req/s", "p50 ms", "p99 ms", "vs direct", "vs best", "other CPU", "errors"]]
    measured = [("direct upstream", direct)] if direct else []
    measured += sorted(results.items(), key=lambda item: -item[1].requests_per_second)
    for name, result in measured:
        versus_direct = f"{result.requests_per_second / direct.requests_per_second:.2f}" if direct else "-"
        versus_best = f"{result.requests_per_second / best:.2f}" if name in results and best else "-"
        rows.append(
            [
                name,
                f"{result.requests_per_second:,.0f}",
                f"{result.p50_ms:.2f}",
                f"{result.p99_ms:.2f}",
                versus_direct,
                versus_best,
                f"{result.other_cpu_cores:.2f}",
                result.errors or "none",
            ]
        )
    print(format_table(rows))
    print("other CPU: cores kept busy by processes outside this run during the measured run (noise).")


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--duration", type=float, default=10.0, help="measured wrk run per row, in seconds (default 10)"
    )
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="unmeasured wrk run before each row, in seconds (default 2)"
    )
    parser.add_argument("--connections", type=int, default=64, help="open wrk connections (default 64)")
    parser.add_argument(
        "--clients", default=",".join(CANDIDATES_BY_NAME), help="comma-separated clients to run (default all)"
    )
    parser.add_argument(
        "--loop",
        choices=("auto", "asyncio", "uvloop"),
        default="auto",
        help="uvicorn event loop (default: uvloop if installed)",
    )
    parser.add_argument(
        "--http",
        choices=("auto", "h11", "httptools"),
        default="auto",
        help="uvicorn HTTP parser (default: httptools if installed)",
    )
    parser.add_argument("--checks-only", action="store_true", help="run the correctness checks without load")
    parser.add_argument("--wrk-cpu", type=int, default=0, help="CPU for wrk (default 0)")
    parser.add_argument("--server-cpu", type=int, default=1, help="CPU for the upstream and the proxies (default 1)")
    arguments = parser.parse_args()

    unknown = set(arguments.clients.split(",")) - set(CANDIDATES_BY_NAME)
    if unknown:
        parser.error(f"unknown client(s) {sorted(unknown)}; choose from {', '.join(CANDIDATES_BY_NAME)}")
    return arguments


def missing_packages(candidate: Candidate) -> list[str]:
    return [package for package in candidate.packages if importlib.util.find_spec(package) is None]


def main() -> int:
    arguments = parse_arguments()
    for tool, package in (("wrk", "wrk"), ("taskset", "util-linux")):
        if shutil.which(tool) is None:
            print(f"error: {tool} not found on PATH. Install the Debian package {package}.", file=sys.stderr)
            return 2
    settings = resolve_settings(arguments)
    print_environment(settings, arguments)

    selected = [CANDIDATES_BY_NAME[name] for name in arguments.clients.split(",")]
    load_results: dict[str, LoadResult] = {}
    check_results: dict[str, list[CheckResult]] = {}
    direct: LoadResult | None = None
    servers: list[Server] = []
    with tempfile.TemporaryDirectory(prefix="forwarding-clients-") as log_directory:
        log_dir = Path(log_directory)
        try:
            upstream = start_server("upstream", "forwarding_clients:upstream_app", False, {}, settings, log_dir)
            servers.append(upstream)
            try:
                wait_until_serving(upstream, b"/small")
                if not arguments.checks_only:
                    print("measuring direct upstream ...", flush=True)
                    direct = measure(upstream.url + "/small", [upstream], arguments)
            except (RuntimeError, ValueError, subprocess.SubprocessError) as error:
                print(f"error: upstream failed: {error}", file=sys.stderr)
                return 1

            for candidate in selected:
                missing = missing_packages(candidate)
                if missing:
                    print(f"skipping {candidate.name}: package(s) {missing} not installed")
                    continue
                env = {CLIENT_ENV: candidate.name, UPSTREAM_ENV: upstream.url}
                proxy = start_server(candidate.name, "forwarding_clients:build_proxy_app", True, env, settings, log_dir)
                servers.append(proxy)
                try:
                    wait_until_serving(proxy, b"/small")
                    print(f"checking {candidate.name} ({candidate.description}) ...", flush=True)
                    check_results[candidate.name] = run_checks(proxy.port)
                    proxy_log = proxy.log_tail(5)
                    if proxy_log:
                        print(f"  last lines of the {candidate.name} proxy log:\n{proxy_log}")
                    if candidate.benchmark and not arguments.checks_only:
                        print(f"measuring {candidate.name} ...", flush=True)
                        load_results[candidate.name] = measure(proxy.url + "/small", [upstream, proxy], arguments)
                except (RuntimeError, ValueError, subprocess.SubprocessError) as error:
                    print(f"{candidate.name} failed, continuing with the next client: {error}")
                finally:
                    stop_server(proxy)
        finally:
            for server in servers:
                stop_server(server)

    if direct is not None:
        print("\nThroughput (GET /small, 64-byte JSON body)")
        print_load_table(direct, load_results)
    print("\nCorrectness")
    for name, results in check_results.items():
        passed = sum(result.passed for result in results)
        print(f"{name}: {passed}/{len(results)} passed")
        for result in results:
            print(f"  {'PASS' if result.passed else 'FAIL'}  {result.name}: {result.detail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
