"""A request with ``Expect: 100-continue`` reaches an upstream that never sends ``100 Continue``.

Such upstreams (HTTP/1.0 servers, and servers that read the body without
sending ``100 Continue``) wait for the body. aiohttp 3.14, given the header,
waits for the ``100 Continue`` before it sends the body, and its read
timeout starts only once the body is sent (``ClientRequest.write_bytes``),
so without a fix the exchange never ends.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.proxy.native_upstream import Request
from tests.proxy.scripted_gate import exchange_bytes, gate_before

BODY = b'{"order": 7}'

# The head and body at once, as curl sends them once its wait for 100 Continue ends.
REQUEST = (
    b"POST /public/orders HTTP/1.1\r\nHost: gate.test\r\nExpect: 100-continue\r\n"
    b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(BODY), BODY)
)


async def created(_: Request, writer: asyncio.StreamWriter) -> bool:
    writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 6\r\n\r\nstored")
    await writer.drain()
    return True


@pytest.mark.timeout(60)
@pytest.mark.parametrize("engine", ["native", "aiohttp"])
async def test_upstream_without_continue_gets_body(tmp_path: Path, engine: str) -> None:
    async with gate_before(created, engine, tmp_path) as (port, upstream):
        response = await asyncio.to_thread(exchange_bytes, port, REQUEST)

    assert response.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 ")
    assert response.endswith(b"\r\n\r\nstored")
    assert [request.body for request in upstream.requests] == [BODY]
