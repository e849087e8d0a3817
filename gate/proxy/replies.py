"""Responses gate sends itself on the proxy path: denials and upstream failures."""

from __future__ import annotations

import json

from starlette.types import Send

from gate.errors import BearerError
from gate.proxy.bearer import challenge, error_body
from gate.proxy.pipeline import Decision, Rejection


def json_response_parts(
    status: int, body: bytes, extra_headers: list[tuple[bytes, bytes]] | None = None
) -> tuple[dict, dict]:
    """Return the ASGI start and body messages of a JSON response that no cache keeps."""
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *(extra_headers or []),
    ]
    return (
        {"type": "http.response.start", "status": status, "headers": headers},
        {"type": "http.response.body", "body": body},
    )


def denial_parts(decision: Decision) -> tuple[dict, dict]:
    """Return the response messages for a denied ``decision``.

    A token problem gets an RFC 6750 ``WWW-Authenticate`` challenge; a bad
    request target or a missing route gets a JSON body only.
    """
    error = decision.error
    if isinstance(error, BearerError):
        return json_response_parts(error.status, error_body(error), [(b"www-authenticate", challenge(error).encode())])

    rejection = error if isinstance(error, Rejection) else Rejection("access_denied", "The request is denied.")
    body = {"error": rejection.error, "error_description": rejection.description, "reason": decision.reason_id}
    return json_response_parts(decision.status, _json(body))


async def send_denial(send: Send, decision: Decision) -> None:
    start, body = denial_parts(decision)
    await send(start)
    await send(body)


async def send_json(send: Send, status: int, body: dict[str, str]) -> None:
    start, payload = json_response_parts(status, _json(body))
    await send(start)
    await send(payload)


def _json(body: dict[str, str]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()
