"""Bearer tokens in requests, and RFC 6750 error responses."""

from __future__ import annotations

import json
import re

from gate.errors import BearerError

REALM = "gate"
_TOKEN_SYNTAX = re.compile(r"^[A-Za-z0-9\-._~+/]+=*\Z")
_UNSAFE_IN_QUOTED_STRING = re.compile(r'["\\\x00-\x1f\x7f]')

Headers = list[tuple[bytes, bytes]]


MAX_PARSED_VALUES = 4096
"""Authorization values whose parsed token is kept; past this the store starts over."""

MAX_REMEMBERED_VALUE_BYTES = 4096
"""Maximum length in bytes of an Authorization value that is kept.

Longer values are parsed on every request, so that a client sending many
long values cannot make the store hold more than about 32 MiB
(``MAX_PARSED_VALUES`` entries of the value and its token).
"""

_parsed: dict[bytes, str] = {}


def bearer_token(headers: Headers) -> str:
    """Return the bearer token of the ``Authorization`` header.

    No header, or a scheme other than Bearer, is a missing token (bare
    challenge); a repeated header or a token outside the RFC 6750 ``b64token``
    syntax is ``invalid_request``. A client sends the same value on every
    request until its token expires, so well-formed values of at most
    ``MAX_REMEMBERED_VALUE_BYTES`` are kept with their token, which then also
    keeps its computed hash for the verified-token cache.
    """
    value: bytes | None = None
    for name, header_value in headers:
        if name == b"authorization":
            if value is not None:
                raise BearerError(
                    "invalid_request",
                    "The request has more than one Authorization header.",
                    reason_id="repeated_authorization",
                    status=400,
                )
            value = header_value
    if value is None:
        raise BearerError(None, "The request carries no bearer token.", reason_id="missing_token")

    token = _parsed.get(value)
    if token is not None:
        return token

    token = _parse(value)
    if len(value) > MAX_REMEMBERED_VALUE_BYTES:
        return token

    if len(_parsed) >= MAX_PARSED_VALUES:
        _parsed.clear()
    _parsed[value] = token
    return token


def _parse(value: bytes) -> str:
    scheme, _, token = value.decode("latin-1").strip().partition(" ")
    if scheme.lower() != "bearer":
        raise BearerError(None, "The request carries no bearer token.", reason_id="missing_token")

    token = token.strip()
    if not _TOKEN_SYNTAX.match(token):
        raise BearerError("invalid_request", "The bearer token is malformed.", reason_id="malformed_bearer", status=400)
    return token


def challenge(error: BearerError) -> str:
    """Build the ``WWW-Authenticate`` value for ``error`` (RFC 6750 section 3)."""
    if error.error is None:
        return f'Bearer realm="{REALM}"'

    parts = [f'realm="{REALM}"', f'error="{error.error}"']
    parts.append(f'error_description="{_UNSAFE_IN_QUOTED_STRING.sub("", error.description)}"')
    if error.scope:
        parts.append(f'scope="{_UNSAFE_IN_QUOTED_STRING.sub("", error.scope)}"')
    return "Bearer " + ", ".join(parts)


def error_body(error: BearerError) -> bytes:
    """Build the JSON body that names the failed check."""
    body = {
        "error": error.error or "missing_token",
        "error_description": error.description,
        "reason": error.reason_id,
    }
    return json.dumps(body, separators=(",", ":")).encode()
