"""Bearer-token checks for any ASGI app: the proxy's authenticate and authorize steps in-process.

``BearerAuthMiddleware`` is pure ASGI, so streamed bodies and lifespan events
pass through untouched. For each HTTP request and WebSocket handshake it
verifies the bearer token and checks the ``Requirements``. It then calls the
app with two scope keys:

- ``scope["auth"]``: Starlette ``AuthCredentials`` with the token's scopes, and ``token``;
- ``scope["user"]``: a ``TokenUser``, or Starlette's ``UnauthenticatedUser`` when
  an optional check passes a request without a token.

A request that fails gets the RFC 6750 response the proxy sends, and never
reaches the app.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from starlette.authentication import AuthCredentials, BaseUser, UnauthenticatedUser
from starlette.types import ASGIApp, Receive, Scope, Send

from gate.errors import BearerError
from gate.proxy.authorize import RequestFacts, Requirements, authorize, token_scopes
from gate.proxy.bearer import challenge, error_body
from gate.proxy.pipeline import Decision, Verifier, authenticate
from gate.proxy.replies import json_response_parts
from gate.proxy.routes import request_host
from gate.proxy.websocket import deny_websocket
from gate.tokens.verifier import VerifiedToken


class TokenUser(BaseUser):
    """The caller named by a verified token's ``sub`` claim."""

    def __init__(self, token: VerifiedToken) -> None:
        self.token = token

    @property
    def claims(self) -> dict[str, Any]:
        return self.token.claims

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.token.subject or ""

    @property
    def identity(self) -> str:
        return self.token.subject or ""


class TokenAuth(AuthCredentials):
    """Starlette credentials with the token's scopes, so ``starlette.authentication.requires`` works."""

    def __init__(self, token: VerifiedToken | None) -> None:
        super().__init__(sorted(token_scopes(token)) if token is not None else [])
        self.token = token


class BearerAuthMiddleware:
    """Let requests reach ``app`` only with a bearer token that meets ``requirements``.

    ``verifier`` is anything with ``async verify(token) -> VerifiedToken``, such
    as the ``TokenVerifier`` of a loaded gate config. Paths in ``exclude_paths``
    (exact matches, such as a health check) pass without any check.
    """

    def __init__(
        self, app: ASGIApp, *, verifier: Verifier, requirements: Requirements, exclude_paths: Iterable[str] = ()
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.requirements = requirements
        self.exclude_paths = frozenset(exclude_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in self.exclude_paths:
            await self.app(scope, receive, send)
            return

        try:
            token = await self._check(scope)
        except BearerError as error:
            await self._reject(scope, send, error)
            return

        user: BaseUser = TokenUser(token) if token is not None else UnauthenticatedUser()
        await self.app({**scope, "auth": TokenAuth(token), "user": user}, receive, send)

    async def _check(self, scope: Scope) -> VerifiedToken | None:
        headers = scope["headers"]
        token = await authenticate(self.verifier, self.requirements.mode, headers)
        if token is None:
            return None

        hosts = [value for name, value in headers if name == b"host"]
        facts = RequestFacts(
            scope.get("method", "GET"), scope["path"], request_host(hosts[0] if hosts else None), headers
        )
        authorize(self.requirements, token, facts)
        return token

    async def _reject(self, scope: Scope, send: Send, error: BearerError) -> None:
        if scope["type"] == "websocket":
            await deny_websocket(scope, send, Decision(False, error.reason_id, error.status, error=error))
            return

        start, body = json_response_parts(
            error.status, error_body(error), [(b"www-authenticate", challenge(error).encode())]
        )
        await send(start)
        await send(body)
