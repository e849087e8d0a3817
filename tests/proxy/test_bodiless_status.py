"""A 304 or 204 response whose upstream sent a Content-Length ends cleanly, and its connection carries the next.

RFC 9110 section 8.6 lets a 304 carry the Content-Length a 200 would have
had, with no content. uvicorn 0.55 counts the body sent against any
Content-Length it is given, except for HEAD, so gate must not hand it one
for a response that has no body.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.proxy.native_upstream import Request
from tests.proxy.scripted_gate import exchange_bytes, gate_before

HEADS = {
    "not modified": b'HTTP/1.1 304 Not Modified\r\nETag: "v7"\r\nContent-Length: 1234\r\n\r\n',
    "no content": b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
}
SECOND = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("engine", ["native", "aiohttp"])
@pytest.mark.parametrize("head", HEADS.values(), ids=HEADS.keys())
async def test_bodiless_status_keeps_connection(tmp_path: Path, engine: str, head: bytes) -> None:
    async def reply(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(head if request.lines[0].startswith(b"GET /public/first ") else SECOND)
        await writer.drain()
        return True

    pipelined = (
        b'GET /public/first HTTP/1.1\r\nHost: gate.test\r\nIf-None-Match: "v7"\r\n\r\n'
        b"GET /public/second HTTP/1.1\r\nHost: gate.test\r\nConnection: close\r\n\r\n"
    )
    async with gate_before(reply, engine, tmp_path) as (port, _):
        response = await asyncio.to_thread(exchange_bytes, port, pipelined)

    first, _, rest = response.partition(b"\r\n\r\n")
    assert first.startswith(head[:12])
    assert rest.startswith(b"HTTP/1.1 200 OK\r\n")
    assert rest.endswith(b"\r\n\r\nsecond")
