"""Client secret forms: ``client_secret_post`` (form body) and ``client_secret_basic`` (HTTP Basic).

RFC 6749 section 2.3.1. The token is issued for the client's own service
identity: ``subject`` in the client's config, its ``client_id`` by default.
"""

from __future__ import annotations

from typing import ClassVar

from gate.config.snapshot import Client
from gate.oauth.client_auth.base import (
    CLIENT_AUTH_FAILED,
    AuthContext,
    Authenticated,
    invalid_client,
    unknown_client,
)
from gate.oauth.request import TokenRequest
from gate.oauth.secret_hashes import secret_matches


class ClientSecretPost:
    """``client_id`` and ``client_secret`` in the form body."""

    name: ClassVar[str] = "client_secret_post"
    channel: ClassVar[str] = "client_secret"
    metadata_name: ClassVar[str] = "client_secret_post"

    def applies(self, request: TokenRequest) -> bool:
        # A JWT in client_secret belongs to the JWT assertion method.
        return request.has("client_secret") and not request.client_secret_is_jwt

    async def authenticate(self, request: TokenRequest, client: Client | None, context: AuthContext) -> Authenticated:
        return await _check_secret(self.name, (request.form["client_secret"],), request, client, context)


class ClientSecretBasic:
    """``client_id`` and ``client_secret`` in an HTTP Basic ``Authorization`` header."""

    name: ClassVar[str] = "client_secret_basic"
    channel: ClassVar[str] = "basic"
    metadata_name: ClassVar[str] = "client_secret_basic"

    def applies(self, request: TokenRequest) -> bool:
        return request.basic is not None

    async def authenticate(self, request: TokenRequest, client: Client | None, context: AuthContext) -> Authenticated:
        assert request.basic is not None  # guaranteed by applies()
        return await _check_secret(self.name, request.basic.secret_candidates, request, client, context)


async def _check_secret(
    form: str, candidates: tuple[str, ...], request: TokenRequest, client: Client | None, context: AuthContext
) -> Authenticated:
    stored = (
        client.secret_hashes if client is not None and client.secret_hashes else (context.snapshot.decoy_secret_hash,)
    )
    matched = False
    for candidate in candidates:
        matched |= await secret_matches(candidate, stored)

    if client is None:
        raise unknown_client(request)
    if not matched or not client.secret_hashes:
        raise invalid_client(CLIENT_AUTH_FAILED, "bad_client_secret", request)

    return Authenticated(subject=client.subject, form=form)
