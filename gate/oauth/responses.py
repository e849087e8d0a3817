"""Token endpoint responses: RFC 6749 section 5.1 success and 5.2 errors."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from gate.errors import OAuthError
from gate.tokens.issuer import compact_json

NO_STORE_HEADERS = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def json_response(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        compact_json(body),
        status_code=status,
        media_type="application/json",
        headers={**NO_STORE_HEADERS, **(headers or {})},
    )


def error_response(error: OAuthError) -> Response:
    """Render ``error`` as RFC 6749 section 5.2 JSON."""
    headers: dict[str, str] = {}
    if error.basic_challenge:
        headers["WWW-Authenticate"] = 'Basic realm="gate", charset="UTF-8"'
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    body = {"error": error.error, "error_description": error.description}
    return json_response(body, error.status, headers)
