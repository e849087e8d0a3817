"""Revoked access tokens, by ``jti``, in the shared state of every replica.

An entry lives until the token's ``exp`` plus the verifier's clock-skew
leeway, the last moment at which the token could still verify. After that the
verifier rejects the token as expired, so the entry can go.
"""

from __future__ import annotations

import time

from gate.errors import BearerError
from gate.state import SharedState
from gate.state.base import SharedStateUnavailableError
from gate.tokens.verifier import VerifiedToken


class RevocationList:
    """Record and look up revoked token ids in the shared state.

    Lookups read the replica's local copy of the list, with no round trip to
    a shared store. This replica enforces a revocation at once, and the
    others within the backend's documented bound.
    """

    def __init__(self, state: SharedState) -> None:
        self.state = state

    async def revoke(self, jti: str, expires_at: float, leeway: int) -> None:
        await self.state.revoke(jti, max(expires_at + leeway, time.time() + 1.0))

    def is_revoked(self, jti: str) -> bool:
        return self.state.is_revoked(jti)


def reject_if_revoked(state: SharedState, token: VerifiedToken, own_issuer: str) -> None:
    """Raise ``invalid_token`` (reason ``token_revoked``) if gate revoked ``token``.

    Only gate's own tokens can be revoked at gate's revocation endpoint, so
    tokens of other issuers are not looked up (their ``jti`` values could
    collide with gate's). When the shared store's failure policy rejects
    requests because the local copy of the list is too old, the request gets
    503 with reason ``revocations_unavailable``.
    """
    jti = token.claims.get("jti")
    if token.issuer != own_issuer or not isinstance(jti, str):
        return

    try:
        revoked = state.is_revoked(jti)
    except SharedStateUnavailableError:
        raise BearerError(
            "temporarily_unavailable",
            "Revocations cannot be checked right now; retry later.",
            reason_id="revocations_unavailable",
            status=503,
        ) from None

    if revoked:
        raise BearerError("invalid_token", "The token has been revoked.", reason_id="token_revoked")
