"""HTTP fetches of key sets and discovery documents.

Each fetch is bounded three ways. A total timeout covers the body too, so a
server that drips its body byte by byte cannot hold a refresh open. A size
cap is checked while the body streams. Redirects are followed only within the
same scheme, host and port. Every failure becomes a ``KeySourceError`` whose
message names the URL and the failure.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from gate.errors import KeySourceError

MAX_REDIRECTS = 3
DISCOVERY_SUFFIX = "/.well-known/openid-configuration"
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*(no-cache|no-store)\s*(?:,|$)", re.IGNORECASE)


@dataclass(frozen=True)
class FetchedDocument:
    """A JSON document and the lifetime its server suggested, if any."""

    document: Any
    max_age: float | None


def max_age_of(cache_control: str | None) -> float | None:
    """Read ``max-age`` from a ``Cache-Control`` value; ``no-cache``/``no-store`` count as 0."""
    if not cache_control:
        return None
    if _NO_CACHE.search(cache_control):
        return 0.0

    match = _MAX_AGE.search(cache_control)
    return float(match.group(1)) if match else None


def _same_origin(first: str, second: str) -> bool:
    a, b = urlsplit(first), urlsplit(second)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)


class DocumentFetcher:
    """Fetch JSON documents with ``client`` under a timeout and a size cap."""

    def __init__(self, client: httpx.AsyncClient, *, timeout: float, max_bytes: int) -> None:
        self.client = client
        self.timeout = timeout
        self.max_bytes = max_bytes

    async def fetch(self, url: str) -> FetchedDocument:
        """Fetch and parse the JSON document at ``url``."""
        try:
            async with asyncio.timeout(self.timeout):
                return await self._fetch_following(url)
        except TimeoutError:
            raise KeySourceError(f"fetching {url} timed out after {self.timeout} s") from None
        except httpx.HTTPError as error:
            raise KeySourceError(f"fetching {url} failed: {type(error).__name__}: {error}") from None

    async def _fetch_following(self, url: str) -> FetchedDocument:
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            async with self.client.stream("GET", current, headers={"Accept": "application/json"}) as response:
                if response.is_redirect:
                    target = urljoin(current, response.headers.get("location", ""))
                    if not _same_origin(url, target):
                        raise KeySourceError(f"{url} redirected to another host ({target}); not followed")
                    current = target
                    continue

                if response.status_code != 200:
                    raise KeySourceError(f"{current} returned HTTP status {response.status_code}")

                body = await self._read_capped(response, current)
                return FetchedDocument(_parse(body, current), max_age_of(response.headers.get("cache-control")))

        raise KeySourceError(f"{url} redirected more than {MAX_REDIRECTS} times")

    async def _read_capped(self, response: httpx.Response, url: str) -> bytes:
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            raise KeySourceError(f"{url} sent {declared} bytes, more than the limit of {self.max_bytes}")

        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > self.max_bytes:
                raise KeySourceError(f"{url} sent more than the limit of {self.max_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)


def _parse(body: bytes, url: str) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise KeySourceError(f"{url} did not send valid JSON ({error})") from None


async def discover_jwks_uri(fetcher: DocumentFetcher, issuer: str) -> str:
    """Read ``jwks_uri`` from the issuer's OpenID Connect discovery document.

    OpenID Connect Discovery 1.0 section 4.3: the document's ``issuer`` must
    equal the configured issuer exactly.
    """
    url = issuer.rstrip("/") + DISCOVERY_SUFFIX
    document = (await fetcher.fetch(url)).document
    if not isinstance(document, dict) or document.get("issuer") != issuer:
        raise KeySourceError(f"the discovery document at {url} names another issuer than {issuer!r}")

    jwks_uri = document.get("jwks_uri")
    if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
        raise KeySourceError(f"the discovery document at {url} has no usable jwks_uri")
    return jwks_uri
