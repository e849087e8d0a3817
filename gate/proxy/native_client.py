"""A minimal HTTP/1.1 client for plain-HTTP upstreams, on asyncio's protocol layer.

It exists because the forwarding client was most of gate's CPU per request
(measured in bench/README.md). It sends the request target and headers exactly
as given: nothing is added but ``Host`` and the body's framing
(``Content-Length`` as the client gave it, otherwise ``Transfer-Encoding:
chunked``; never both, RFC 9112 section 6.3). Bodies stream in both directions.
Response headers pass on raw, repeated ones kept, nothing decompressed.

Connections are kept alive in one pool per origin, bounded in total by
``upstream_client.max_connections``. A request is retried once, on a new
connection, only when a reused connection failed before any of the request
was written, or when the request has an idempotent method and no body and the
upstream sent nothing back (RFC 9112 section 9.3.1).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import TYPE_CHECKING

from starlette.types import Scope, Send

from gate import metrics
from gate.config.model import UpstreamClientConfig
from gate.errors import UpstreamError
from gate.proxy.deadlines import Deadlines
from gate.proxy.headers import Headers, response_headers
from gate.proxy.native_connection import ConnectionLostError, UpstreamConnection

if TYPE_CHECKING:
    from gate.proxy.forward import RequestBody

logger = logging.getLogger(__name__)

KEEP_ALIVE_SECONDS = 15.0
"""How long an idle connection stays in the pool (aiohttp's default)."""

_RETRY_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_CHUNKED = b"transfer-encoding: chunked\r\n"


class _RetryError(Exception):
    """A reused connection failed in a way that allows sending the request again."""


class NativeClient:
    """Forward one exchange over a pooled connection; the engine ``native`` of ``Forwarder``."""

    def __init__(self, config: UpstreamClientConfig) -> None:
        self.config = config
        self.deadlines = Deadlines()
        self.pool = ConnectionPool(config.max_connections, config.connect_timeout, self.deadlines)

    def close(self) -> None:
        self.pool.close()
        self.deadlines.close()

    async def exchange(
        self, scope: Scope, send: Send, url: str, headers: Headers, body: RequestBody, read_timeout: float | None
    ) -> int:
        """Send the request, stream the response to ``send`` and return its status.

        Raise ``UpstreamError`` before the response starts; after it started, a
        failure ends the response early, as ``Forwarder.forward`` documents.
        """
        started = time.perf_counter()
        origin, host, target = split_url(url)
        method = scope["method"]
        chunked = body.has_body and not any(name.lower() == b"content-length" for name, _ in headers)
        head = request_head(method, target, host, headers, chunked=chunked)
        timeout = read_timeout or self.config.read_timeout

        connection: UpstreamConnection | None = await self.pool.acquire(origin)
        upload: asyncio.Task[None] | None = None
        try:
            try:
                upload = await _send_request(connection, method, head, body, chunked, timeout)
            except _RetryError:
                self.pool.discard(connection)
                connection = None  # discarded once, even when the retry cannot connect
                connection = await self.pool.acquire(origin, fresh=True)
                upload = await _send_request(connection, method, head, body, chunked, timeout)
            complete = await _relay(connection, send, timeout)
        except BaseException:
            _end_upload(upload)
            if connection is not None:
                self.pool.discard(connection)
            raise

        if complete:
            metrics.observe_upstream(scope, url, started)
        if complete and _end_upload(upload):
            self.pool.release(origin, connection)
        else:
            self.pool.discard(connection)
        return connection.status


async def _send_request(
    connection: UpstreamConnection, method: str, head: bytes, body: RequestBody, chunked: bool, read_timeout: float
) -> asyncio.Task[None] | None:
    """Write the request head, start the body's upload and wait for the response's header section.

    The body goes up in its own task, because an upstream may respond (and
    stream its response) before it has read the whole body. The read timeout
    applies once the body is sent.
    """
    written = False
    upload: asyncio.Task[None] | None = None
    try:
        connection.begin(head_request=method == "HEAD")
        connection.write(head)
        written = True
        if body.has_body:
            upload = asyncio.ensure_future(_upload(connection, body, chunked, read_timeout))
            upload.add_done_callback(connection.wake)

        while not connection.headers_done:
            if upload is not None and upload.done():
                upload.result()  # the client leaving, or the upstream closing mid-upload, raises here
            await connection.wait(read_timeout if upload is None or upload.done() else None)
        return upload
    except ConnectionLostError:
        _end_upload(upload)
        if may_retry(method, connection, written, body.has_body):
            raise _RetryError from None
        logger.warning("upstream request failed", extra={"event": "upstream_error", "error": "connection_lost"})
        raise UpstreamError(502, "The upstream could not be reached.", reason_id="upstream_unreachable") from None
    except TimeoutError:
        _end_upload(upload)
        raise UpstreamError(504, "The upstream did not respond in time.", reason_id="upstream_timeout") from None
    except BaseException:
        _end_upload(upload)
        raise


async def _upload(connection: UpstreamConnection, body: RequestBody, chunked: bool, read_timeout: float) -> None:
    async for chunk in body.chunks():
        if chunked:
            connection.write(b"%x\r\n" % len(chunk))
            connection.write(chunk)
            connection.write(b"\r\n")
        else:
            connection.write(chunk)
        await connection.drain(read_timeout)  # an upstream that stops reading the body times out
    if chunked:
        connection.write(b"0\r\n\r\n")


def _end_upload(upload: asyncio.Task[None] | None) -> bool:
    """Stop an upload still running; return whether the whole body was sent."""
    if upload is None:
        return True
    if not upload.done():
        upload.cancel()
        return False
    return not upload.cancelled() and upload.exception() is None


async def _relay(connection: UpstreamConnection, send: Send, read_timeout: float) -> bool:
    """Stream the response to the client; return whether it was read to its end."""
    headers = response_headers(connection.headers, connection.status)
    await send({"type": "http.response.start", "status": connection.status, "headers": headers})

    while True:
        if connection.chunks:
            data = connection.take_body()
            last = connection.complete and not connection.chunks
            await send({"type": "http.response.body", "body": data, "more_body": not last})
            if last:
                return True
            continue
        if connection.complete:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return True
        try:
            await connection.wait(read_timeout)
        except (TimeoutError, ConnectionLostError) as error:
            logger.warning(
                "upstream response broken off", extra={"event": "upstream_error", "error": type(error).__name__}
            )
            return False


class ConnectionPool:
    """Keep-alive connections per origin ``(host, port)``, at most ``limit`` open in total."""

    def __init__(self, limit: int, connect_timeout: float, deadlines: Deadlines) -> None:
        self.limit = limit
        self.connect_timeout = connect_timeout
        self.deadlines = deadlines
        self.idle: dict[tuple[str, int], list[UpstreamConnection]] = {}
        self.open = 0
        self.waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self, origin: tuple[str, int], *, fresh: bool = False) -> UpstreamConnection:
        """Return an idle connection to ``origin``, or a new one; raise ``UpstreamError`` 502 if none opens."""
        while True:
            idle = self.idle.get(origin)
            now = time.monotonic()
            while idle and not fresh:
                connection = idle.pop()
                if connection.reusable(now, KEEP_ALIVE_SECONDS):
                    connection.reused = True
                    return connection
                self.discard(connection)

            if self.open < self.limit:
                break
            if self._close_one_idle():  # an idle connection to another origin makes room
                continue
            waiter = asyncio.get_running_loop().create_future()
            self.waiters.append(waiter)
            try:
                async with asyncio.timeout(self.connect_timeout):
                    await waiter
            except TimeoutError:
                logger.warning("no upstream connection free", extra={"event": "upstream_error", "error": "pool_full"})
                raise UpstreamError(
                    502, "The upstream could not be reached.", reason_id="upstream_pool_exhausted"
                ) from None
            finally:
                if waiter in self.waiters:
                    self.waiters.remove(waiter)

        self.open += 1
        try:
            return await self._connect(origin)
        except BaseException:
            self.open -= 1
            self._notify()
            raise

    def release(self, origin: tuple[str, int], connection: UpstreamConnection) -> None:
        """Return a connection whose response was read to its end, or close it if it cannot be reused."""
        if connection.closed or connection.broken or not connection.keep_alive:
            self.discard(connection)
            return
        connection.park()
        self.idle.setdefault(origin, []).append(connection)
        self._notify()

    def discard(self, connection: UpstreamConnection) -> None:
        connection.abort()
        self.open -= 1
        self._notify()

    def close(self) -> None:
        for connections in self.idle.values():
            for connection in connections:
                connection.abort()
        self.idle.clear()
        self.open = 0

    async def _connect(self, origin: tuple[str, int]) -> UpstreamConnection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, connection = await loop.create_connection(
                    lambda: UpstreamConnection(self.deadlines), origin[0], origin[1]
                )
        except (OSError, TimeoutError):
            raise UpstreamError(502, "The upstream could not be reached.", reason_id="upstream_unreachable") from None
        return connection

    def _close_one_idle(self) -> bool:
        for connections in self.idle.values():
            if connections:
                self.discard(connections.pop(0))
                return True
        return False

    def _notify(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


def split_url(url: str) -> tuple[tuple[str, int], bytes, bytes]:
    """Split ``http://host[:port]/target`` into the origin, the ``Host`` value and the raw target."""
    rest = url[7:]
    slash = rest.find("/")
    authority, target = (rest, "/") if slash < 0 else (rest[:slash], rest[slash:])
    if authority.startswith("["):
        host, _, port = authority[1:].partition("]")
        port = port[1:]
    else:
        host, _, port = authority.partition(":")
    return (host, int(port or 80)), authority.encode("latin-1"), target.encode("latin-1")


def request_head(method: str, target: bytes, host: bytes, headers: Headers, *, chunked: bool) -> bytes:
    """Serialise the request line and header section, rejecting CR or LF inside any value."""
    lines = [b"%s %s HTTP/1.1\r\nhost: %s" % (method.encode("ascii"), target, host)]
    lines.extend([name + b": " + value for name, value in headers])
    head = b"\r\n".join(lines) + b"\r\n" + (_CHUNKED if chunked else b"") + b"\r\n"
    if head.count(b"\n") != len(lines) + 2 + chunked or head.count(b"\r") != head.count(b"\n"):
        raise UpstreamError(502, "The request could not be sent upstream.", reason_id="upstream_request_invalid")
    return head


def may_retry(method: str, connection: UpstreamConnection, written: bool, has_body: bool) -> bool:
    if not connection.reused or connection.received:
        return False
    return not written or (method in _RETRY_METHODS and not has_body)
