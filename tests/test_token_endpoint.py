"""The token endpoint's RFC 6749 responses, against gate under uvicorn."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import CLIENT_ID, OTHER_APP_TOKEN, OTHER_USERNAME, USERNAME, GateSetup

VALID = object()  # stands for the real app token in the case table


def form(**fields: object) -> dict[str, str]:
    base = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "username": USERNAME, "password": VALID}
    base.update(fields)
    return {name: value for name, value in base.items() if value is not None}  # type: ignore[misc]


def post_form(gate: GateSetup, fields: dict[str, object]) -> httpx.Response:
    data = {name: gate.app_token if value is VALID else value for name, value in fields.items()}
    return httpx.post(gate.token_url, data=data)


ERROR_CASES = {
    "grant type missing": (form(grant_type=None), 400, "invalid_request"),
    "grant type unsupported": (form(grant_type="authorization_code"), 400, "unsupported_grant_type"),
    "client id missing": (form(client_id=None), 400, "invalid_request"),
    "client unknown": (form(client_id="nobody"), 401, "invalid_client"),
    "username missing": (form(username=None), 400, "invalid_request"),
    "password missing": (form(password=None), 400, "invalid_request"),
    "app token wrong": (form(password="not-the-token"), 400, "invalid_grant"),
    "service account unknown": (form(username="ghost"), 400, "invalid_grant"),
    "scope not allowed": (form(scope="orders:read admin"), 400, "invalid_scope"),
    "parameter too long": (form(username="u" * 5000), 400, "invalid_request"),
}


@pytest.mark.parametrize("fields, status, error", ERROR_CASES.values(), ids=ERROR_CASES.keys())
def test_token_error_cases(gate: GateSetup, fields: dict, status: int, error: str) -> None:
    response = post_form(gate, fields)

    assert response.status_code == status
    assert response.json()["error"] == error
    assert response.json()["error_description"]
    assert response.headers["cache-control"] == "no-store"
    assert gate.app_token not in response.text


RAW_BODY_CASES = {
    "json body": ("application/json", b'{"grant_type":"client_credentials"}'),
    "no content type": ("", b"grant_type=client_credentials"),
    "repeated parameter": ("application/x-www-form-urlencoded", b"grant_type=password&grant_type=password"),
    "not utf-8": ("application/x-www-form-urlencoded", b"grant_type=client_credentials&username=%ff%fe"),
    "raw bytes not utf-8": ("application/x-www-form-urlencoded", b"grant_type=\xff"),
    "body too large": ("application/x-www-form-urlencoded", b"a=" + b"x" * 70_000),
    "not a form": ("application/x-www-form-urlencoded", b"&&&=="),
}


@pytest.mark.parametrize("content_type, body", RAW_BODY_CASES.values(), ids=RAW_BODY_CASES.keys())
def test_malformed_body_is_invalid_request(gate: GateSetup, content_type: str, body: bytes) -> None:
    headers = {"content-type": content_type} if content_type else {}

    response = httpx.post(gate.token_url, content=body, headers=headers)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_get_is_rejected(gate: GateSetup) -> None:
    response = httpx.get(gate.token_url)

    assert response.status_code == 405
    assert response.json()["error"] == "invalid_request"


def test_success_response_shape(gate: GateSetup) -> None:
    response = post_form(gate, form(grant_type="password", scope="orders:read"))

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    assert response.json()["token_type"] == "Bearer"
    assert response.json()["expires_in"] == 120
    assert response.json()["scope"] == "orders:read"


def test_service_account_not_allowed_for_client(gate: GateSetup) -> None:
    response = post_form(gate, form(username=OTHER_USERNAME, password=OTHER_APP_TOKEN))

    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"
