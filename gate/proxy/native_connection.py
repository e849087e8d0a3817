"""One keep-alive HTTP/1.1 connection to an upstream, as an asyncio protocol.

The connection writes requests prepared by ``gate.proxy.native_client`` and
parses responses with httptools' ``HttpResponseParser``. Body bytes are queued
until the exchange takes them. Reading pauses while more than
``READ_HIGH_WATER`` bytes wait, so a slow client slows the upstream down
instead of filling gate's memory. Writing waits while the transport's buffer is full
(``pause_writing``/``resume_writing``).
"""

from __future__ import annotations

import asyncio
import time
from typing import cast

from httptools import HttpParserError, HttpParserUpgrade, HttpResponseParser

from gate.coalescing_transport import CoalescingTransport
from gate.proxy.deadlines import Deadlines
from gate.proxy.headers import Headers

READ_HIGH_WATER = 256 * 1024
# Larger header sections are rejected with 502, as aiohttp's limits would reject them.
MAX_HEADER_BYTES = 64 * 1024
"""Queued response bytes above which the connection stops reading from the upstream."""

_NO_BODY_STATUSES = frozenset({204, 304})


class ConnectionLostError(Exception):
    """The upstream closed the connection, or sent bytes that are not HTTP, before the exchange ended."""


class UpstreamConnection(asyncio.Protocol):
    """The protocol of one upstream connection and the state of its current exchange."""

    def __init__(self, deadlines: Deadlines) -> None:
        self.loop = asyncio.get_running_loop()
        self.deadlines = deadlines
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reused = False
        self.idle_since = 0.0
        self.waiter: asyncio.Future[None] | None = None
        self.write_waiter: asyncio.Future[None] | None = None
        self.write_paused = False
        self.reading_paused = False
        self.parser: HttpResponseParser | None = None
        self.begin(head_request=False)
        self.parser = None

    def begin(self, *, head_request: bool) -> None:
        """Reset the exchange state; a fresh parser per exchange, since a HEAD response leaves one mid-message."""
        self.parser = HttpResponseParser(self)
        self.head_request = head_request
        self.status = 0
        self.headers: Headers = []
        self.header_bytes = 0
        self.headers_done = False
        self.informational = False
        self.complete = False
        self.keep_alive = False
        self.until_close = False
        self.received = False
        self.broken = False
        self.chunks: list[bytes] = []
        self.buffered = 0

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The request head and the first body part, or a chunk and its framing, leave in one write.
        coalescing = CoalescingTransport(cast(asyncio.Transport, transport), self.loop)
        self.transport = cast(asyncio.Transport, coalescing)

    def data_received(self, data: bytes) -> None:
        if self.parser is None or self.complete:
            # Bytes on an idle connection, or after a complete response, belong to no request.
            self.broken = True
            self.abort()
            return

        self.received = True
        try:
            self.parser.feed_data(data)
        except (HttpParserError, HttpParserUpgrade):
            # A parse error, a second response, oversized headers or a 101
            # upgrade: the connection cannot carry this exchange or another.
            self.broken = True
            self.abort()
        self.wake()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.headers_done and not self.complete and self.until_close and exc is None:
            self.complete = True  # a body delimited by the connection's close (RFC 9112 section 6.3, rule 8)
        self.wake()
        self._wake_writer()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake_writer()

    # httptools callbacks

    def on_message_begin(self) -> None:
        if self.headers_done:
            # A second response to one request must never replace the first's
            # status and headers; raising stops the parser and breaks the connection.
            raise _ExtraResponseError
        self.headers = []
        self.header_bytes = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.headers_done:
            return  # trailer fields are not merged into the header section (RFC 9110 section 6.5.1)
        self.header_bytes += len(name) + len(value)
        if self.header_bytes > MAX_HEADER_BYTES:
            raise _HeadersTooLargeError
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        assert self.parser is not None
        status = self.parser.get_status_code()
        if status < 200:
            self.informational = True  # 1xx responses are skipped (RFC 9110 section 15.2)
            return

        self.status = status
        self.headers_done = True
        self.keep_alive = self.parser.should_keep_alive()
        if self.head_request or status in _NO_BODY_STATUSES:
            self.complete = True
            return
        framing = (b"content-length", b"transfer-encoding")
        self.until_close = not any(name.lower() in framing for name, _ in self.headers)

    def on_body(self, body: bytes) -> None:
        if self.complete:
            return
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > READ_HIGH_WATER and not self.reading_paused and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        if self.informational:
            self.informational = False
            return
        self.complete = True

    # Used by the exchange

    def take_body(self) -> bytes:
        """Return the queued body bytes and resume reading if it had paused."""
        chunks = self.chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self.chunks = []
        self.buffered = 0
        if self.reading_paused and self.transport is not None and not self.closed:
            self.reading_paused = False
            self.transport.resume_reading()
        return data

    async def wait(self, read_timeout: float | None) -> None:
        """Wait until more of the response arrives or the connection ends; ``TimeoutError`` after ``read_timeout``."""
        if self.closed or self.broken:
            raise ConnectionLostError
        waiter = self.loop.create_future()
        self.waiter = waiter
        if read_timeout is not None:
            self.deadlines.schedule(waiter, read_timeout, _expire, waiter)
        try:
            await waiter
        finally:
            self.deadlines.cancel(waiter)
            self.waiter = None

    def write(self, data: bytes) -> None:
        if self.closed or self.transport is None or self.transport.is_closing():
            raise ConnectionLostError
        self.transport.write(data)

    async def drain(self, stall_timeout: float | None = None) -> None:
        """Wait while the transport's write buffer is above its high-water mark.

        Raise ``TimeoutError`` when it stays there ``stall_timeout`` seconds, because the upstream stopped reading.
        """
        while self.write_paused:
            if self.closed:
                raise ConnectionLostError
            waiter = self.loop.create_future()
            self.write_waiter = waiter
            if stall_timeout is not None:
                self.deadlines.schedule(waiter, stall_timeout, _expire, waiter)
            try:
                await waiter
            finally:
                self.deadlines.cancel(waiter)
                self.write_waiter = None
        if self.closed:
            raise ConnectionLostError

    def reusable(self, now: float, keep_alive: float) -> bool:
        usable = not self.closed and not self.broken and self.transport is not None and not self.transport.is_closing()
        return usable and now - self.idle_since < keep_alive

    def park(self) -> None:
        """Mark the connection idle; bytes that arrive from now on break it."""
        self.parser = None
        self.idle_since = time.monotonic()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def wake(self, _: object = None) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_writer(self) -> None:
        waiter = self.write_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class _ExtraResponseError(Exception):
    """A second response arrived for one request."""


class _HeadersTooLargeError(Exception):
    """The upstream's header section is larger than ``MAX_HEADER_BYTES``."""
