"""Streaming requests to upstreams through one pooled aiohttp session.

aiohttp was chosen over httpx by measurement: see bench/forwarding-clients.md.
aiohttp errors are translated into ``UpstreamError`` here and nowhere else.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

import aiohttp
from multidict import CIMultiDict
from starlette.types import Receive, Scope, Send
from yarl import URL

from gate import metrics
from gate.config.model import UpstreamClientConfig
from gate.errors import UpstreamError
from gate.proxy.headers import Headers, strip_hop_by_hop

logger = logging.getLogger(__name__)

_NO_AUTO_HEADERS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")


class Forwarder:
    """Send a request upstream and stream the response back to the ASGI client."""

    def __init__(self, config: UpstreamClientConfig) -> None:
        self.config = config
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self.config.max_connections, ttl_dns_cache=60)
        timeout = aiohttp.ClientTimeout(
            total=None, connect=self.config.connect_timeout, sock_read=self.config.read_timeout
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            auto_decompress=False,
            skip_auto_headers=_NO_AUTO_HEADERS,
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("the forwarder is not started; it starts with the application's lifespan")
        return self._session

    async def forward(self, scope: Scope, receive: Receive, send: Send, url: str, headers: Headers) -> int:
        """Forward the request of ``scope`` to ``url`` and stream the answer.

        Return the upstream's status. Raise ``UpstreamError`` when the
        upstream cannot be reached or times out before its response starts.
        """
        started = time.perf_counter()
        body = _request_body(receive) if _has_body(scope["headers"]) else None
        request = self.session.request(
            scope["method"],
            URL(url, encoded=True),
            headers=CIMultiDict((name.decode("latin-1"), value.decode("latin-1")) for name, value in headers),
            data=body,
            allow_redirects=False,
        )

        try:
            response = await request
        except TimeoutError:
            raise UpstreamError(504, "The upstream did not answer in time.", reason_id="upstream_timeout") from None
        except aiohttp.ClientError as error:
            logger.warning("upstream request failed", extra={"event": "upstream_error", "error": type(error).__name__})
            raise UpstreamError(502, "The upstream could not be reached.", reason_id="upstream_unreachable") from None

        async with response:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status,
                    "headers": strip_hop_by_hop(list(response.raw_headers)),
                }
            )
            async for chunk in response.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        metrics.observe_upstream(scope, url, started)
        return response.status


def _has_body(headers: Headers) -> bool:
    for name, value in headers:
        if name == b"content-length":
            return value.strip() != b"0"
        if name == b"transfer-encoding":
            return True
    return False


async def _request_body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body = message.get("body", b"")
        if body:
            yield body
        if not message.get("more_body", False):
            return
