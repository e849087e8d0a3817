"""Signed access tokens in the JWT profile of RFC 9068."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt

from gate.keys.signing import Keyring

ACCESS_TOKEN_TYPE = "at+jwt"


@dataclass(frozen=True)
class IssuedToken:
    """An access token and what the token response reports about it."""

    access_token: str
    expires_in: int
    scope: tuple[str, ...]
    jti: str
    subject: str


class TokenIssuer:
    """Sign RFC 9068 access tokens with the keyring's active key."""

    def __init__(self, issuer: str, keyring: Keyring) -> None:
        self.issuer = issuer
        self.keyring = keyring

    def issue(
        self,
        *,
        subject: str,
        client_id: str,
        audience: tuple[str, ...],
        scope: tuple[str, ...],
        lifetime: int,
        extra_claims: dict[str, Any] | None = None,
    ) -> IssuedToken:
        """Sign a token for ``subject`` that expires in ``lifetime`` seconds."""
        now = int(time.time())
        jti = secrets.token_urlsafe(16)
        claims: dict[str, Any] = {
            **(extra_claims or {}),
            "iss": self.issuer,
            "sub": subject,
            "aud": audience[0] if len(audience) == 1 else list(audience),
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "jti": jti,
            "client_id": client_id,
        }
        if scope:
            claims["scope"] = " ".join(scope)

        key = self.keyring.active
        headers = {"typ": ACCESS_TOKEN_TYPE, "kid": key.kid}
        token = jwt.encode(claims, key.private_key, algorithm=key.algorithm, headers=headers)
        return IssuedToken(access_token=token, expires_in=lifetime, scope=scope, jti=jti, subject=subject)
