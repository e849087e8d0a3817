"""gate under uvicorn in front of a scripted raw-socket upstream, for byte-level tests of either engine."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import yaml

from gate.app import create_app
from gate.config.compile import load_snapshot
from gate.keys.generate import generate_private_key, write_private_key
from gate.oauth.app_tokens import generate_app_token
from tests.conftest import base_config
from tests.proxy.native_upstream import Reply, ScriptedServer, scripted
from tests.servers import free_port, running


@asynccontextmanager
async def gate_before(reply: Reply, engine: str, directory: Path) -> AsyncIterator[tuple[int, ScriptedServer]]:
    """Yield gate's port and the upstream that ``reply`` scripts, which ``/public/`` reaches without a token."""
    write_private_key(generate_private_key("ES256"), directory / "signing-key.pem")
    port = free_port()

    async with scripted(reply) as upstream:
        config = base_config(f"http://127.0.0.1:{port}", upstream.url, generate_app_token())
        config["upstream_client"] = {"read_timeout": 2, "engine": engine}
        (directory / "gate.yaml").write_text(yaml.safe_dump(config))

        with running(create_app(load_snapshot(directory / "gate.yaml")), port):
            yield port, upstream


def exchange_bytes(port: int, request: bytes) -> bytes:
    """Send ``request`` on a new connection and return every byte received until it closes or stays idle 5 seconds."""
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(request)
        try:
            while chunk := connection.recv(65536):
                received += chunk
        except TimeoutError:
            pass
    return received
