"""A request to the token, introspection or revocation endpoint, read once and strictly.

Client credentials may come in the form body or in an HTTP Basic
``Authorization`` header. RFC 6749 section 2.3.1 form-urlencodes the client id
and secret before they are joined with ``:`` and base64-encoded, so both are
decoded here. The scheme name is matched case-insensitively (RFC 7235
section 2.1), and a secret may contain ``:``.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote_plus

from starlette.requests import Request

from gate.errors import OAuthError
from gate.oauth.form import invalid_request, read_form

MAX_PARAMETER_LENGTH = 4096
MAX_AUTHORIZATION_LENGTH = 8192
_JWT_SHAPE = re.compile(r"^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\Z")
_BODY_CREDENTIALS = ("client_secret", "client_assertion", "client_assertion_type")


@dataclass(frozen=True)
class BasicCredentials:
    """The client id and secret of an HTTP Basic ``Authorization`` header, decoded."""

    client_id: str
    client_secret: str
    unencoded_secret: str | None = None

    @property
    def secret_candidates(self) -> tuple[str, ...]:
        """Return the secret as RFC 6749 section 2.3.1 decodes it, then as sent if that differs.

        Widely used clients (Authlib 1.x, requests' ``HTTPBasicAuth``) put the
        secret into the header without form-urlencoding it, so a secret with
        ``+`` or ``%`` reaches gate changed by the decoding. Both readings are
        checked; that gives a guesser two tries per request instead of one.
        """
        if self.unencoded_secret is None:
            return (self.client_secret,)
        return (self.client_secret, self.unencoded_secret)

    def __repr__(self) -> str:
        return f"BasicCredentials(client_id={self.client_id!r}, client_secret='**********')"


@dataclass(frozen=True)
class TokenRequest:
    """The parameters and client credentials of one request to an OAuth endpoint."""

    form: Mapping[str, str]
    basic: BasicCredentials | None
    source_address: str

    def __repr__(self) -> str:
        return f"TokenRequest(parameters={sorted(self.form)}, basic={self.basic!r}, source={self.source_address})"

    @property
    def client_id(self) -> str | None:
        if self.basic is not None:
            return self.basic.client_id
        return self.form.get("client_id") or None

    def has(self, name: str) -> bool:
        return name in self.form

    @property
    def client_secret_is_jwt(self) -> bool:
        """Tell whether the body's ``client_secret`` has the shape of a JWT (JWS compact serialization)."""
        return bool(_JWT_SHAPE.match(self.form.get("client_secret", "")))


async def read_token_request(request: Request) -> TokenRequest:
    """Read the form and the Basic credentials of ``request``.

    Raises ``OAuthError`` with ``invalid_request`` for a malformed body, an
    overlong parameter, or a body ``client_id`` that differs from the header's.
    Credentials both in the header and in the body are ``invalid_request`` too,
    because RFC 6749 section 2.3 allows one method per request. A malformed
    Basic header is ``invalid_client``.
    """
    form = await read_form(request)
    _check_lengths(form)
    basic = _basic_credentials(request.headers.getlist("authorization"))

    if basic is not None:
        _check_basic_alone(form, basic)

    address = request.client.host if request.client else "unknown"
    return TokenRequest(form=form, basic=basic, source_address=address)


def _check_lengths(form: Mapping[str, str]) -> None:
    for name, value in form.items():
        if len(value) > MAX_PARAMETER_LENGTH:
            raise invalid_request(
                f"The parameter '{name}' is longer than {MAX_PARAMETER_LENGTH} characters.", "parameter_too_long"
            )


def _check_basic_alone(form: Mapping[str, str], basic: BasicCredentials) -> None:
    in_body = [name for name in _BODY_CREDENTIALS if name in form]
    if in_body:
        raise invalid_request(
            "The request carries client credentials both in the Authorization header and in the body"
            f" ({', '.join(in_body)}); use one.",
            "credentials_in_header_and_body",
        )

    body_client_id = form.get("client_id")
    if body_client_id is not None and body_client_id != basic.client_id:
        raise invalid_request(
            "The 'client_id' parameter differs from the client id of the Authorization header.",
            "client_id_mismatch",
        )


def _basic_credentials(values: list[str]) -> BasicCredentials | None:
    if not values:
        return None
    if len(values) > 1:
        raise invalid_request("The request has more than one Authorization header.", "repeated_authorization")

    value = values[0].strip()
    if len(value) > MAX_AUTHORIZATION_LENGTH:
        raise invalid_request("The Authorization header is too long.", "authorization_too_long")

    scheme, _, encoded = value.partition(" ")
    if scheme.lower() != "basic":
        raise invalid_request(
            "The token endpoint accepts only the Basic scheme in the Authorization header.", "unsupported_auth_scheme"
        )
    return _decode_basic(encoded.strip())


def _decode_basic(encoded: str) -> BasicCredentials:
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise _malformed_basic("is not base64 of UTF-8 text") from None

    user_id, colon, password = decoded.partition(":")
    if not colon:
        raise _malformed_basic("has no ':' between the client id and the secret")

    try:
        client_id = unquote_plus(user_id, errors="strict")
        client_secret = unquote_plus(password, errors="strict")
    except UnicodeDecodeError:
        raise _malformed_basic("has a percent-encoding that is not UTF-8") from None

    if not client_id:
        raise _malformed_basic("has an empty client id")

    unencoded = password if password != client_secret else None
    return BasicCredentials(client_id=client_id, client_secret=client_secret, unencoded_secret=unencoded)


def _malformed_basic(problem: str) -> OAuthError:
    return OAuthError(
        "invalid_client",
        f"The HTTP Basic credentials are malformed: the value {problem}.",
        reason_id="malformed_basic_credentials",
        status=401,
        basic_challenge=True,
    )
