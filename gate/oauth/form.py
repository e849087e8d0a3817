"""The form-encoded body of a token request, read strictly."""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request

from gate.errors import OAuthError

MAX_BODY_BYTES = 64 * 1024
MAX_FIELDS = 32
FORM_TYPE = "application/x-www-form-urlencoded"


def invalid_request(description: str, reason_id: str) -> OAuthError:
    return OAuthError("invalid_request", description, reason_id=reason_id)


async def read_form(request: Request) -> dict[str, str]:
    """Read the request body as a form with each parameter at most once.

    RFC 6749 section 3.2 requires form encoding and forbids repeated
    parameters; anything else is ``invalid_request``.
    """
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != FORM_TYPE:
        raise invalid_request(f"The request body must be {FORM_TYPE}.", "wrong_content_type")

    body = await _read_capped(request)
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=bool(body),
            max_num_fields=MAX_FIELDS,
            errors="strict",
        )
    except UnicodeDecodeError:
        raise invalid_request("The request body is not valid UTF-8.", "body_not_utf8") from None
    except ValueError:
        raise invalid_request("The request body is not a valid form.", "malformed_form") from None

    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise invalid_request(f"The parameter '{name}' is repeated.", "repeated_parameter")
        form[name] = value
    return form


async def _read_capped(request: Request) -> bytes:
    chunks: list[bytes] = []
    size = 0

    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise invalid_request(f"The request body is larger than {MAX_BODY_BYTES} bytes.", "body_too_large")
        chunks.append(chunk)

    return b"".join(chunks)
