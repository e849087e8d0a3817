"""The local copy of the revocation list that every request is checked against."""

from __future__ import annotations

import time
from collections.abc import Iterable


class RevocationList:
    """Revoked token ids, each kept until its own expiry (Unix time, seconds).

    Lookups are dictionary reads with no I/O. Expired ids are dropped whenever
    the list has doubled since the last sweep, so it contains at most about twice
    the number of revocations that are still in force.
    """

    def __init__(self) -> None:
        self._expiry: dict[str, float] = {}
        self._size_after_sweep = 0

    def __len__(self) -> int:
        return len(self._expiry)

    def add(self, jti: str, expires_at: float) -> None:
        """Record ``jti`` until ``expires_at``; a later expiry already recorded wins."""
        if expires_at <= time.time():
            return

        self._expiry[jti] = max(expires_at, self._expiry.get(jti, 0.0))
        if len(self._expiry) > max(1024, 2 * self._size_after_sweep):
            self.sweep()

    def merge(self, entries: Iterable[tuple[str, float]]) -> None:
        """Add every ``(jti, expires_at)`` of a full copy read from the shared store."""
        for jti, expires_at in entries:
            self.add(jti, expires_at)
        self.sweep()

    def contains(self, jti: str) -> bool:
        expires_at = self._expiry.get(jti)
        return expires_at is not None and expires_at > time.time()

    def sweep(self) -> None:
        """Drop the ids whose revocation has expired."""
        now = time.time()
        self._expiry = {jti: expires_at for jti, expires_at in self._expiry.items() if expires_at > now}
        self._size_after_sweep = len(self._expiry)

    def clear(self) -> None:
        self._expiry.clear()
        self._size_after_sweep = 0
