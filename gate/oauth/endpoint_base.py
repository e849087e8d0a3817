"""The shared frame of gate's OAuth endpoints: token, introspection and revocation."""

from __future__ import annotations

from typing import ClassVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gate.config.snapshot import Client, Snapshot, SnapshotHolder
from gate.errors import OAuthError
from gate.oauth.client_auth import AuthContext, ClientAuthenticator
from gate.oauth.decision import Decision, require_post
from gate.oauth.request import TokenRequest, read_token_request
from gate.oauth.responses import error_response
from gate.state import SharedState


class OAuthEndpoint:
    """A Starlette endpoint of gate's OAuth server: one decision line per request, errors as RFC 6749 JSON.

    Subclasses set ``event`` and implement ``handle``; an ``OAuthError`` it
    raises becomes the error response, and ``observe`` runs after the line is
    logged.
    """

    event: ClassVar[str]

    def __init__(self, holder: SnapshotHolder, state: SharedState) -> None:
        self.holder = holder
        self.state = state
        self.authenticator = ClientAuthenticator(state)

    async def asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one HTTP request as an ASGI app.

        Starlette's ``request_response`` wraps each call in its exception
        handler layer (two closures and a wrapped ``send``), which does
        nothing here: gate's app registers no exception handlers, and this
        method renders every ``OAuthError`` itself.
        """
        response = await self(Request(scope, receive, send))
        await response(scope, receive, send)

    async def __call__(self, request: Request) -> Response:
        snapshot = self.holder.current
        decision = Decision(self.event, request)

        try:
            response = await self.handle(request, snapshot, decision)
        except OAuthError as error:
            decision.deny(error)
            response = error_response(error)

        decision.log()
        self.observe(decision)
        return response

    async def authenticate_form(
        self, request: Request, snapshot: Snapshot, decision: Decision, path: str
    ) -> tuple[Client, TokenRequest]:
        """Read the POSTed form of an endpoint at ``path`` and authenticate its client as the token endpoint does.

        Introspection (RFC 7662 section 2.1) and revocation (RFC 7009 section
        2.1) authenticate their callers this way.
        """
        require_post(request)
        form_request = await read_token_request(request)

        endpoint_url = snapshot.config.issuer.rstrip("/") + path
        context = AuthContext(snapshot, self.state, endpoint_url, None)
        client, _ = await self.authenticator.authenticate(form_request, context, decision)
        return client, form_request

    async def handle(self, request: Request, snapshot: Snapshot, decision: Decision) -> Response:
        raise NotImplementedError

    def observe(self, decision: Decision) -> None:
        """Record ``decision`` beyond the log line; nothing by default."""
