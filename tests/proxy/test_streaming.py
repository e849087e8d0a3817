"""Large bodies stream through gate in both directions; a client that leaves cancels upstream."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from gate.keys.generate import generate_private_key, write_private_key
from tests.conftest import KID
from tests.proxy.conftest import ProxyGate
from tests.proxy.upstreams import ScriptedUpstream
from tests.servers import free_port, running

BODY_MB = 256
CHUNK = b"\xa5" * (1024 * 1024)
# Peak memory may grow by this much over the baseline while BODY_MB pass each way.
MAX_GROWTH_MB = 64


@dataclass
class GateProcess:
    url: str
    pid: int
    upstream: ScriptedUpstream


def peak_rss_mb(pid: int) -> float:
    """Return VmHWM, the peak resident set size of ``pid``, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("VmHWM missing from /proc status")


def wait_for_port(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gate exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("gate did not start listening")


@pytest.fixture(scope="module")
def gate_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GateProcess]:
    """gate as its own process (so its memory can be read), in front of an in-process upstream."""
    if not Path("/proc/self/status").exists():
        pytest.skip("peak memory is read from /proc, which this system lacks")

    directory = tmp_path_factory.mktemp("gate-process")
    write_private_key(generate_private_key("ES256"), directory / "signing-key.pem")
    upstream = ScriptedUpstream()

    with running(upstream) as upstream_url:
        port = free_port()
        config = {
            "issuer": f"http://127.0.0.1:{port}",
            "signing_keys": [{"kid": KID, "private_key_file": "signing-key.pem"}],
            "routes": [
                {"id": "public", "path_prefix": "/public/", "upstream": upstream_url, "auth": {"mode": "public"}}
            ],
        }
        (directory / "gate.yaml").write_text(yaml.safe_dump(config))
        command = [sys.executable, "-m", "gate", "serve", "--config", str(directory / "gate.yaml"), "--port", str(port)]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_port(port, process)
            yield GateProcess(f"http://127.0.0.1:{port}", process.pid, upstream)
        finally:
            process.terminate()
            process.wait(timeout=10)


def send_chunked_body(connection: socket.socket, megabytes: int) -> None:
    connection.sendall(
        b"POST /public/echo HTTP/1.1\r\nHost: gate.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    chunk_head = f"{len(CHUNK):x}\r\n".encode()
    for _ in range(megabytes):
        connection.sendall(chunk_head + CHUNK + b"\r\n")
    connection.sendall(b"0\r\n\r\n")


def test_large_body_both_ways_keeps_memory_flat(gate_process: GateProcess) -> None:
    warm_up = socket.create_connection(("127.0.0.1", int(gate_process.url.rsplit(":", 1)[1])), timeout=30)
    send_chunked_body(warm_up, 2)
    while warm_up.recv(1 << 20):
        pass
    warm_up.close()
    baseline = peak_rss_mb(gate_process.pid)

    connection = socket.create_connection(("127.0.0.1", int(gate_process.url.rsplit(":", 1)[1])), timeout=30)
    sender = threading.Thread(target=send_chunked_body, args=(connection, BODY_MB), daemon=True)
    sender.start()
    received = 0
    while chunk := connection.recv(1 << 20):
        received += len(chunk)
    sender.join(timeout=30)
    connection.close()
    peak = peak_rss_mb(gate_process.pid)

    assert gate_process.upstream.echoed_bytes[-1] == BODY_MB * len(CHUNK)
    assert received > BODY_MB * len(CHUNK)  # the echo, plus chunk framing and headers
    print(f"gate peak RSS {baseline:.0f} MiB before, {peak:.0f} MiB after {BODY_MB} MiB each way")
    assert peak - baseline < MAX_GROWTH_MB, f"peak RSS grew from {baseline:.0f} MiB to {peak:.0f} MiB"


def wait_until(condition, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_client_leaving_cancels_upstream_response(proxy_gate: ProxyGate) -> None:
    before = len(proxy_gate.upstream.cancelled)
    host, port = proxy_gate.url.removeprefix("http://").split(":")
    connection = socket.create_connection((host, int(port)), timeout=5)
    connection.sendall(b"GET /public/drip HTTP/1.1\r\nHost: gate.test\r\n\r\n")

    first = connection.recv(4096)
    connection.close()

    assert first.startswith(b"HTTP/1.1 200")
    assert wait_until(lambda: len(proxy_gate.upstream.cancelled) > before)
    assert proxy_gate.upstream.cancelled[-1] == "/public/drip"


def test_client_leaving_mid_upload_cancels_upstream(proxy_gate: ProxyGate) -> None:
    before_cancelled = len(proxy_gate.upstream.cancelled)
    before_complete = len(proxy_gate.upstream.echoed_bytes)
    host, port = proxy_gate.url.removeprefix("http://").split(":")
    connection = socket.create_connection((host, int(port)), timeout=5)
    connection.sendall(b"POST /public/echo HTTP/1.1\r\nHost: gate.test\r\nContent-Length: 1000000\r\n\r\n")
    connection.sendall(b"x" * 1000)

    assert connection.recv(4096).startswith(b"HTTP/1.1 200")
    connection.close()

    assert wait_until(lambda: len(proxy_gate.upstream.cancelled) > before_cancelled)
    assert proxy_gate.upstream.cancelled[-1] == "/public/echo"
    assert len(proxy_gate.upstream.echoed_bytes) == before_complete
