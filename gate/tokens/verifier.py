"""Verification of bearer JWTs: signature, issuer, type and time claims.

Audiences, scopes and other per-route requirements are checked later, by the
authorize step, on the claims returned here. PyJWT errors are translated into
``BearerError`` in this module and nowhere else.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import jwt
from cachetools import TLRUCache

from gate.errors import BearerError
from gate.keys.signing import Keyring, PublicKey
from gate.tokens.issuer import ACCESS_TOKEN_TYPE

logger = logging.getLogger(__name__)

ACCEPTED_TYPES = frozenset({ACCESS_TOKEN_TYPE, "application/at+jwt"})
MAX_TOKEN_LENGTH = 16 * 1024


@dataclass(frozen=True)
class VerifiedToken:
    """The claims of a token whose signature and time claims passed."""

    claims: dict[str, Any]
    issuer: str
    kid: str
    expires_at: float

    @property
    def subject(self) -> str | None:
        value = self.claims.get("sub")
        return value if isinstance(value, str) else None


def invalid_token(description: str, reason_id: str) -> BearerError:
    return BearerError("invalid_token", description, reason_id=reason_id)


def _expiry_of(_token: str, verified: VerifiedToken, _now: float) -> float:
    return verified.expires_at


class TokenVerifier:
    """Verify access tokens signed by gate's own keyring.

    Verified tokens are cached until their ``exp``, in a cache bounded to
    ``cache_size`` entries, so that a repeated token costs no signature check.
    A cached token is still rejected once its key has left the keyring.
    """

    def __init__(self, issuer: str, keyring: Keyring, *, leeway: int, cache_size: int) -> None:
        self.issuer = issuer
        self.keyring = keyring
        self.leeway = leeway
        self.cache: TLRUCache[str, VerifiedToken] | None = (
            TLRUCache(maxsize=cache_size, ttu=_expiry_of, timer=time.time) if cache_size else None
        )

    async def verify(self, token: str) -> VerifiedToken:
        """Return the verified claims of ``token`` or raise ``BearerError``.

        A coroutine because verifying a token of a trusted issuer can need a
        key set fetch; gate's own keys are always at hand.
        """
        cached = self.cache.get(token) if self.cache is not None else None
        if cached is not None and cached.kid in self.keyring.keys:
            return cached

        verified = self._verify_uncached(token)

        if self.cache is not None:
            self.cache[token] = verified
        return verified

    def _verify_uncached(self, token: str) -> VerifiedToken:
        if len(token) > MAX_TOKEN_LENGTH:
            raise invalid_token("The token is too long.", "token_too_long")

        header = self._read_header(token)
        key, algorithm = self._select_key(header)

        claims = self._decode(token, key, algorithm)
        return VerifiedToken(claims=claims, issuer=self.issuer, kid=header["kid"], expires_at=float(claims["exp"]))

    def _read_header(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise invalid_token("The token is not a well-formed JWT.", "malformed_token") from None

        token_type = header.get("typ")
        if not isinstance(token_type, str) or token_type.lower() not in ACCEPTED_TYPES:
            raise invalid_token("The token is not an access token (typ must be at+jwt).", "wrong_token_type")

        if not isinstance(header.get("kid"), str):
            raise invalid_token("The token header has no key id (kid).", "missing_kid")
        return header

    def _select_key(self, header: dict[str, Any]) -> tuple[PublicKey, str]:
        found = self.keyring.public_key(header["kid"])
        if found is None:
            raise invalid_token("The token was signed with an unknown key.", "unknown_kid")

        key, algorithm = found
        if header.get("alg") != algorithm:
            raise invalid_token("The token's algorithm does not match its key.", "algorithm_mismatch")
        return key, algorithm

    def _decode(self, token: str, key: PublicKey, algorithm: str) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iat", "iss", "sub"], "verify_aud": False},
            )
        except jwt.ExpiredSignatureError:
            raise invalid_token("The token has expired.", "token_expired") from None
        except jwt.ImmatureSignatureError:
            raise invalid_token("The token is not valid yet.", "token_not_yet_valid") from None
        except jwt.InvalidIssuerError:
            raise invalid_token(
                "The token was issued by an issuer this route does not trust.", "issuer_mismatch"
            ) from None
        except jwt.MissingRequiredClaimError as error:
            raise invalid_token(f"The token has no '{error.claim}' claim.", "missing_claim") from None
        except jwt.InvalidSignatureError:
            raise invalid_token("The token signature is invalid.", "bad_signature") from None
        except jwt.InvalidTokenError:
            raise invalid_token("The token is invalid.", "invalid_token") from None
