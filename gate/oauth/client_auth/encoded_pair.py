"""Encoded pair: ``client_secret`` = base64 of ``username:app_token``.

For clients that can send only a client id and a secret but must act as a
service account. Decoding tolerates what real clients send: the standard and
the URL-safe base64 alphabets, missing ``=`` padding, and one trailing newline
either on the encoded value or inside it (``echo user:token | base64`` encodes
the newline that ``echo`` adds). Anything else is ``invalid_client``.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import ClassVar

from gate.config.snapshot import Client
from gate.errors import OAuthError
from gate.oauth.app_tokens import app_token_matches
from gate.oauth.client_auth.base import CLIENT_AUTH_FAILED, AuthContext, Authenticated, invalid_client, unknown_client
from gate.oauth.client_auth.service_account import check_service_account
from gate.oauth.request import TokenRequest

_BASE64_CHARACTERS = re.compile(r"^[A-Za-z0-9+/_-]*={0,2}$")
_TO_STANDARD_ALPHABET = str.maketrans("-_", "+/")


class EncodedPairMalformedError(ValueError):
    """The value is not base64 of ``username:app_token``."""


class EncodedPair:
    """A service account's username and app token, base64-encoded into ``client_secret``."""

    name: ClassVar[str] = "encoded_pair"
    channel: ClassVar[str] = "client_secret"
    metadata_name: ClassVar[str] = "client_secret_post"

    def applies(self, request: TokenRequest) -> bool:
        # A JWT in client_secret belongs to the JWT assertion method.
        return request.has("client_secret") and not request.client_secret_is_jwt

    async def authenticate(self, request: TokenRequest, client: Client | None, context: AuthContext) -> Authenticated:
        try:
            username, app_token = decode_pair(request.form["client_secret"])
        except EncodedPairMalformedError as error:
            if client is None:
                raise unknown_client(request) from None
            raise invalid_client(
                f"The client_secret is not an encoded pair: {error}.", "encoded_pair_malformed", request
            ) from None

        if client is None:
            app_token_matches(app_token, None)  # the same work as for a known client
            raise unknown_client(request)

        try:
            subject = check_service_account(username, app_token, client, context)
        except OAuthError as error:
            if error.error != "invalid_grant":
                raise
            raise invalid_client(CLIENT_AUTH_FAILED, error.reason_id, request) from None

        return Authenticated(subject=subject, form=self.name, service_account=subject)


def decode_pair(value: str) -> tuple[str, str]:
    """Return the username and app token encoded in ``value``, or raise ``EncodedPairMalformedError``."""
    encoded = value.removesuffix("\n")
    if not _BASE64_CHARACTERS.match(encoded):
        raise EncodedPairMalformedError("it contains characters outside the base64 alphabets")

    unpadded = encoded.rstrip("=")
    if len(unpadded) % 4 == 1:
        raise EncodedPairMalformedError("its length is not that of base64")

    try:
        padded = unpadded.translate(_TO_STANDARD_ALPHABET) + "=" * (-len(unpadded) % 4)
        text = base64.b64decode(padded, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise EncodedPairMalformedError("it does not decode to UTF-8 text") from None

    username, colon, app_token = text.removesuffix("\n").partition(":")
    if not colon or not username or not app_token:
        raise EncodedPairMalformedError("it does not decode to 'username:app_token'")
    return username, app_token
