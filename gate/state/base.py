"""The interface of shared state, implemented in memory and (for replicas) in Redis.

Every entry carries an expiry and disappears on its own, so the store never
grows without bound. Keys are namespaced by the caller (for example
``jti:{issuer}:{jti}``), never raw tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class RateLimitResult:
    """The state of one rate-limit window after a hit."""

    allowed: bool
    count: int
    retry_after: int


class SharedStateUnavailableError(Exception):
    """The shared store cannot be reached; callers apply their failure policy."""


class SharedState(Protocol):
    """Atomic operations on state shared by every replica."""

    async def add_if_absent(self, key: str, ttl: float) -> bool:
        """Record ``key`` for ``ttl`` seconds; ``False`` if it was already recorded."""
        ...

    async def contains(self, key: str) -> bool:
        """Tell whether ``key`` is recorded and not expired."""
        ...

    async def hit(self, key: str, window: float, limit: int) -> RateLimitResult:
        """Count one event in the fixed window of ``key``; allowed while the count is within ``limit``."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
