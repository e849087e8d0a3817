"""Streaming requests to upstreams through gate's native client, or one pooled aiohttp session.

With ``upstream_client.engine: native`` (the default), plain-HTTP upstreams go
through ``gate.proxy.native_client``, which raises ``UpstreamError`` itself and
costs about half of aiohttp's CPU per request (bench/README.md). HTTPS
upstreams, WebSockets and ``engine: aiohttp`` use aiohttp, chosen over httpx
by measurement (bench/forwarding-clients.md); aiohttp errors are translated
into ``UpstreamError`` here and nowhere else.

Bodies are streamed chunk by chunk in both directions, so memory does not
grow with their size. Response bodies are passed on byte for byte
(``auto_decompress=False``), with their ``Content-Encoding`` and
``Content-Length``. A client that disconnects cancels the upstream request,
which closes its connection instead of returning it to the pool.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from starlette.types import Message, Receive, Scope, Send
from yarl import URL

from gate import metrics
from gate.config.model import UpstreamClientConfig
from gate.errors import UpstreamError
from gate.proxy.deadlines import Deadlines
from gate.proxy.headers import Headers, response_headers
from gate.proxy.native_client import NativeClient

logger = logging.getLogger(__name__)

_NO_AUTO_HEADERS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")

DISCONNECT_WATCH_DELAY = 0.05
"""Seconds an exchange runs before gate starts watching for the client leaving."""


class ClientDisconnectedError(Exception):
    """The client went away before the exchange ended."""


class Forwarder:
    """Send a request upstream and stream the response back to the ASGI client."""

    def __init__(self, config: UpstreamClientConfig) -> None:
        self.config = config
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[float | None, aiohttp.ClientTimeout] = {}
        self.native = NativeClient(config) if config.engine == "native" else None
        self.deadlines = self.native.deadlines if self.native is not None else Deadlines()
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        connector = ReuseCheckingConnector(limit=self.config.max_connections, ttl_dns_cache=60)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self.timeout(None),
            auto_decompress=False,
            skip_auto_headers=_NO_AUTO_HEADERS,
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self.native is not None:
            self.native.close()
        self.deadlines.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("the forwarder is not started; it starts with the application's lifespan")
        return self._session

    def timeout(self, read_timeout: float | None) -> aiohttp.ClientTimeout:
        """Return the timeouts for one request: connect, and the longest wait between bytes read.

        ``ClientTimeout`` is immutable, so one object per read timeout is built and reused.
        """
        timeout = self._timeouts.get(read_timeout)
        if timeout is None:
            timeout = aiohttp.ClientTimeout(
                total=None, connect=self.config.connect_timeout, sock_read=read_timeout or self.config.read_timeout
            )
            self._timeouts[read_timeout] = timeout
        return timeout

    async def forward(
        self, scope: Scope, receive: Receive, send: Send, url: str, headers: Headers, read_timeout: float | None
    ) -> int:
        """Forward the request of ``scope`` to ``url`` and stream the response back.

        Return the upstream's status. Raise ``UpstreamError`` when the upstream
        cannot be reached or times out before its response starts, and
        ``ClientDisconnectedError`` when the client leaves first. A failure after
        the response has started ends the response early, which closes the
        client's connection, so the client sees a truncated body and never a
        complete-looking one.
        """
        body = RequestBody(receive, has_body=has_body(scope["headers"]))
        # current_task() without a loop looks the loop up, which costs a system call (getpid) on Python 3.11.
        task = asyncio.current_task(self._loop)
        watch = _DisconnectWatch(body, task, self.deadlines)
        native = self.native is not None and url.startswith("http://")

        try:
            if native:
                assert self.native is not None
                return await self.native.exchange(scope, send, url, headers, body, read_timeout)
            return await self._exchange(scope, send, url, headers, body, read_timeout)
        except asyncio.CancelledError:
            if task is None or not body.disconnected:
                raise
            task.uncancel()
            raise ClientDisconnectedError from None
        finally:
            watch.stop()

    async def _exchange(
        self, scope: Scope, send: Send, url: str, headers: Headers, body: RequestBody, read_timeout: float | None
    ) -> int:
        started = time.perf_counter()
        # aiohttp copies the headers into its own multidict, so a list of pairs is enough here.
        request = self.session.request(
            scope["method"],
            URL(url, encoded=True),
            headers=[(name.decode("latin-1"), value.decode("latin-1")) for name, value in headers],
            data=body.chunks() if body.has_body else None,
            allow_redirects=False,
            timeout=self.timeout(read_timeout),
        )

        try:
            response = await request
        except ClientDisconnectedError:
            raise
        except aiohttp.ConnectionTimeoutError:
            # A connect timeout means the upstream could not be reached (502), as with the native engine.
            logger.warning("upstream connect timed out", extra={"event": "upstream_error", "error": "connect_timeout"})
            raise UpstreamError(502, "The upstream could not be reached.", reason_id="upstream_unreachable") from None
        except TimeoutError:
            raise UpstreamError(504, "The upstream did not respond in time.", reason_id="upstream_timeout") from None
        except aiohttp.ClientError as error:
            if body.disconnected:  # aiohttp reports the aborted body upload as its own error
                raise ClientDisconnectedError from None
            logger.warning("upstream request failed", extra={"event": "upstream_error", "error": type(error).__name__})
            raise UpstreamError(502, "The upstream could not be reached.", reason_id="upstream_unreachable") from None

        async with response:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status,
                    "headers": response_headers(list(response.raw_headers), response.status),
                }
            )
            try:
                async for chunk in response.content.iter_any():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except (TimeoutError, aiohttp.ClientError) as error:
                logger.warning(
                    "upstream response broken off", extra={"event": "upstream_error", "error": type(error).__name__}
                )
                return response.status
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        metrics.observe_upstream(scope, url, started)
        return response.status


class ReuseCheckingConnector(aiohttp.TCPConnector):
    """An aiohttp connector that never reuses a pooled connection holding unrequested bytes.

    aiohttp reuses any pooled connection that is still open. Bytes an
    upstream sends after a complete response are parsed as a response of
    their own and wait in the connection's protocol, so the next request on
    that connection would get them as its response: a response no request
    asked for, or one client's data handed to another. Such a connection
    reports ``should_close`` and is closed here instead of reused. This
    overrides a private method of aiohttp (``_get``, read in aiohttp 3.14),
    so ``tests/proxy/test_aiohttp_reuse.py`` fails if it stops working.
    """

    async def _get(self, key: Any, traces: list[Any]) -> Any:
        pooled = self._conns.get(key)
        if pooled:
            unsafe = [entry for entry in pooled if entry[0].should_close]
            for entry in unsafe:
                pooled.remove(entry)
                entry[0].close()
                logger.warning(
                    "upstream sent bytes after a complete response; connection closed",
                    extra={"event": "upstream_error", "error": "unrequested_bytes"},
                )
            if not pooled:
                del self._conns[key]
        return await super()._get(key, traces)


def has_body(headers: Headers) -> bool:
    """Tell whether a request with ``headers`` has a body: a non-zero Content-Length or any Transfer-Encoding."""
    for name, value in headers:
        if name == b"content-length":
            return value.strip() != b"0"
        if name == b"transfer-encoding":
            return True
    return False


class RequestBody:
    """The client's request body as an async iterator, and a watch for the client leaving.

    Only one coroutine may wait on ``receive`` at a time, so the disconnect
    watch starts only after the body has been read to its end.
    """

    def __init__(self, receive: Receive, *, has_body: bool) -> None:
        self.receive = receive
        self.has_body = has_body
        self.finished = asyncio.Event()
        self.disconnected = False
        if not has_body:
            self.finished.set()

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            while True:
                message = await self.receive()
                if message["type"] == "http.disconnect":
                    # Raising (not returning) aborts the upstream request, so a
                    # truncated body never reaches the upstream as a complete one.
                    self.disconnected = True
                    raise ClientDisconnectedError
                body = message.get("body", b"")
                if body:
                    yield body
                if not message.get("more_body", False):
                    return
        finally:
            self.finished.set()

    async def watch_disconnect(self, task: asyncio.Task | None) -> None:
        """Cancel ``task`` once the client has gone, seen here or while reading the body.

        aiohttp does not always end the exchange when the body iterator raises
        (3.14 keeps waiting for the response), so the task is cancelled either way.
        """
        await self.finished.wait()

        if not self.disconnected:
            # A request without a body still has one empty "http.request" message first.
            message: Message = await self.receive()
            while message["type"] != "http.disconnect":
                message = await self.receive()
            self.disconnected = True

        if task is not None:
            task.cancel()


class _DisconnectWatch:
    """Cancel the forwarding task once the client has gone, without a task per request.

    Most exchanges end within milliseconds, and a task per request to wait on
    ``receive`` cost about 8 µs. The watch task therefore starts only when
    the exchange is still running after ``DISCONNECT_WATCH_DELAY`` seconds;
    a client that left before then is seen as soon as the watch starts,
    because ``receive`` then returns ``http.disconnect`` at once.
    """

    __slots__ = ("body", "deadlines", "task", "watcher")

    def __init__(self, body: RequestBody, task: asyncio.Task | None, deadlines: Deadlines) -> None:
        self.body = body
        self.task = task
        self.deadlines = deadlines
        self.watcher: asyncio.Task | None = None
        deadlines.schedule(self, DISCONNECT_WATCH_DELAY, _DisconnectWatch._start, self)

    def _start(self) -> None:
        self.watcher = asyncio.create_task(self.body.watch_disconnect(self.task))

    def stop(self) -> None:
        self.deadlines.cancel(self)
        if self.watcher is not None:
            self.watcher.cancel()
