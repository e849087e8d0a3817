"""Real servers for tests: uvicorn in a thread on a free 127.0.0.1 port."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from gate.app import GateApp
from gate.server import uvicorn_config


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def running(app: Any, port: int | None = None) -> Iterator[str]:
    """Run ``app`` under uvicorn in a thread; yield its base URL; stop it after.

    gate's own app runs with the settings ``gate serve`` uses (its HTTP
    protocol included), every other app with uvicorn's defaults.
    """
    port = port or free_port()
    if isinstance(app, GateApp):
        config = uvicorn_config(app, "127.0.0.1", port)
    else:
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_config=None, access_log=False, proxy_headers=False, lifespan="auto"
        )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()

    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"server on port {port} did not start")
        time.sleep(0.01)

    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@dataclass
class Received:
    """One request as the recording upstream saw it."""

    method: str
    raw_path: bytes
    query_string: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: str) -> list[str]:
        wanted = name.lower().encode()
        return [value.decode("latin-1") for key, value in self.headers if key.lower() == wanted]


@dataclass
class RecordingUpstream:
    """A raw ASGI upstream that records every request it receives.

    It returns ``{"upstream": "ok", "path": ...}``; paths containing
    ``/slow/`` wait a second first.
    """

    received: list[Received] = field(default_factory=list)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return

        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break

        self.received.append(
            Received(scope["method"], scope["raw_path"], scope["query_string"], list(scope["headers"]), body)
        )
        if "/slow/" in scope["path"]:
            await asyncio.sleep(1)

        payload = b'{"upstream":"ok","path":"' + scope["raw_path"] + b'"}'
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": payload})
