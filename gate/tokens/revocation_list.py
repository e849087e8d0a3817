"""Revoked access tokens, by ``jti``, in the shared state of every replica.

An entry lives until the token's ``exp`` plus the verifier's clock-skew
leeway, the last moment at which the token could still verify. After that the
verifier rejects the token as expired, so the entry can go.
"""

from __future__ import annotations

import time

from gate.errors import BearerError
from gate.state import SharedState
from gate.tokens.verifier import VerifiedToken

KEY_PREFIX = "revoked:"


def revocation_key(jti: str) -> str:
    return KEY_PREFIX + jti


class RevocationList:
    """Record and look up revoked token ids."""

    def __init__(self, state: SharedState) -> None:
        self.state = state

    async def revoke(self, jti: str, expires_at: float, leeway: int) -> None:
        ttl = max(1.0, expires_at + leeway - time.time())
        await self.state.add_if_absent(revocation_key(jti), ttl)

    async def is_revoked(self, jti: str) -> bool:
        return await self.state.contains(revocation_key(jti))


async def reject_if_revoked(state: SharedState, token: VerifiedToken, own_issuer: str) -> None:
    """Raise ``invalid_token`` (reason ``token_revoked``) if gate revoked ``token``.

    Only gate's own tokens can be revoked at gate's revocation endpoint, so
    tokens of other issuers are not looked up (their ``jti`` values could
    collide with gate's).
    """
    jti = token.claims.get("jti")
    if token.issuer != own_issuer or not isinstance(jti, str):
        return

    # TODO: choose fail-open or fail-closed for SharedStateUnavailableError once a Redis state exists.
    if await RevocationList(state).is_revoked(jti):
        raise BearerError("invalid_token", "The token has been revoked.", reason_id="token_revoked")
