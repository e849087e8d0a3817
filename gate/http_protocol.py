"""The HTTP/1.1 protocol gate runs under uvicorn: uvicorn's httptools protocol with joined writes.

uvicorn writes a response's status line and header section with one
``transport.write`` and each part of the body with another, so a small
proxied response costs two ``send`` system calls on the client's socket.
On a ``CoalescingTransport`` (``gate.coalescing_transport``) the two become
one, which cut gate's CPU by 5 to 9 µs per proxied request in the
benchmark (bench/README.md).
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gate.coalescing_transport import CoalescingTransport


class GateHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol on a ``CoalescingTransport``."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
