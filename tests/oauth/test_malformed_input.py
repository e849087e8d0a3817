"""Malformed input of any kind gets a 4xx from every OAuth endpoint, never a 5xx."""

from __future__ import annotations

import base64

import httpx
import pytest

from tests.oauth.conftest import PAIR_CLIENT, SECRET_A, SECRET_CLIENT, OAuthGate, basic_header

FORM = "application/x-www-form-urlencoded"
BASIC = basic_header(SECRET_CLIENT, SECRET_A)

RAW_CASES = {
    "json body": ("application/json", b'{"grant_type":"client_credentials"}', {}),
    "no content type": ("", b"grant_type=client_credentials", {}),
    "multipart body": ("multipart/form-data; boundary=x", b"--x--", {}),
    "repeated client_secret": (FORM, b"grant_type=client_credentials&client_id=a&client_secret=1&client_secret=2", {}),
    "repeated client_id": (FORM, f"client_id={SECRET_CLIENT}&client_id=x&client_secret={SECRET_A}".encode(), {}),
    "percent-encoded bytes not utf-8": (FORM, b"grant_type=client_credentials&client_secret=%ff%fe", {}),
    "raw bytes not utf-8": (FORM, b"grant_type=client_credentials&client_id=\xff", {}),
    "huge body": (FORM, b"client_secret=" + b"x" * 70_000, {}),
    "huge client_secret": (FORM, b"grant_type=client_credentials&client_id=a&client_secret=" + b"x" * 5000, {}),
    "too many fields": (FORM, b"&".join(b"f%d=1" % index for index in range(40)), {}),
    "nul in client_id": (FORM, b"grant_type=client_credentials&client_id=%00&client_secret=x", {}),
    "not a form": (FORM, b"&&&==", {}),
    "basic and body secret": (
        FORM,
        f"grant_type=client_credentials&client_secret={SECRET_A}".encode(),
        {"Authorization": BASIC},
    ),
    "basic header repeated": (FORM, b"grant_type=client_credentials", {"Authorization": [BASIC, BASIC]}),
    "basic header latin-1 bytes": (FORM, b"grant_type=client_credentials", {"Authorization": b"Basic \xe9\xe9"}),
    "basic without value": (FORM, b"grant_type=client_credentials", {"Authorization": "Basic"}),
    "encoded pair of binary": (
        FORM,
        b"grant_type=client_credentials&client_id="
        + PAIR_CLIENT.encode()
        + b"&client_secret="
        + base64.b64encode(b"\x00\x01:\x80"),
        {},
    ),
}


def raw_post(url: str, content_type: str, content: bytes, extra: dict) -> httpx.Response:
    headers: list[tuple[str, str | bytes]] = [("content-type", content_type)] if content_type else []
    for name, value in extra.items():
        headers.extend((name, item) for item in (value if isinstance(value, list) else [value]))
    return httpx.post(url, content=content, headers=headers)


@pytest.mark.parametrize("endpoint", ["token_url", "introspection_url", "revocation_url"])
@pytest.mark.parametrize("content_type, content, headers", RAW_CASES.values(), ids=RAW_CASES.keys())
def test_malformed_input_is_4xx(
    oauth_gate: OAuthGate, endpoint: str, content_type: str, content: bytes, headers: dict
) -> None:
    response = raw_post(getattr(oauth_gate, endpoint), content_type, content, headers)

    assert 400 <= response.status_code < 500
    assert response.json()["error"] in {"invalid_request", "invalid_client", "unauthorized_client"}
    assert response.headers["cache-control"] == "no-store"
