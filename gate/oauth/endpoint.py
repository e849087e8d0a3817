"""The token endpoint: credentials in, a signed access token out.

``grant_type=password`` is handled exactly like ``client_credentials``, for
clients that can only send a password grant. The credential form accepted here
is a service account's username and app token, sent with the ``client_id`` of a
client that this service account may use.
"""

from __future__ import annotations

import logging
import time

from starlette.requests import Request
from starlette.responses import Response

from gate.config.snapshot import Client, Snapshot, SnapshotHolder
from gate.errors import OAuthError
from gate.oauth.app_tokens import app_token_matches
from gate.oauth.client_auth.jwt_assertion import JwtAssertionAuth
from gate.oauth.form import invalid_request, read_form
from gate.oauth.responses import error_response, json_response
from gate.state import SharedState

logger = logging.getLogger(__name__)

SUPPORTED_GRANT_TYPES = ("client_credentials", "password")
MAX_PARAMETER_LENGTH = 4096


class TokenEndpoint:
    """Starlette endpoint for ``POST {token_path}``."""

    def __init__(self, holder: SnapshotHolder, state: SharedState) -> None:
        self.holder = holder
        self.state = state
        self.jwt_assertion = JwtAssertionAuth()

    async def __call__(self, request: Request) -> Response:
        snapshot = self.holder.current
        started = time.perf_counter()
        outcome = _Outcome()

        try:
            response = await self._handle(request, snapshot, outcome)
        except OAuthError as error:
            outcome.reason_id = error.reason_id
            outcome.status = error.status
            response = error_response(error)

        _log_decision(request, outcome, started)
        return response

    async def _handle(self, request: Request, snapshot: Snapshot, outcome: _Outcome) -> Response:
        if request.method != "POST":
            raise OAuthError(
                "invalid_request", "The token endpoint accepts POST only.", reason_id="method_not_allowed", status=405
            )

        form = await read_form(request)
        _check_lengths(form)
        grant_type = _grant_type(form)

        if self.jwt_assertion.applies(form):
            outcome.form = "jwt_assertion"
            identity = await self.jwt_assertion.authenticate(snapshot, form, self.state)
            client, subject = identity.client, identity.subject
            outcome.form, outcome.client_id, outcome.subject = identity.kind, client.client_id, subject
        else:
            client = _find_client(snapshot, form, outcome)
            subject = _authenticate_service_account(snapshot, client, form, outcome)
        scope = _granted_scope(client, form)

        issued = snapshot.issuer.issue(
            subject=subject,
            client_id=client.client_id,
            audience=client.audience,
            scope=scope,
            lifetime=client.token_lifetime,
        )
        outcome.granted = True
        outcome.status = 200
        outcome.reason_id = f"granted_{grant_type}"

        body: dict[str, str | int] = {
            "access_token": issued.access_token,
            "token_type": "Bearer",
            "expires_in": issued.expires_in,
        }
        if issued.scope:
            body["scope"] = " ".join(issued.scope)
        return json_response(body)


class _Outcome:
    """What the decision log line reports about one token request."""

    def __init__(self) -> None:
        self.client_id: str | None = None
        self.subject: str | None = None
        self.form = "service_account"
        self.granted = False
        self.reason_id = "unknown"
        self.status = 500


def _check_lengths(form: dict[str, str]) -> None:
    for name, value in form.items():
        if len(value) > MAX_PARAMETER_LENGTH:
            raise invalid_request(f"The parameter '{name}' is too long.", "parameter_too_long")


def _grant_type(form: dict[str, str]) -> str:
    grant_type = form.get("grant_type")
    if not grant_type:
        raise invalid_request("The 'grant_type' parameter is missing.", "missing_grant_type")

    if grant_type not in SUPPORTED_GRANT_TYPES:
        raise OAuthError(
            "unsupported_grant_type",
            "Supported grant types are client_credentials and password.",
            reason_id="unsupported_grant_type",
        )
    return grant_type


def _find_client(snapshot: Snapshot, form: dict[str, str], outcome: _Outcome) -> Client:
    client_id = form.get("client_id")
    if not client_id:
        raise invalid_request("The 'client_id' parameter is missing.", "missing_client_id")

    client = snapshot.clients.get(client_id)
    if client is None:
        raise OAuthError("invalid_client", "Client authentication failed.", reason_id="unknown_client", status=401)

    outcome.client_id = client_id
    return client


def _authenticate_service_account(snapshot: Snapshot, client: Client, form: dict[str, str], outcome: _Outcome) -> str:
    username = form.get("username")
    password = form.get("password")
    if not username or not password:
        raise invalid_request("The 'username' and 'password' parameters are required.", "missing_credentials")

    hashes = snapshot.service_accounts.get(username)
    if not app_token_matches(password, hashes):
        raise OAuthError("invalid_grant", "The service account credentials are invalid.", reason_id="bad_app_token")

    if username not in client.service_accounts:
        raise OAuthError(
            "unauthorized_client",
            "This service account may not use this client.",
            reason_id="service_account_not_allowed",
        )

    outcome.subject = username
    return username


def _granted_scope(client: Client, form: dict[str, str]) -> tuple[str, ...]:
    requested = form.get("scope")
    if requested is None:
        return tuple(sorted(client.scopes))

    scopes = tuple(dict.fromkeys(requested.split()))
    unknown = [scope for scope in scopes if scope not in client.scopes]
    if unknown:
        raise OAuthError(
            "invalid_scope", "The requested scope is not allowed for this client.", reason_id="scope_not_allowed"
        )
    return scopes


def _log_decision(request: Request, outcome: _Outcome, started: float) -> None:
    level = logging.INFO if outcome.granted else logging.WARNING
    logger.log(
        level,
        "token request %s",
        "granted" if outcome.granted else "denied",
        extra={
            "event": "token_decision",
            "request_id": request.headers.get("x-request-id"),
            "client_id": outcome.client_id,
            "credential_form": outcome.form,
            "subject": outcome.subject,
            "granted": outcome.granted,
            "reason_id": outcome.reason_id,
            "status": outcome.status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
        },
    )
