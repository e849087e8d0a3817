"""A request with ``Expect: 100-continue`` reaches an upstream that never sends ``100 Continue``.

Such upstreams (HTTP/1.0 servers, and servers that read the body without
sending ``100 Continue``) wait for the body. aiohttp 3.14, given the header,
waits for the ``100 Continue`` before it sends the body, and its read
timeout starts only once the body is sent (``ClientRequest.write_bytes``),
so without a fix the exchange never ends.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
import yaml

from gate.app import create_app
from gate.config.compile import load_snapshot
from gate.keys.generate import generate_private_key, write_private_key
from gate.oauth.app_tokens import generate_app_token
from tests.conftest import base_config
from tests.proxy.native_upstream import Request, scripted
from tests.servers import free_port, running

BODY = b'{"order": 7}'


def post_expecting_continue(port: int) -> bytes:
    """Send the head and body at once, as curl does once its wait for ``100 Continue`` ends, and return the response."""
    head = (
        b"POST /public/orders HTTP/1.1\r\nHost: gate.test\r\nExpect: 100-continue\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(BODY)
    )
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(head + BODY)
        try:
            while chunk := connection.recv(65536):
                received += chunk
        except TimeoutError:
            pass
    return received


@pytest.mark.timeout(60)
@pytest.mark.parametrize("engine", ["native", "aiohttp"])
async def test_upstream_without_continue_gets_body(tmp_path: Path, engine: str) -> None:
    async def reply(_: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 6\r\n\r\nstored")
        await writer.drain()
        return True

    write_private_key(generate_private_key("ES256"), tmp_path / "signing-key.pem")
    port = free_port()

    async with scripted(reply) as upstream:
        config = base_config(f"http://127.0.0.1:{port}", upstream.url, generate_app_token())
        config["upstream_client"] = {"read_timeout": 2, "engine": engine}
        (tmp_path / "gate.yaml").write_text(yaml.safe_dump(config))

        with running(create_app(load_snapshot(tmp_path / "gate.yaml")), port):
            response = await asyncio.to_thread(post_expecting_continue, port)

    assert response.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 ")
    assert response.endswith(b"\r\n\r\nstored")
    assert [request.body for request in upstream.requests] == [BODY]
