"""Client authentication at the token, introspection and revocation endpoints.

``METHODS`` is the registry of credential forms. ``ClientAuthenticator``
picks the one form that the request's shape matches and that the client
accepts, lets it check the credential, and counts failures for rate limiting.

To add a form, write a class with the ``ClientAuthMethod`` interface (see
``base.py``) in a module of this package, add an instance to ``METHODS`` and
its name to ``AuthMethodName`` in ``gate/config/model.py``.
"""

from __future__ import annotations

from gate.config.snapshot import Client
from gate.errors import OAuthError
from gate.oauth.client_auth.base import AuthContext, Authenticated, ClientAuthMethod, invalid_client
from gate.oauth.client_auth.client_secret import ClientSecretBasic, ClientSecretPost
from gate.oauth.client_auth.encoded_pair import EncodedPair
from gate.oauth.client_auth.service_account import ServiceAccountPassword
from gate.oauth.decision import Decision
from gate.oauth.form import invalid_request
from gate.oauth.rate_limit import FailureLimiter
from gate.oauth.request import TokenRequest
from gate.state import SharedState

__all__ = ["METHODS", "AuthContext", "Authenticated", "ClientAuthMethod", "ClientAuthenticator", "select_method"]

# In the order in which an unknown client's request is judged: the client
# secret forms first, because their decoy check is the slowest.
METHODS: dict[str, ClientAuthMethod] = {
    method.name: method for method in (ClientSecretBasic(), ClientSecretPost(), EncodedPair(), ServiceAccountPassword())
}

# Errors that count towards the rate limit: wrong credentials, and forms a
# known client does not accept, whose different error would otherwise let a
# caller probe for client ids without limit.
_COUNTED_ERRORS = frozenset({"invalid_client", "invalid_grant", "unauthorized_client"})


class ClientAuthenticator:
    """Authenticate the client of a request, with rate limiting of failures."""

    def __init__(self, state: SharedState) -> None:
        self.limiter = FailureLimiter(state)

    async def authenticate(
        self, request: TokenRequest, context: AuthContext, decision: Decision
    ) -> tuple[Client, Authenticated]:
        """Return the client and the subject its credential authenticates, or raise ``OAuthError``.

        Fills in the client id (of a known client), credential form and subject of ``decision``.
        """
        client_id = request.client_id
        if not client_id:
            raise invalid_request("The 'client_id' parameter is missing.", "missing_client_id")

        client = context.snapshot.clients.get(client_id)
        settings = context.snapshot.config.token_endpoint.rate_limit
        known_id = client.client_id if client is not None else None
        decision.client_id = known_id
        await self.limiter.check(settings, known_id, request.source_address)

        try:
            method = select_method(request, client)
            decision.form = method.name
            authenticated = await method.authenticate(request, client, context)
        except OAuthError as error:
            if error.error in _COUNTED_ERRORS:
                await self.limiter.record_failure(settings, known_id, request.source_address)
            raise

        assert client is not None  # an unknown client always fails authenticate()
        decision.subject = authenticated.subject
        return client, authenticated


def select_method(request: TokenRequest, client: Client | None) -> ClientAuthMethod:
    """Pick the one method whose shape the request has and that ``client`` accepts.

    Credentials in more than one part of the request are ``invalid_request``,
    because RFC 6749 section 2.3 allows one method per request. No credentials
    at all are ``invalid_client``. A form the client does not accept is
    ``unauthorized_client``, and a request that matches two accepted forms is
    ``invalid_request``.
    """
    applying = [method for method in METHODS.values() if method.applies(request)]
    channels = sorted({method.channel for method in applying})
    if len(channels) > 1:
        raise invalid_request(
            f"The request carries credentials in more than one place ({', '.join(channels)}); send one.",
            "several_credentials",
        )

    if not applying:
        raise invalid_client("The request carries no client credentials.", "no_credentials", request)
    if client is None:
        return applying[0]

    accepted = [method for method in applying if method.name in client.auth_methods]
    if not accepted:
        forms = " or ".join(method.name for method in applying)
        raise OAuthError(
            "unauthorized_client",
            f"This client does not accept {forms} credentials.",
            reason_id="auth_method_not_allowed",
        )

    if len(accepted) > 1:
        forms = ", ".join(method.name for method in accepted)
        raise invalid_request(
            f"The credentials match more than one form this client accepts ({forms}).", "ambiguous_credentials"
        )
    return accepted[0]
