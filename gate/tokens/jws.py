"""Signature verification of JWTs from any trusted issuer.

The steps: read the header, refuse ``alg: none`` in every spelling and any
``crit`` extension, find the issuer by the exact ``iss``, check the algorithm
against that issuer's allow-list, then verify the signature with the issuer's
key for the ``kid``. Header members that carry or point to keys (``jwk``,
``jku``, ``x5u``, ``x5c``) are never read. PyJWT errors become
``TokenRejected`` here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt

from gate.keys.issuers import KeyLookupError, TrustedIssuer
from gate.keys.jwk import TrustedKey
from gate.tokens.claims import TokenRejected

MAX_TOKEN_LENGTH = 16 * 1024

_SIGNATURE_ONLY = {
    "verify_signature": True,
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_aud": False,
    "verify_iss": False,
    "verify_sub": False,
    "verify_jti": False,
}


@dataclass(frozen=True)
class SignedToken:
    """A JWT whose signature verified with a key of the issuer it names."""

    header: dict[str, Any]
    claims: dict[str, Any]
    issuer: TrustedIssuer
    key: TrustedKey


def read_header(token: str) -> dict[str, Any]:
    """Return the JOSE header of ``token`` after the checks that need no key."""
    if len(token) > MAX_TOKEN_LENGTH:
        raise TokenRejected("token_too_long", "The token is too long.")

    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        # PyJWT raises DecodeError for bad encoding and other InvalidTokenError
        # subclasses for headers it dislikes (a non-string kid, a bad crit).
        raise TokenRejected("malformed_token", "The token is not a well-formed JWT.") from None

    algorithm = header.get("alg")
    if not isinstance(algorithm, str):
        raise TokenRejected("malformed_token", "The token header has no algorithm.")
    if algorithm.lower() == "none":
        raise TokenRejected("alg_none", "Unsigned tokens (alg none) are not accepted.")
    if "crit" in header:
        raise TokenRejected("unsupported_header", "The token header lists critical extensions gate does not support.")

    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise TokenRejected("malformed_token", "The token header's kid is not a string.")
    return header


def unverified_issuer(token: str) -> str:
    """Return the ``iss`` claim before verification, only to pick the issuer's keys."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        raise TokenRejected("malformed_token", "The token is not a well-formed JWT.") from None

    issuer = claims.get("iss")
    if not isinstance(issuer, str):
        raise TokenRejected("missing_claim", "The token has no 'iss' claim.")
    return issuer


def check_type(header: dict[str, Any], expected: str | None) -> None:
    """Check ``typ`` ignoring case and an ``application/`` prefix (RFC 7515 section 4.1.9)."""
    if expected is None:
        return

    token_type = header.get("typ")
    if not isinstance(token_type, str) or token_type.lower().removeprefix("application/") != expected.lower():
        raise TokenRejected("wrong_token_type", f"The token's type (typ) must be {expected}.")


async def verify_signature(
    token: str, find_issuer: Callable[[str], TrustedIssuer | None], *, header: dict[str, Any] | None = None
) -> SignedToken:
    """Verify ``token``'s signature with a key of the issuer it names; claims are checked by the caller."""
    header = header if header is not None else read_header(token)
    issuer = find_issuer(unverified_issuer(token))
    if issuer is None:
        raise TokenRejected("issuer_mismatch", "The token was issued by an issuer gate does not trust.")

    algorithm = header["alg"]
    if algorithm not in issuer.policy.algorithms:
        raise TokenRejected("algorithm_not_allowed", f"The algorithm {algorithm} is not allowed for this issuer.")
    check_type(header, issuer.policy.token_type)

    try:
        keys = await issuer.keys_for(header.get("kid"), algorithm)
    except KeyLookupError as error:
        raise TokenRejected(error.reason_id, error.description) from None

    for key in keys:
        claims = _decode(token, key, algorithm)
        if claims is not None:
            return SignedToken(header=header, claims=claims, issuer=issuer, key=key)
    raise TokenRejected("bad_signature", "The token signature is invalid.")


def _decode(token: str, key: TrustedKey, algorithm: str) -> dict[str, Any] | None:
    try:
        return jwt.decode(token, key.key, algorithms=[algorithm], options=_SIGNATURE_ONLY)  # type: ignore[arg-type]
    except jwt.InvalidSignatureError:
        return None
    except jwt.InvalidTokenError:
        raise TokenRejected("invalid_token", "The token is invalid.") from None
