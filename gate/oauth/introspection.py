"""Token introspection (RFC 7662) for clients allowed to introspect.

The caller authenticates as at the token endpoint. Only gate's own access
tokens can be active: a token that fails verification, has expired, was
revoked or was issued by someone else is ``{"active": false}`` and nothing
more, as RFC 7662 section 2.2 requires.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gate.config.snapshot import Snapshot, SnapshotHolder
from gate.errors import BearerError, OAuthError
from gate.oauth.decision import Decision
from gate.oauth.endpoint_base import OAuthEndpoint
from gate.oauth.form import invalid_request
from gate.oauth.request import TokenRequest
from gate.oauth.responses import json_response
from gate.state import SharedState
from gate.tokens.revocation_list import RevocationList

# The claims RFC 7662 section 2.2 names that gate's tokens carry.
_REPORTED_CLAIMS = ("scope", "client_id", "exp", "iat", "nbf", "sub", "aud", "iss", "jti")


class IntrospectionEndpoint(OAuthEndpoint):
    """Starlette endpoint for ``POST {introspection_path}``."""

    event = "introspection_decision"

    def __init__(self, holder: SnapshotHolder, state: SharedState) -> None:
        super().__init__(holder, state)
        self.revocations = RevocationList(state)

    async def handle(self, request: Request, snapshot: Snapshot, decision: Decision) -> Response:
        path = snapshot.config.token_endpoint.introspection_path
        client, introspection_request = await self.authenticate_form(request, snapshot, decision, path)
        if not client.introspection:
            raise OAuthError(
                "unauthorized_client", "This client may not introspect tokens.", reason_id="introspection_not_allowed"
            )

        claims = await self._active_claims(snapshot, introspection_request)
        decision.grant("token_active" if claims else "token_inactive")

        if claims is None:
            return json_response({"active": False})
        return json_response({"active": True, "token_type": "Bearer", **claims})

    async def _active_claims(self, snapshot: Snapshot, request: TokenRequest) -> dict[str, Any] | None:
        token = request.form.get("token")
        if not token:
            raise invalid_request("The 'token' parameter is missing.", "missing_token")

        try:
            verified = await snapshot.verifier.verify(token)
        except BearerError:
            return None

        jti = verified.claims.get("jti")
        if verified.issuer != snapshot.config.issuer or not isinstance(jti, str):
            return None
        if self.revocations.is_revoked(jti):
            return None

        return {name: verified.claims[name] for name in _REPORTED_CLAIMS if name in verified.claims}
