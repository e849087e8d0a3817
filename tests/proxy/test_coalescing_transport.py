"""The coalescing transport: the writes of one event loop step leave as one, in order, and none is held longer."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from gate.coalescing_transport import CoalescingTransport
from tests.proxy.conftest import ProxyGate


class RecordingTransport:
    """A transport that records what reaches it."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.events: list[str] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)
        self.events.append("write")

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True
        self.events.append("close")

    def abort(self) -> None:
        self.closing = True
        self.events.append("abort")

    def write_eof(self) -> None:
        self.events.append("write_eof")

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 8080) if name == "sockname" else default


async def next_step() -> None:
    await asyncio.sleep(0)


async def test_one_step_one_write() -> None:
    inner = RecordingTransport()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())  # type: ignore[arg-type]

    transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    transport.write(bytearray(b"ok"))
    assert inner.writes == []
    assert transport.get_write_buffer_size() == 40

    await next_step()
    assert inner.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"]


async def test_later_steps_write_separately() -> None:
    inner = RecordingTransport()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())  # type: ignore[arg-type]

    transport.write(b"part one")
    await next_step()
    transport.writelines([b"part ", memoryview(b"two")])
    await next_step()

    assert inner.writes == [b"part one", b"part two"]


async def test_close_flushes_first() -> None:
    inner = RecordingTransport()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())  # type: ignore[arg-type]

    transport.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    transport.close()
    await next_step()

    assert inner.events == ["write", "close"]
    assert inner.writes == [b"HTTP/1.1 400 Bad Request\r\n\r\n"]


async def test_write_eof_flushes_first() -> None:
    inner = RecordingTransport()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())  # type: ignore[arg-type]

    transport.write(b"last bytes")
    transport.write_eof()

    assert inner.events == ["write", "write_eof"]


async def test_abort_drops_buffered_bytes() -> None:
    inner = RecordingTransport()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())  # type: ignore[arg-type]

    transport.write(b"never sent")
    transport.abort()
    await next_step()

    assert inner.events == ["abort"]


async def test_closing_transport_gets_nothing() -> None:
    inner = RecordingTransport()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())  # type: ignore[arg-type]

    transport.write(b"too late")
    inner.closing = True
    await next_step()

    assert inner.writes == []


async def test_other_attributes_delegated() -> None:
    inner = RecordingTransport()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())  # type: ignore[arg-type]

    assert transport.get_extra_info("sockname") == ("127.0.0.1", 8080)
    assert transport.is_closing() is False


def read_until(connection: socket.socket, marker: bytes, deadline: float) -> bytes:
    received = b""
    while marker not in received:
        connection.settimeout(max(deadline - time.monotonic(), 0.01))
        chunk = connection.recv(4096)
        if not chunk:
            break
        received += chunk
    return received


@pytest.mark.timeout(30)
def test_streamed_part_not_held_back(proxy_gate: ProxyGate) -> None:
    """The upstream's /stall sends "first part", then nothing for two seconds, then "too late"."""
    host, port = proxy_gate.url.removeprefix("http://").split(":")
    connection = socket.create_connection((host, int(port)), timeout=5)
    connection.sendall(b"GET /public/stall HTTP/1.1\r\nHost: gate.test\r\nConnection: close\r\n\r\n")

    received = read_until(connection, b"first part", time.monotonic() + 1.5)
    connection.close()

    assert received.startswith(b"HTTP/1.1 200")
    assert b"first part" in received
    assert b"too late" not in received
