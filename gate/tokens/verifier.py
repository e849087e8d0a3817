"""Verification of bearer JWTs from gate itself and from every trusted issuer.

gate's own keyring is one trusted issuer among the others. The verifier
checks the signature with a key of the issuer the token names, then that
issuer's claim policy (time claims, lifetime, required claims, audiences,
``typ``). Per-route requirements are checked later, by the authorize step.
``TokenRejected`` becomes ``BearerError`` here and nowhere else.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gate import metrics
from gate.errors import BearerError, KeysUnavailableError
from gate.keys.issuers import KeyStore, TrustedIssuer
from gate.tokens.cache import VerifiedTokenCache
from gate.tokens.claims import TokenRejected, check_claims
from gate.tokens.jws import verify_signature

# Kept for callers that imported it from here.
MAX_TOKEN_LENGTH = 16 * 1024


_CACHE_HITS = metrics.verified_token_cache.labels("hit")
_CACHE_MISSES = metrics.verified_token_cache.labels("miss")


@dataclass(frozen=True)
class VerifiedToken:
    """The claims of a token whose signature and issuer policy passed."""

    claims: dict[str, Any]
    issuer: str
    kid: str | None
    expires_at: float
    # Requirements whose token-only checks this token passed, by id; see gate.proxy.authorize.authorize.
    passed: dict[int, object] = field(default_factory=dict, compare=False, repr=False)

    @property
    def subject(self) -> str | None:
        value = self.claims.get("sub")
        return value if isinstance(value, str) else None


def invalid_token(description: str, reason_id: str) -> BearerError:
    return BearerError("invalid_token", description, reason_id=reason_id)


def bearer_error(rejection: TokenRejected) -> BearerError:
    """Translate a rejection into RFC 6750 ``invalid_token``, or ``KeysUnavailableError``."""
    if rejection.reason_id == "keys_unavailable":
        return KeysUnavailableError(rejection.description)
    return invalid_token(rejection.description, rejection.reason_id)


class TokenVerifier:
    """Verify bearer tokens of gate's own issuer and of the trusted issuers.

    Verified tokens are cached until their ``exp`` (see ``VerifiedTokenCache``).
    ``forget_jti``, ``forget_issuer`` and ``clear`` drop cached tokens on
    revocation or reload.
    """

    def __init__(self, own: TrustedIssuer, trusted: KeyStore | None = None, *, cache_size: int) -> None:
        self.own = own
        self.issuers: Mapping[str, TrustedIssuer] = {
            **(trusted.issuers if trusted is not None else {}),
            own.issuer: own,
        }
        self.cache = VerifiedTokenCache(cache_size)

    @property
    def issuer(self) -> str:
        return self.own.issuer

    def cached(self, token: str) -> VerifiedToken | None:
        """Return the verified claims of ``token`` from the cache, or ``None`` when ``verify`` must run."""
        cached = self.cache.get(token)
        if cached is not None:
            _CACHE_HITS.inc()
        return cached

    async def verify(self, token: str) -> VerifiedToken:
        """Return the verified claims of ``token`` or raise ``BearerError``.

        A coroutine because a token with an unknown kid can need a key set fetch.
        """
        cached = self.cache.get(token)
        if cached is not None:
            _CACHE_HITS.inc()
            return cached
        _CACHE_MISSES.inc()

        try:
            signed = await verify_signature(token, self.issuers.get)
            exp = check_claims(signed.claims, signed.issuer.policy, time.time(), exp_leeway=signed.issuer.policy.leeway)
        except TokenRejected as rejection:
            raise bearer_error(rejection) from None

        verified = VerifiedToken(
            claims=signed.claims, issuer=signed.issuer.issuer, kid=signed.header.get("kid"), expires_at=exp
        )
        self.cache.put(token, verified, signed.key)
        return verified

    def forget_jti(self, issuer: str, jti: str) -> int:
        """Drop cached tokens of ``issuer`` with ``jti``, for example after a revocation."""
        return self.cache.forget_jti(issuer, jti)

    def forget_issuer(self, issuer: str) -> int:
        return self.cache.forget_issuer(issuer)

    def clear(self) -> None:
        self.cache.clear()
