"""Checks of a JWT's registered claims, one small function per claim (RFC 7519 section 4.1).

Each check raises ``TokenRejected`` whose ``reason_id`` names the claim, so
the caller can render it as an RFC 6750 or an RFC 6749 error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from gate.keys.issuers import IssuerPolicy


class TokenRejected(Exception):
    """A JWT that failed a check; ``description`` is safe to send to the client."""

    def __init__(self, reason_id: str, description: str) -> None:
        self.reason_id = reason_id
        self.description = description
        super().__init__(description)


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenRejected("malformed_claim", f"The '{name}' claim is not a number.")

    # JSON parsers accept NaN, Infinity and integers beyond any float; NaN would
    # make every comparison false and so pass every time check.
    try:
        number = float(value)
    except OverflowError:
        raise TokenRejected("malformed_claim", f"The '{name}' claim is out of range.") from None
    if not math.isfinite(number):
        raise TokenRejected("malformed_claim", f"The '{name}' claim is not a finite number.")
    return number


def check_exp(claims: Mapping[str, Any], now: float, leeway: float) -> float:
    """Require ``exp`` and that it lies after ``now - leeway``; return it."""
    exp = _number(claims, "exp")
    if exp is None:
        raise TokenRejected("missing_claim", "The token has no 'exp' claim.")
    if exp <= now - leeway:
        raise TokenRejected("token_expired", "The token has expired.")
    return exp


def check_nbf(claims: Mapping[str, Any], now: float, leeway: float) -> None:
    nbf = _number(claims, "nbf")
    if nbf is not None and nbf > now + leeway:
        raise TokenRejected("token_not_yet_valid", "The token is not valid yet.")


def check_iat(claims: Mapping[str, Any], now: float, leeway: float) -> None:
    iat = _number(claims, "iat")
    if iat is not None and iat > now + leeway:
        raise TokenRejected("issued_in_future", "The token's 'iat' lies in the future.")


def check_lifetime(claims: Mapping[str, Any], exp: float, now: float, max_lifetime: float | None) -> None:
    """Reject a token valid for longer than ``max_lifetime``, counted from ``iat`` (or now)."""
    if max_lifetime is None:
        return

    iat = _number(claims, "iat")
    start = iat if iat is not None else now
    if exp - start > max_lifetime:
        raise TokenRejected("lifetime_too_long", f"The token is valid for longer than {int(max_lifetime)} seconds.")


def token_audiences(claims: Mapping[str, Any]) -> frozenset[str]:
    audience = claims.get("aud")
    if isinstance(audience, str):
        return frozenset((audience,))
    if isinstance(audience, list):
        return frozenset(value for value in audience if isinstance(value, str))
    return frozenset()


def check_aud(claims: Mapping[str, Any], expected: tuple[str, ...], match: str) -> None:
    """Check ``aud`` against the expected audiences: any one of them, or all of them."""
    if not expected:
        return

    present = token_audiences(claims)
    accepted = present.issuperset(expected) if match == "all" else not present.isdisjoint(expected)
    if not accepted:
        raise TokenRejected("audience_mismatch", "The token is not meant for this audience.")


def check_required(claims: Mapping[str, Any], required: tuple[str, ...]) -> None:
    for name in required:
        if name not in claims:
            raise TokenRejected("missing_claim", f"The token has no '{name}' claim.")


def check_sub(claims: Mapping[str, Any]) -> None:
    if "sub" in claims and not isinstance(claims["sub"], str):
        raise TokenRejected("malformed_claim", "The 'sub' claim is not a string.")


def check_claims(claims: Mapping[str, Any], policy: IssuerPolicy, now: float, *, exp_leeway: float) -> float:
    """Run every registered-claim check of ``policy``; return ``exp``.

    ``exp_leeway`` is separate from the policy's leeway because assertions
    require ``exp`` strictly in the future while bearer tokens allow skew.
    """
    exp = check_exp(claims, now, exp_leeway)
    check_nbf(claims, now, policy.leeway)
    check_iat(claims, now, policy.leeway)
    check_lifetime(claims, exp, now, policy.max_token_lifetime)
    check_required(claims, policy.required_claims)
    check_sub(claims)
    check_aud(claims, policy.audiences, policy.audience_match)
    return exp
