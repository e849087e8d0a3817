"""A remote key set (JWKS URL or OIDC discovery) and its cache.

The cache never makes a request wait for a routine refresh: a background task
refetches before the key set's TTL runs out. Requests wait for a fetch only
when they carry a kid the cache does not know, and then at most one fetch
runs at a time for a source (single-flight) and at most one starts per
``unknown_kid_interval``. When fetches fail, the last good key set keeps
serving until ``max_staleness`` past its expiry. After that its keys are
distrusted and tokens of the issuer are rejected as ``keys_unavailable``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

import httpx
from cachetools import TTLCache

from gate.errors import KeySourceError
from gate.keys.fetcher import DocumentFetcher, discover_jwks_uri
from gate.keys.jwk import KeySet, ingest_jwks
from gate.metrics import METRICS

if TYPE_CHECKING:
    from gate.config.model import KeyCacheConfig

logger = logging.getLogger(__name__)


class RemoteKeySource:
    """The cached key set of one JWKS URL, or of the ``jwks_uri`` an issuer's discovery names."""

    def __init__(
        self, *, issuer: str, url: str, discovery: bool, allowed: frozenset[str], settings: KeyCacheConfig
    ) -> None:
        self.issuer = issuer
        self.url = url
        self.discovery = discovery
        self.allowed = allowed
        self.settings = settings
        self.name = f"discovery:{url}" if discovery else f"jwks_uri:{url}"

        self.key_set: KeySet | None = None
        self.expires_at = 0.0
        self.last_success: float | None = None
        self.last_success_wall: float | None = None
        self.consecutive_failures = 0
        self.last_error: str | None = None
        self.distrusted = False

        self._jwks_uri: str | None = None if discovery else url
        self._client: httpx.AsyncClient | None = None
        self._inflight: asyncio.Future[None] | None = None
        self._last_unknown_kid_fetch: float | None = None
        self._last_attempt: float | None = None
        self._unknown_kids: TTLCache[str, bool] = TTLCache(
            maxsize=settings.remembered_unknown_kids, ttl=settings.unknown_kid_interval, timer=time.monotonic
        )
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def running(self) -> bool:
        """Whether the background refresh task runs."""
        return self._task is not None

    @property
    def labels(self) -> dict[str, str]:
        return {"issuer": self.issuer, "source": self.name}

    async def start(self) -> None:
        """Start the background refresh task; the first fetch begins at once."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"key-refresh {self.name}")

    def adopt(self, previous: RemoteKeySource) -> None:
        """Take over the key set of the same source from the snapshot before a reload."""
        if previous.allowed != self.allowed or previous.key_set is None:
            return

        self.key_set = previous.key_set
        self.expires_at = previous.expires_at
        self.last_success = previous.last_success
        self.last_success_wall = previous.last_success_wall
        self._jwks_uri = previous._jwks_uri

    async def close(self) -> None:
        """Stop the background task and close the HTTP client; later refreshes do nothing."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def usable(self, now: float | None = None) -> bool:
        """Tell whether the key set may verify tokens: loaded and within its staleness window."""
        if self.key_set is None:
            return False

        current = time.monotonic() if now is None else now
        if current <= self.expires_at + self.settings.max_staleness:
            return True

        self._distrust_stale()
        return False

    def knows_kid(self, kid: str) -> bool:
        return self.key_set is not None and kid in self.key_set.by_kid

    async def refresh(self, reason: str) -> None:
        """Fetch the key set now, or join the fetch already running (single-flight)."""
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(self._refresh(reason))
            self._inflight.add_done_callback(self._clear_inflight)
        await asyncio.shield(self._inflight)

    async def refresh_for_unknown_kid(self, kid: str | None) -> None:
        """Refetch because a token named a kid (or no kid) that the key set lacks.

        At most one such fetch starts per ``unknown_kid_interval``. A kid that
        a recent fetch did not find is remembered and rejected without a fetch.
        """
        if kid is not None and kid in self._unknown_kids:
            return
        if self._inflight is not None:
            await asyncio.shield(self._inflight)
            return

        now = time.monotonic()
        if self.key_set is None:
            await self._load_first(now)
            return

        recent = self._last_unknown_kid_fetch
        if recent is not None and now - recent < self.settings.unknown_kid_interval:
            self._remember_unknown(kid)
            return

        self._last_unknown_kid_fetch = now
        await self.refresh("unknown_kid")
        if kid is not None and not self.knows_kid(kid):
            self._remember_unknown(kid)

    async def _load_first(self, now: float) -> None:
        """Fetch a key set that never loaded, at most once per ``retry_interval``.

        This fetch does not use up the unknown-kid budget, so a rotation right
        after the first load is still picked up by the first token that needs it.
        """
        recent = self._last_attempt
        if recent is not None and now - recent < self.settings.retry_interval:
            return
        await self.refresh("first_load")

    def status(self) -> dict[str, Any]:
        """Describe the source for ``/readyz`` and update its age gauge."""
        now = time.monotonic()
        age = None if self.last_success is None else round(now - self.last_success, 3)
        if age is not None:
            METRICS.set("gate_key_set_age_seconds", self.labels, age)

        if self.key_set is None:
            state = "pending" if self.consecutive_failures == 0 else "unavailable"
        elif not self.usable(now):
            state = "unavailable"
        else:
            state = "fresh" if now <= self.expires_at else "stale"

        return {
            "issuer": self.issuer,
            "source": self.name,
            "state": state,
            "keys": len(self.key_set) if self.key_set is not None else 0,
            "last_success": self.last_success_wall,
            "age_seconds": age,
            "consecutive_failures": self.consecutive_failures,
            "last_error": self.last_error,
        }

    def _clear_inflight(self, _future: asyncio.Future[None]) -> None:
        self._inflight = None

    def _remember_unknown(self, kid: str | None) -> None:
        if kid is not None:
            self._unknown_kids[kid] = True

    async def _run(self) -> None:
        if self.key_set is not None:
            await asyncio.sleep(self._next_delay())
        while True:
            await self.refresh("scheduled")
            await asyncio.sleep(self._next_delay())

    def _next_delay(self) -> float:
        now = time.monotonic()
        if self.key_set is None or self.consecutive_failures:
            delay = self.settings.retry_interval
            if self.key_set is not None:
                stale_deadline = self.expires_at + self.settings.max_staleness
                delay = min(delay, max(stale_deadline - now, 0.0) + 0.001)
            return delay

        ttl = self.expires_at - self.last_success  # type: ignore[operator]
        return max(self.expires_at - self.settings.refresh_ahead * ttl - now, 0.001)

    async def _refresh(self, reason: str) -> None:
        if self._closed:
            return
        self._last_attempt = time.monotonic()
        try:
            document, max_age = await self._fetch_key_set()
            key_set = ingest_jwks(document, issuer=self.issuer, source=self.name, allowed=self.allowed)
        except (KeySourceError, ValueError) as error:
            self._record_failure(str(error), reason)
            return

        self._install(key_set, max_age, reason)

    async def _fetch_key_set(self) -> tuple[Any, float | None]:
        fetcher = DocumentFetcher(self._http(), timeout=self.settings.timeout, max_bytes=self.settings.max_bytes)
        if self.discovery:
            self._jwks_uri = await discover_jwks_uri(fetcher, self.url)

        assert self._jwks_uri is not None
        fetched = await fetcher.fetch(self._jwks_uri)
        return fetched.document, fetched.max_age

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(follow_redirects=False, trust_env=False, timeout=self.settings.timeout)
        return self._client

    def _install(self, key_set: KeySet, max_age: float | None, reason: str) -> None:
        previous = self.key_set
        if previous is not None:
            key_set = key_set.carry_over(previous)
        removed = previous.distrust_missing(key_set) if previous is not None else []

        now = time.monotonic()
        ttl = self.settings.ttl if max_age is None else min(max(max_age, self.settings.min_ttl), self.settings.max_ttl)
        self.key_set = key_set
        self.expires_at = now + ttl
        for key in key_set.keys:
            key.trusted_until = self.expires_at + self.settings.max_staleness
        self.last_success = now
        self.last_success_wall = time.time()
        self.consecutive_failures = 0
        self.last_error = None
        self.distrusted = False
        for kid in list(self._unknown_kids):
            if self.knows_kid(kid):
                del self._unknown_kids[kid]

        METRICS.inc("gate_key_fetches_total", {**self.labels, "outcome": "success"})
        METRICS.set("gate_key_set_keys", self.labels, len(key_set))
        METRICS.set("gate_key_set_age_seconds", self.labels, 0.0)
        logger.info(
            "key set refreshed",
            extra={
                "event": "key_refresh",
                "issuer": self.issuer,
                "source": self.name,
                "reason": reason,
                "keys": len(key_set),
                "removed_kids": ",".join(str(key.kid) for key in removed) or None,
                "ttl_seconds": ttl,
            },
        )

    def _record_failure(self, error: str, reason: str) -> None:
        self.consecutive_failures += 1
        self.last_error = error
        METRICS.inc("gate_key_fetches_total", {**self.labels, "outcome": "failure"})

        serving_stale = self.key_set is not None and self.usable()
        if serving_stale:
            METRICS.inc("gate_key_stale_served_total", self.labels)
        logger.warning(
            "key set fetch failed; %s",
            "serving the last good key set" if serving_stale else "no usable key set",
            extra={
                "event": "key_fetch_failed",
                "issuer": self.issuer,
                "source": self.name,
                "reason": reason,
                "error": error,
                "consecutive_failures": self.consecutive_failures,
            },
        )

    def _distrust_stale(self) -> None:
        if self.distrusted or self.key_set is None:
            return

        self.distrusted = True
        self.key_set.distrust()
        METRICS.inc("gate_key_set_expired_total", self.labels)
        logger.error(
            "key set is older than its maximum staleness; tokens of this issuer are rejected until a fetch succeeds",
            extra={"event": "key_set_expired", "issuer": self.issuer, "source": self.name},
        )
