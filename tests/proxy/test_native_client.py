"""The native forwarding engine against upstreams that respond with hand-written bytes."""

from __future__ import annotations

import asyncio

import pytest
from starlette.types import Message

from gate.config.model import UpstreamClientConfig
from gate.errors import UpstreamError
from gate.proxy.forward import Forwarder
from gate.proxy.native_connection import READ_HIGH_WATER
from tests.proxy.native_upstream import Reply, Request, ScriptedServer, answer, forward, native_client, scripted
from tests.servers import free_port

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def test_connection_reused_for_the_next_request() -> None:
    client = native_client()
    async with scripted(answer(OK)) as server:
        first = await forward(client, server.url + "/a")
        second = await forward(client, server.url + "/b")

    assert (first.body, second.body) == (b"ok", b"ok")
    assert server.connections == 1
    assert [request.lines[0] for request in server.requests] == [b"GET /a HTTP/1.1", b"GET /b HTTP/1.1"]


async def test_target_and_headers_sent_exactly_as_given() -> None:
    client = native_client()
    headers = [(b"X-Tag", b"one"), (b"x-tag", b"two"), (b"Accept-Encoding", b"gzip")]
    async with scripted(answer(OK)) as server:
        await forward(client, server.url + "/a/%2e%2e/b?q=%20&q=2", headers=headers)

    request = server.requests[0]
    assert request.lines[0] == b"GET /a/%2e%2e/b?q=%20&q=2 HTTP/1.1"
    assert request.lines[1:] == [
        b"host: " + server.url[7:].encode(),
        b"X-Tag: one",
        b"x-tag: two",
        b"Accept-Encoding: gzip",
    ]


async def test_idle_connection_closed_by_upstream() -> None:
    client = native_client()
    async with scripted(answer(OK, keep_open=False)) as server:
        await forward(client, server.url + "/a")
        await asyncio.sleep(0.05)  # the close reaches the pooled connection
        second = await forward(client, server.url + "/b")

    assert second.status == 200
    assert second.body == b"ok"
    assert server.connections == 2


def closes_first_reuse() -> Reply:
    """Respond to the first request, then close that connection on its second request without responding."""
    answered: list[int] = []

    async def reply(request: Request, writer: asyncio.StreamWriter) -> bool:
        if request.connection in answered:
            return False
        answered.append(request.connection)
        writer.write(OK)
        await writer.drain()
        return True

    return reply


async def test_get_retried_on_dead_connection() -> None:
    client = native_client()
    async with scripted(closes_first_reuse()) as server:
        await forward(client, server.url + "/a")
        retried = await forward(client, server.url + "/b")

    assert retried.status == 200
    assert server.connections == 2
    assert [(request.connection, request.lines[0]) for request in server.requests] == [
        (1, b"GET /a HTTP/1.1"),
        (1, b"GET /b HTTP/1.1"),
        (2, b"GET /b HTTP/1.1"),
    ]


async def test_post_not_retried_on_dead_connection() -> None:
    client = native_client()
    async with scripted(closes_first_reuse()) as server:
        await forward(client, server.url + "/a")
        with pytest.raises(UpstreamError) as raised:
            await forward(client, server.url + "/b", method="POST", headers=[(b"content-length", b"4")], body=[b"data"])

    assert raised.value.status == 502
    assert [request.lines[0] for request in server.requests] == [b"GET /a HTTP/1.1", b"POST /b HTTP/1.1"]


async def test_failed_retry_leaves_pool_empty() -> None:
    servers: list[ScriptedServer] = []

    async def close_on_reuse(request: Request, writer: asyncio.StreamWriter) -> bool:
        if servers[0].requests.index(request) > 0:
            assert servers[0].listener is not None
            servers[0].listener.close()  # the retry's new connection is refused
            return False
        writer.write(OK)
        await writer.drain()
        return True

    client = native_client()
    async with scripted(close_on_reuse) as server:
        servers.append(server)
        await forward(client, server.url + "/a")
        with pytest.raises(UpstreamError) as raised:
            await forward(client, server.url + "/b")

    assert raised.value.status == 502
    assert len(server.requests) == 2
    assert client.pool.open == 0


@pytest.mark.parametrize(
    ("method", "raw"),
    [
        ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"),
        ("GET", b"HTTP/1.1 204 No Content\r\n\r\n"),
        ("GET", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\nETag: x\r\n\r\n"),
    ],
    ids=["head-with-length", "204", "304-with-length"],
)
async def test_bodiless_responses_end_and_keep_the_connection(method: str, raw: bytes) -> None:
    client = native_client()
    async with scripted(answer(raw)) as server:
        first = await forward(client, server.url + "/a", method=method)
        second = await forward(client, server.url + "/b", method=method)

    assert first.finished
    assert second.finished
    assert first.body == b""
    assert second.body == b""
    assert server.connections == 1


async def test_informational_response_skipped() -> None:
    client = native_client()
    async with scripted(answer(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + OK)) as server:
        exchange = await forward(client, server.url + "/a")

    assert exchange.status == 200
    assert exchange.body == b"ok"
    assert (b"Link", b"</a>") not in exchange.headers


async def test_chunked_response_dechunked_with_repeated_headers_kept() -> None:
    raw = (
        b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Encoding: gzip\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    client = native_client()
    async with scripted(answer(raw)) as server:
        exchange = await forward(client, server.url + "/a")
        await forward(client, server.url + "/b")

    assert exchange.body == b"abcde"
    assert exchange.finished
    assert exchange.headers == [(b"Set-Cookie", b"a=1"), (b"Set-Cookie", b"b=2"), (b"Content-Encoding", b"gzip")]
    assert server.connections == 1


async def test_body_without_length_sent_chunked() -> None:
    client = native_client()
    async with scripted(answer(OK)) as server:
        await forward(client, server.url + "/up", method="POST", body=[b"abc", b"", b"defg"])

    request = server.requests[0]
    assert request.header(b"transfer-encoding") == [b"chunked"]
    assert request.header(b"content-length") == []
    assert request.body == b"abcdefg"


async def test_body_with_length_sent_as_is() -> None:
    client = native_client()
    async with scripted(answer(OK)) as server:
        await forward(
            client, server.url + "/up", method="PUT", headers=[(b"Content-Length", b"7")], body=[b"abc", b"defg"]
        )

    request = server.requests[0]
    assert request.header(b"content-length") == [b"7"]
    assert request.header(b"transfer-encoding") == []
    assert request.body == b"abcdefg"


@pytest.mark.parametrize(
    "raw",
    [b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", b"HTTP/1.0 200 OK\r\n\r\nok"],
    ids=["connection-close", "read-until-close"],
)
async def test_connection_not_reused_when_the_response_ends_it(raw: bytes) -> None:
    client = native_client()
    async with scripted(answer(raw, keep_open=False)) as server:
        first = await forward(client, server.url + "/a")
        second = await forward(client, server.url + "/b")

    assert (first.body, second.body) == (b"ok", b"ok")
    assert first.finished
    assert server.connections == 2


async def test_silent_upstream_is_504() -> None:
    async def silent(request: Request, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(1)
        return False

    async with scripted(silent) as server:
        with pytest.raises(UpstreamError) as raised:
            await forward(native_client(), server.url + "/a", read_timeout=0.1)

    assert raised.value.status == 504
    assert raised.value.reason_id == "upstream_timeout"


async def test_closed_port_is_502() -> None:
    with pytest.raises(UpstreamError) as raised:
        await forward(native_client(), f"http://127.0.0.1:{free_port()}/a")

    assert raised.value.status == 502
    assert raised.value.reason_id == "upstream_unreachable"


async def test_stall_after_headers_leaves_the_response_unfinished() -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"
    client = native_client()
    async with scripted(answer(raw)) as server:
        exchange = await forward(client, server.url + "/a", read_timeout=0.1)
        await forward(client, server.url + "/b", read_timeout=0.1)

    assert exchange.body == b"abc"
    assert not exchange.finished
    assert server.connections == 2


async def test_pool_never_opens_more_than_max_connections() -> None:
    async def slow(request: Request, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(0.05)
        writer.write(OK)
        await writer.drain()
        return True

    client = native_client(max_connections=1)
    async with scripted(slow) as server:
        exchanges = await asyncio.gather(*(forward(client, f"{server.url}/{n}") for n in range(3)))

    assert [exchange.body for exchange in exchanges] == [b"ok"] * 3
    assert server.connections == 1


async def test_https_upstream_stays_on_aiohttp() -> None:
    forwarder = Forwarder(UpstreamClientConfig(engine="native", connect_timeout=1.0))
    await forwarder.start()
    try:
        with pytest.raises(UpstreamError) as raised:
            await forwarder.forward(
                {"method": "GET", "headers": []}, _never, _discard, f"https://127.0.0.1:{free_port()}/a", [], 1.0
            )
    finally:
        await forwarder.close()

    assert raised.value.status == 502
    assert forwarder.native is not None
    assert forwarder.native.pool.open == 0  # the native pool never tried to connect


async def _never() -> Message:
    await asyncio.sleep(10)
    return {"type": "http.disconnect"}


async def _discard(message: Message) -> None:
    return None


async def test_slow_client_pauses_upstream_reads() -> None:
    size = 8 * 1024 * 1024
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size + b"x" * size
    client = native_client()
    async with scripted(answer(raw)) as server:
        exchange = await forward(client, server.url + "/big", send_delay=0.01)

    assert len(exchange.body) == size
    assert exchange.finished
    # Without paused reads a slow client lets megabytes pile up between two messages.
    assert max(len(message.get("body", b"")) for message in exchange.messages) <= 2 * READ_HIGH_WATER


async def test_second_response_never_replaces_first() -> None:
    raw = (
        OK
        + b"HTTP/1.1 302 Found\r\nLocation: http://elsewhere.example/\r\nSet-Cookie: a=1\r\nContent-Length: 0\r\n\r\n"
    )
    client = native_client()
    async with scripted(answer(raw)) as server:
        first = await forward(client, server.url + "/a")
        second = await forward(client, server.url + "/b")

    assert first.status == 200
    assert first.body == b"ok"
    assert b"location" not in [name.lower() for name, _ in first.headers]
    assert second.status == 200
    assert server.connections == 2


async def test_trailers_not_merged_into_headers() -> None:
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n"
    async with scripted(answer(raw)) as server:
        exchange = await forward(native_client(), server.url + "/a")

    assert exchange.body == b"hello"
    assert b"x-trailer" not in [name.lower() for name, _ in exchange.headers]


async def test_oversized_response_headers_are_502() -> None:
    raw = b"HTTP/1.1 200 OK\r\nX-Long: " + b"x" * (100 * 1024) + b"\r\nContent-Length: 2\r\n\r\nok"
    async with scripted(answer(raw)) as server:
        with pytest.raises(UpstreamError) as raised:
            await forward(native_client(), server.url + "/a")

    assert raised.value.status == 502


async def test_upgrade_response_is_502() -> None:
    raw = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    async with scripted(answer(raw)) as server:
        with pytest.raises(UpstreamError) as raised:
            await forward(native_client(), server.url + "/a")

    assert raised.value.status == 502


async def test_full_pool_wait_is_bounded() -> None:
    async def stall(request: Request, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(2)
        return False

    client = native_client(max_connections=1, connect_timeout=0.2)
    async with scripted(stall) as server:
        results = await asyncio.gather(
            forward(client, server.url + "/held", read_timeout=1.0),
            forward(client, server.url + "/queued", read_timeout=1.0),
            return_exceptions=True,
        )

    reasons = sorted(result.reason_id for result in results if isinstance(result, UpstreamError))
    assert reasons == ["upstream_pool_exhausted", "upstream_timeout"]


async def test_upstream_not_reading_body_is_504() -> None:
    async def never_reads(request: Request, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(5)
        return False

    chunks = [b"x" * (1024 * 1024)] * 64
    async with scripted(never_reads) as server:
        with pytest.raises(UpstreamError) as raised:
            await asyncio.wait_for(
                forward(native_client(), server.url + "/upload", method="POST", body=chunks, read_timeout=0.3), 4
            )

    assert raised.value.status == 504
