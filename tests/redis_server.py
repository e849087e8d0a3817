"""A real redis-server for tests, on a free 127.0.0.1 port, with nothing written to disk."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
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
        self.tls_files: tuple[Path, Path] | None = None

    def use_tls(self, certificate: Path, private_key: Path) -> None:
        """Serve TLS only, with this certificate chain and key, from the next start on."""
        self.tls_files = (certificate, private_key)

    @property
    def url(self) -> str:
        scheme = "rediss" if self.tls_files else "redis"
        return f"{scheme}://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        if self.tls_files is None:
            listen = ["--port", str(self.port)]
        else:
            certificate, private_key = self.tls_files
            listen = [
                "--port", "0",
                "--tls-port", str(self.port),
                "--tls-cert-file", str(certificate),
                "--tls-key-file", str(private_key),
                "--tls-auth-clients", "no",
            ]  # fmt: skip
        command = [
            self.executable,
            *listen,
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
                if self._answers_ping():
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def _answers_ping(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as plain:
            connection = plain
            if self.tls_files is not None:
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE  # only checks that the server is up
                connection = context.wrap_socket(plain)
            connection.sendall(b"PING\r\n")
            return connection.recv(16).startswith((b"+PONG", b"-NOAUTH"))
