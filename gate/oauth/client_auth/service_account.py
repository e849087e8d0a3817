"""Service account and app token: ``client_id``, ``username`` and ``password``.

The form authentik's machine-to-machine flow uses. The token is issued for
the service account, which must be one the client lists. A wrong app token
is ``invalid_grant``, as for the resource owner password of RFC 6749
section 4.3.2, whichever of the two grant types was sent.
"""

from __future__ import annotations

from typing import ClassVar

from gate.config.snapshot import Client
from gate.errors import OAuthError
from gate.oauth.app_tokens import app_token_matches
from gate.oauth.client_auth.base import AuthContext, Authenticated, unknown_client
from gate.oauth.form import invalid_request
from gate.oauth.request import TokenRequest


class ServiceAccountPassword:
    """A service account's username and app token as ``username`` and ``password``."""

    name: ClassVar[str] = "service_account"
    channel: ClassVar[str] = "password"
    metadata_name: ClassVar[str] = "none"

    def applies(self, request: TokenRequest) -> bool:
        return request.has("username") or request.has("password")

    async def authenticate(self, request: TokenRequest, client: Client | None, context: AuthContext) -> Authenticated:
        username = request.form.get("username")
        password = request.form.get("password")
        if not username or not password:
            raise invalid_request("The 'username' and 'password' parameters are both required.", "missing_credentials")

        if client is None:
            app_token_matches(password, None)  # the same work as for a known client
            raise unknown_client(request)

        subject = check_service_account(username, password, client, context)
        return Authenticated(subject=subject, form=self.name, service_account=subject)


def check_service_account(username: str, app_token: str, client: Client, context: AuthContext) -> str:
    """Check ``app_token`` against the account's hashes, then that ``client`` may use the account.

    The app token is checked first, so a caller without it learns nothing about
    which accounts a client lists. An unknown account costs as much as a known one.
    """
    hashes = context.snapshot.service_accounts.get(username)
    if not app_token_matches(app_token, hashes):
        raise OAuthError("invalid_grant", "The service account credentials are invalid.", reason_id="bad_app_token")

    if username not in client.service_accounts:
        raise OAuthError(
            "unauthorized_client",
            "This service account may not use this client.",
            reason_id="service_account_not_allowed",
        )
    return username
