"""Token revocation (RFC 7009) for authenticated clients.

The caller authenticates as at the token endpoint. A client with
``revocation: own`` (the default) may revoke only tokens issued to it, one
with ``any`` every token gate issued, one with ``none`` nothing. As RFC 7009
section 2.2 requires, a token that is invalid, expired or not gate's gets 200
and changes nothing. gate issues access tokens only, so it ignores
``token_type_hint``, which RFC 7009 section 2.1 allows. A revoked token's ``jti``
is recorded in the shared state, where gate's proxy looks it up.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gate.config.snapshot import Client, Snapshot, SnapshotHolder
from gate.errors import BearerError, OAuthError
from gate.oauth.decision import Decision
from gate.oauth.endpoint_base import OAuthEndpoint
from gate.oauth.form import invalid_request
from gate.oauth.responses import json_response
from gate.state import SharedState
from gate.state.base import SharedStateUnavailableError
from gate.tokens.revocation_list import RevocationList


class RevocationEndpoint(OAuthEndpoint):
    """Starlette endpoint for ``POST {revocation_path}``."""

    event = "revocation_decision"

    def __init__(self, holder: SnapshotHolder, state: SharedState) -> None:
        super().__init__(holder, state)
        self.revocations = RevocationList(state)

    async def handle(self, request: Request, snapshot: Snapshot, decision: Decision) -> Response:
        path = snapshot.config.token_endpoint.revocation_path
        client, revocation_request = await self.authenticate_form(request, snapshot, decision, path)
        if client.revocation == "none":
            raise _unauthorized("This client may not revoke tokens.", "revocation_not_allowed")

        token = revocation_request.form.get("token")
        if not token:
            raise invalid_request("The 'token' parameter is missing.", "missing_token")

        decision.grant(await self._revoke(snapshot, client, token))
        return json_response({})

    async def _revoke(self, snapshot: Snapshot, client: Client, token: str) -> str:
        """Revoke ``token`` if it is gate's and ``client`` may revoke it; return the reason id for the log."""
        try:
            verified = await snapshot.verifier.verify(token)
        except BearerError:
            return "token_invalid"

        jti = verified.claims.get("jti")
        if verified.issuer != snapshot.config.issuer or not isinstance(jti, str):
            return "token_not_gates"

        if client.revocation == "own" and verified.claims.get("client_id") != client.client_id:
            raise _unauthorized("This client may revoke only tokens issued to it.", "token_of_other_client")

        try:
            await self.revocations.revoke(jti, verified.expires_at, snapshot.config.tokens.leeway)
        except SharedStateUnavailableError:
            # This replica enforces the revocation already; the others may not
            # learn of it, so the client is told to retry (RFC 7009 section 2.2.1).
            raise OAuthError(
                "temporarily_unavailable",
                "The revocation could not be shared with every replica; retry later.",
                reason_id="revocation_store_unavailable",
                status=503,
            ) from None
        return "token_revoked"


def _unauthorized(description: str, reason_id: str) -> OAuthError:
    return OAuthError("unauthorized_client", description, reason_id=reason_id)
