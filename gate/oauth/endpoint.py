"""The token endpoint: find the grant, authenticate the client, issue the token.

RFC 6749 sections 4.4 and 5. ``grant_type=password`` is handled exactly like
``client_credentials``. The credential forms are the methods of
``gate.oauth.client_auth``; which of them a client accepts is configured per
client.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gate import metrics
from gate.config.snapshot import Client, Snapshot, SnapshotHolder
from gate.oauth.client_auth import AuthContext, Authenticated
from gate.oauth.client_auth.jwt_assertion import JwtAssertionAuth
from gate.oauth.decision import Decision, require_post
from gate.oauth.endpoint_base import OAuthEndpoint
from gate.oauth.form import invalid_request
from gate.oauth.grants import check_grant_allowed, grant_type_of, granted_scope
from gate.oauth.request import TokenRequest, read_token_request
from gate.oauth.responses import json_response
from gate.state import SharedState


class TokenEndpoint(OAuthEndpoint):
    """Starlette endpoint for ``POST {token_path}``."""

    event = "token_decision"

    def __init__(self, holder: SnapshotHolder, state: SharedState) -> None:
        super().__init__(holder, state)
        self.jwt_assertion = JwtAssertionAuth()

    async def handle(self, request: Request, snapshot: Snapshot, decision: Decision) -> Response:
        require_post(request)
        token_request = await read_token_request(request)
        grant_type = grant_type_of(token_request)

        endpoint_url = snapshot.config.issuer.rstrip("/") + snapshot.config.token_path
        context = AuthContext(snapshot, self.state, endpoint_url, grant_type)
        if self.jwt_assertion.applies(token_request.form):
            client, authenticated = await self._authenticate_assertion(token_request, snapshot, decision)
        else:
            client, authenticated = await self.authenticator.authenticate(token_request, context, decision)

        check_grant_allowed(client, grant_type)
        scope = granted_scope(client, token_request)

        issued = snapshot.issuer.issue(
            subject=authenticated.subject,
            client_id=client.client_id,
            audience=client.audience,
            scope=scope,
            lifetime=client.token_lifetime,
            extra_claims=dict(authenticated.extra_claims),
        )
        decision.grant(f"granted_{grant_type}")

        body: dict[str, str | int] = {
            "access_token": issued.access_token,
            "token_type": "Bearer",
            "expires_in": issued.expires_in,
        }
        if issued.scope:
            body["scope"] = " ".join(issued.scope)
        return json_response(body)

    def observe(self, decision: Decision) -> None:
        metrics.observe_token_request(
            decision.client_id, decision.form or "none", decision.granted, decision.reason_id, decision.started
        )

    async def _authenticate_assertion(
        self, request: TokenRequest, snapshot: Snapshot, decision: Decision
    ) -> tuple[Client, Authenticated]:
        """Authenticate a client by its JWT assertion (RFC 7523), the one form judged outside ``METHODS``.

        An assertion is a signature, not a guessable secret, so its failures
        are not counted by the failed-authentication rate limit.
        """
        if request.basic is not None:
            raise invalid_request(
                "The request carries credentials in more than one place (basic, client_assertion); send one.",
                "several_credentials",
            )

        decision.form = "jwt_assertion"
        identity = await self.jwt_assertion.authenticate(snapshot, request.form, self.state)
        decision.form = identity.kind
        decision.client_id = identity.client.client_id
        decision.subject = identity.subject
        return identity.client, Authenticated(subject=identity.subject, form=identity.kind)
