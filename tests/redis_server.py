"""A real redis-server for tests, on a free 127.0.0.1 port, with nothing written to disk."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.servers import free_port

INSTALL_HINT = "install it with 'apt-get install redis-server' (Debian, Ubuntu) or 'brew install redis' (macOS)"


def require_redis_server() -> str:
    """Return the path of redis-server; skip the test without it, or fail when GATE_REQUIRE_REDIS is set."""
    path = shutil.which("redis-server")
    if path is not None:
        return path

    message = f"redis-server is not on PATH; {INSTALL_HINT}"
    if os.environ.get("GATE_REQUIRE_REDIS"):
        pytest.fail(f"{message}. GATE_REQUIRE_REDIS is set, so Redis tests must not be skipped.")
    pytest.skip(message)


class RedisServer:
    """One redis-server process that a test can kill and start again on the same port."""

    def __init__(self, executable: str, directory: Path) -> None:
        self.executable = executable
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.extra_arguments: list[str] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [
            self.executable,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
            *self.extra_arguments,
        ]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_until_listening()

    def kill(self) -> None:
        """Stop the server at once, as a crash would."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with status {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as connection:
                    connection.sendall(b"PING\r\n")
                    if connection.recv(16).startswith((b"+PONG", b"-NOAUTH")):
                        return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server did not answer on port {self.port}")
