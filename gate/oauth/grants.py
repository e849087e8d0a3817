"""Grants of the token endpoint: the grant type of a request, and the scopes it gets.

Both supported grant types issue a token for the authenticated subject:
``grant_type=password`` is handled exactly like ``client_credentials``, for
clients that can only send a password grant.
"""

from __future__ import annotations

import re

from gate.config.snapshot import Client
from gate.errors import OAuthError
from gate.oauth.form import invalid_request
from gate.oauth.request import TokenRequest

SUPPORTED_GRANT_TYPES = ("client_credentials", "password")

# RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")


def grant_type_of(request: TokenRequest) -> str:
    """Return the request's ``grant_type``, or raise ``invalid_request`` or ``unsupported_grant_type``."""
    grant_type = request.form.get("grant_type")
    if not grant_type:
        raise invalid_request("The 'grant_type' parameter is missing.", "missing_grant_type")

    if grant_type not in SUPPORTED_GRANT_TYPES:
        raise OAuthError(
            "unsupported_grant_type",
            "Supported grant types are client_credentials and password.",
            reason_id="unsupported_grant_type",
        )
    return grant_type


def check_grant_allowed(client: Client, grant_type: str) -> None:
    """Raise ``unauthorized_client`` unless ``client`` may use ``grant_type`` (RFC 6749 section 5.2)."""
    if grant_type not in client.grant_types:
        raise OAuthError(
            "unauthorized_client",
            f"This client may not use the {grant_type} grant type.",
            reason_id="grant_type_not_allowed",
        )


def granted_scope(client: Client, request: TokenRequest) -> tuple[str, ...]:
    """Return the scopes to grant: those requested, or all of the client's when none are.

    A scope outside the client's list, or outside the RFC 6749 section 3.3
    syntax, is ``invalid_scope``.
    """
    requested = request.form.get("scope", "")
    if not requested.strip(" "):
        return tuple(sorted(client.scopes))

    scopes = tuple(dict.fromkeys(scope for scope in requested.split(" ") if scope))
    if not all(_SCOPE_TOKEN.match(scope) for scope in scopes):
        raise OAuthError("invalid_scope", "The 'scope' parameter is malformed.", reason_id="malformed_scope")

    if any(scope not in client.scopes for scope in scopes):
        raise OAuthError(
            "invalid_scope", "The requested scope is not allowed for this client.", reason_id="scope_not_allowed"
        )
    return scopes
