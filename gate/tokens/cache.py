"""The verified-token cache: a repeated token costs a dict lookup, not a signature check.

An entry is served only while its ``exp`` lies in the future and the key that
verified it is still trusted. A key that leaves its issuer's key set has its
``trusted`` flag cleared by the key cache, and a remote key carries the
deadline past which its set is too stale, so tokens it signed stop passing at
once, cached or not.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from gate.keys.jwk import TrustedKey

if TYPE_CHECKING:
    from gate.tokens.verifier import VerifiedToken


class _Entry:
    __slots__ = ("expires_at", "key", "verified")

    def __init__(self, verified: VerifiedToken, key: TrustedKey) -> None:
        self.verified = verified
        self.key = key
        # A certificate or a retired signing key stops verifying at not_after, cached tokens included.
        self.expires_at = verified.expires_at if key.not_after is None else min(verified.expires_at, key.not_after)


class VerifiedTokenCache:
    """Verified tokens by their exact string, bounded to ``max_entries``.

    When full, expired entries are swept first and the oldest entries go next.
    """

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: dict[str, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token: str) -> VerifiedToken | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        key = entry.key
        if entry.expires_at > time.time() and key.trusted and key.trusted_until > time.monotonic():
            return entry.verified

        del self._entries[token]
        return None

    def put(self, token: str, verified: VerifiedToken, key: TrustedKey) -> None:
        if self.max_entries <= 0:
            return
        if len(self._entries) >= self.max_entries:
            self._make_room()
        self._entries[token] = _Entry(verified, key)

    def forget_jti(self, issuer: str, jti: str) -> int:
        """Drop every cached token of ``issuer`` with this ``jti`` (a revocation); return the count."""
        return self._drop(lambda verified: verified.issuer == issuer and verified.claims.get("jti") == jti)

    def forget_issuer(self, issuer: str) -> int:
        """Drop every cached token of ``issuer``; return the count."""
        return self._drop(lambda verified: verified.issuer == issuer)

    def clear(self) -> None:
        self._entries.clear()

    def _drop(self, matches: object) -> int:
        doomed = [token for token, entry in self._entries.items() if matches(entry.verified)]  # type: ignore[operator]
        for token in doomed:
            del self._entries[token]
        return len(doomed)

    def _make_room(self) -> None:
        now = time.time()
        expired = [token for token, entry in self._entries.items() if entry.expires_at <= now or not entry.key.trusted]
        for token in expired:
            del self._entries[token]

        # The sweep is O(n); evicting a tenth at once keeps it rare under a flood of distinct valid tokens.
        overflow = len(self._entries) - self.max_entries + max(1, self.max_entries // 10)
        for token in list(self._entries)[: max(overflow, 0)]:
            del self._entries[token]
