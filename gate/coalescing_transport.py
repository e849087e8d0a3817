"""A transport wrapper that hands the writes of one event loop step to the socket as one write.

Each ``transport.write`` on uvloop is a ``send`` system call when the
socket's buffer is empty. gate's server protocol (``gate.http_protocol``)
and its upstream connections (``gate.proxy.native_connection``) write a
message in several parts, so they write through ``CoalescingTransport``,
which joins the parts of one step. Nothing waits longer than the current
step: a streamed body still leaves part by part, and every byte still
reaches the transport's flow control, one step later.
"""

from __future__ import annotations

import asyncio
from typing import Any


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
