"""The HTTP/1.1 protocol gate runs under uvicorn: uvicorn's httptools protocol with joined writes.

uvicorn writes a response's status line and header section with one
``transport.write`` and each part of the body with another, so a small
proxied response costs two ``send`` system calls on the client's socket.
On the benchmark's protected route the second call was about 5 to 9 µs of
gate's CPU per request (see bench/README.md). ``CoalescingTransport`` buffers
the writes made during one step of the event loop and hands them to the
socket's transport as one at the end of that step, so the two become one.
Nothing waits longer than the current step: a streamed body still leaves
part by part, and flow control still sees every byte, one step later.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class CoalescingTransport:
    """Wrap a transport so that the writes of one event loop step reach it as one write.

    Every method that could reorder bytes or lose them flushes first:
    ``close`` and ``write_eof`` send the buffered bytes, ``abort`` drops them, as an
    abort drops the transport's own buffer. Other attributes are the
    wrapped transport's own.
    """

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        pending = self._pending
        if pending is None:
            self._pending = [bytes(data)]
            self._loop.call_soon(self.flush)
        else:
            pending.append(bytes(data))

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def flush(self) -> None:
        """Write the buffered bytes to the transport, or drop them when it is closing."""
        pending = self._pending
        if pending is None:
            return

        self._pending = None
        if not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def get_write_buffer_size(self) -> int:
        pending = self._pending
        return self._transport.get_write_buffer_size() + (sum(map(len, pending)) if pending else 0)

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending = None
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class GateHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol on a ``CoalescingTransport``."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
