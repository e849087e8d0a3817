"""Shared state for a single gate process, kept in memory."""

from __future__ import annotations

import math
import time

from cachetools import TTLCache

from gate.state.base import RateLimitResult, StateHealth
from gate.state.revocations import RevocationList

DEFAULT_MAX_ENTRIES = 1_000_000


class MemoryState:
    """``SharedState`` in one process's memory, bounded in entries.

    When the bound is reached, the oldest entries are evicted first. A replay
    of a single-use id older than the ``max_entries`` most recent ids could
    then pass, so the bound should exceed the number of ids recorded within
    their lifetime.
    """

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self._expiry: dict[str, float] = {}
        self._max_entries = max_entries
        self._windows: TTLCache[str, tuple[float, int]] = TTLCache(maxsize=max_entries, ttl=3600, timer=time.monotonic)
        self._revocations = RevocationList()

    async def start(self) -> None:
        return None

    async def add_if_absent(self, key: str, ttl: float) -> bool:
        now = time.monotonic()
        expires = self._expiry.get(key)
        if expires is not None and expires > now:
            return False

        if len(self._expiry) >= self._max_entries:
            self._evict(now)
        self._expiry[key] = now + ttl
        return True

    async def contains(self, key: str) -> bool:
        expires = self._expiry.get(key)
        return expires is not None and expires > time.monotonic()

    async def hit(self, key: str, window: float, limit: int) -> RateLimitResult:
        now = time.monotonic()
        started, count = self._windows.get(key, (now, 0))
        if now - started >= window:
            started, count = now, 0

        count += 1
        self._windows[key] = (started, count)
        retry_after = max(1, math.ceil(started + window - now))
        return RateLimitResult(allowed=count <= limit, count=count, retry_after=retry_after)

    async def block(self, key: str, ttl: float) -> None:
        await self.add_if_absent(key, ttl)

    async def is_blocked(self, key: str) -> bool:
        return await self.contains(key)

    async def revoke(self, jti: str, expires_at: float) -> None:
        self._revocations.add(jti, expires_at)

    def is_revoked(self, jti: str) -> bool:
        return self._revocations.contains(jti)

    def health(self) -> StateHealth:
        return StateHealth(backend="memory", ready=True, available=True, revocations_known=len(self._revocations))

    async def close(self) -> None:
        self._expiry.clear()
        self._windows.clear()
        self._revocations.clear()

    def _evict(self, now: float) -> None:
        expired = [key for key, expires in self._expiry.items() if expires <= now]
        for key in expired:
            del self._expiry[key]

        while len(self._expiry) >= self._max_entries:
            del self._expiry[next(iter(self._expiry))]
