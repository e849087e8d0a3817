"""The interface of a client authentication method, and what one returns.

A method is one credential form of the token endpoint. ``applies`` first
decides from the request's shape alone whether the request is the method's to
judge. "Not mine" is not "wrong", so ``applies`` never raises and never looks
at a secret. Only the one method that applies and that the client accepts then
checks the credential (``authenticate``), and either returns who the token is
for or raises ``OAuthError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from gate.config.snapshot import Client, Snapshot
from gate.errors import OAuthError
from gate.oauth.request import TokenRequest
from gate.state import SharedState


@dataclass(frozen=True)
class Authenticated:
    """The outcome of a credential check that passed."""

    subject: str
    form: str
    service_account: str | None = None
    extra_claims: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AuthContext:
    """The state a method may need besides the request and the client.

    ``endpoint_url`` is the URL of the endpoint as the config names it
    (issuer plus path), never taken from the request's Host header, so a
    method that checks an audience checks it against this value.
    """

    snapshot: Snapshot
    state: SharedState
    endpoint_url: str
    grant_type: str | None


# The same words for an unknown client and a wrong secret, so the response does
# not reveal which client ids exist. The reason_id in the log separates them.
CLIENT_AUTH_FAILED = "Client authentication failed: the client is unknown or its credentials are invalid."


class ClientAuthMethod(Protocol):
    """One credential form of the token, introspection and revocation endpoints.

    ``name`` is the form's name in the config (``auth_methods``) and in logs.
    ``channel`` names the part of the request the credential travels in
    (``basic``, ``client_secret``, ``password``, ``client_assertion``);
    credentials in two channels at once are rejected before any method runs.
    ``metadata_name`` is the RFC 8414 ``token_endpoint_auth_methods_supported``
    value a client library knows this form by.
    """

    name: ClassVar[str]
    channel: ClassVar[str]
    metadata_name: ClassVar[str]

    def applies(self, request: TokenRequest) -> bool:
        """Tell whether the request has this form's shape, without checking any credential."""
        ...

    async def authenticate(self, request: TokenRequest, client: Client | None, context: AuthContext) -> Authenticated:
        """Check the credential and return who the token is for, or raise ``OAuthError``.

        ``client`` is ``None`` when the request names an unknown client id.
        The method must then do the same work as for a known client (check the
        credential against a decoy) and raise ``invalid_client``, so an unknown
        client costs as much as a known one.
        """
        ...


def invalid_client(description: str, reason_id: str, request: TokenRequest) -> OAuthError:
    """Build a 401 ``invalid_client`` error, with a Basic challenge when the client used HTTP Basic.

    RFC 6749 section 5.2 requires the ``WWW-Authenticate`` header in that case.
    """
    return OAuthError(
        "invalid_client", description, reason_id=reason_id, status=401, basic_challenge=request.basic is not None
    )


def unknown_client(request: TokenRequest) -> OAuthError:
    return invalid_client(CLIENT_AUTH_FAILED, "unknown_client", request)
