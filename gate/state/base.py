"""The interface of shared state, implemented in memory and (for replicas) in Redis.

Every entry carries an expiry and disappears on its own, so the store never
grows without bound. Keys are namespaced by the caller (for example
``jti:{issuer}:{jti}``), never raw tokens.

Revocations have their own pair of methods instead of ``add_if_absent`` and
``contains``: ``revoke`` writes to the shared store, and ``is_revoked`` reads a
local copy that the Redis store keeps current in the background. The proxy
calls ``is_revoked`` on every request, so that check must not wait on the
network.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class RateLimitResult:
    """The state of one rate-limit window after a hit."""

    allowed: bool
    count: int
    retry_after: int


@dataclass(frozen=True)
class StateHealth:
    """What ``/readyz`` shows about the shared-state backend.

    ``ready`` is false until the backend has a usable revocation list (the
    Redis store after its first full sync). ``available`` is false while the
    backend cannot be reached; a replica stays ready during an outage and
    applies the configured failure policy instead.
    """

    backend: str
    ready: bool
    available: bool
    revocations_known: int
    last_sync_age: float | None = None
    outages: int = 0
    unavailable_for: float | None = None
    last_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class SharedStateUnavailableError(Exception):
    """The shared store cannot be reached; callers apply their failure policy.

    The token endpoint returns 503 when a single-use check raises this,
    because a replay can no longer be ruled out.
    """


class SharedState(Protocol):
    """Atomic operations on state shared by every replica."""

    async def start(self) -> None:
        """Begin background work; the app calls it once at startup."""
        ...

    async def add_if_absent(self, key: str, ttl: float) -> bool:
        """Record ``key`` for ``ttl`` seconds; ``False`` if it was already recorded.

        Raises ``SharedStateUnavailableError`` when the store cannot be reached
        and its failure policy rejects.
        """
        ...

    async def contains(self, key: str) -> bool:
        """Tell whether ``key`` is recorded and not expired."""
        ...

    async def hit(self, key: str, window: float, limit: int) -> RateLimitResult:
        """Count one event in the fixed window of ``key``; allowed while the count is within ``limit``."""
        ...

    async def block(self, key: str, ttl: float) -> None:
        """Mark ``key`` as blocked for ``ttl`` seconds; a block already in place keeps its expiry.

        Follows the ``rate_limit`` failure policy, like ``hit``: while the store
        cannot be reached, ``local`` blocks in this replica's memory and
        ``reject`` raises ``SharedStateUnavailableError``.
        """
        ...

    async def is_blocked(self, key: str) -> bool:
        """Tell whether ``key`` is blocked; follows the ``rate_limit`` failure policy, like ``block``."""
        ...

    async def revoke(self, jti: str, expires_at: float) -> None:
        """Record token id ``jti`` as revoked until ``expires_at`` (Unix time, seconds).

        Pass the token's ``exp`` plus the verifier's clock-skew leeway, so the
        revocation lasts as long as any replica could still accept the token.
        The revocation is enforced by this replica at once, even when the
        shared store then raises ``SharedStateUnavailableError``.
        """
        ...

    def is_revoked(self, jti: str) -> bool:
        """Tell from the local copy of the revocation list whether ``jti`` is revoked.

        Raises ``SharedStateUnavailableError`` only when the failure policy
        rejects requests while that copy is older than its allowed staleness.
        """
        ...

    def health(self) -> StateHealth:
        """Describe the backend's state without contacting it."""
        ...

    async def close(self) -> None:
        """Stop background work and release connections."""
        ...
