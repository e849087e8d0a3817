"""Introspection (RFC 7662), revocation (RFC 7009) and the proxy's check of revoked tokens."""

from __future__ import annotations

import httpx
import pytest

from tests.oauth.conftest import (
    ACCOUNT_CLIENT,
    BASIC_CLIENT,
    BASIC_SECRET,
    POST_CLIENT,
    POST_SECRET,
    ROBOT,
    ROBOT_TOKEN,
    SECRET_A,
    SECRET_CLIENT,
    Decisions,
    OAuthGate,
    basic_header,
)

SECRET_CLIENT_BASIC = {"Authorization": basic_header(SECRET_CLIENT, SECRET_A)}


def robot_token(oauth_gate: OAuthGate) -> str:
    data = {"grant_type": "client_credentials", "client_id": ACCOUNT_CLIENT, "username": ROBOT, "password": ROBOT_TOKEN}
    return httpx.post(oauth_gate.token_url, data=data).json()["access_token"]


def post_client_token(oauth_gate: OAuthGate) -> str:
    data = {"grant_type": "client_credentials", "client_id": POST_CLIENT, "client_secret": POST_SECRET}
    return httpx.post(oauth_gate.token_url, data=data).json()["access_token"]


def introspect(oauth_gate: OAuthGate, token: str) -> httpx.Response:
    return httpx.post(oauth_gate.introspection_url, data={"token": token}, headers=SECRET_CLIENT_BASIC)


def call_proxy(oauth_gate: OAuthGate, token: str) -> httpx.Response:
    return httpx.get(oauth_gate.url + "/orders/7", headers={"Authorization": f"Bearer {token}"})


def test_introspection_of_active_token(oauth_gate: OAuthGate, decisions: Decisions) -> None:
    response = introspect(oauth_gate, robot_token(oauth_gate))

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.json()["active"] is True
    assert response.json()["sub"] == ROBOT
    assert response.json()["client_id"] == ACCOUNT_CLIENT
    assert response.json()["scope"] == "orders:read orders:write"
    assert response.json()["token_type"] == "Bearer"
    assert decisions.last.event == "introspection_decision"
    assert decisions.last.reason_id == "token_active"


@pytest.mark.parametrize("token", ["garbage", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."], ids=["not a jwt", "alg none"])
def test_introspection_of_invalid_token(oauth_gate: OAuthGate, token: str) -> None:
    response = introspect(oauth_gate, token)

    assert response.status_code == 200
    assert response.json() == {"active": False}


INTROSPECTION_ERRORS = {
    "client not allowed": (
        {"token": "x", "client_id": POST_CLIENT, "client_secret": POST_SECRET},
        {},
        400,
        "unauthorized_client",
    ),
    "wrong secret": ({"token": "x"}, {"Authorization": basic_header(SECRET_CLIENT, "wrong")}, 401, "invalid_client"),
    "no credentials": ({"token": "x", "client_id": SECRET_CLIENT}, {}, 401, "invalid_client"),
    "token missing": ({}, SECRET_CLIENT_BASIC, 400, "invalid_request"),
}


@pytest.mark.parametrize("data, headers, status, error", INTROSPECTION_ERRORS.values(), ids=INTROSPECTION_ERRORS)
def test_introspection_errors(oauth_gate: OAuthGate, data: dict, headers: dict, status: int, error: str) -> None:
    response = httpx.post(oauth_gate.introspection_url, data=data, headers=headers)

    assert response.status_code == status
    assert response.json()["error"] == error
    assert response.headers["cache-control"] == "no-store"


def test_revoked_token_is_rejected_by_proxy(oauth_gate: OAuthGate, decisions: Decisions) -> None:
    token = robot_token(oauth_gate)
    assert call_proxy(oauth_gate, token).status_code == 200
    before = len(oauth_gate.upstream.received)

    revoked = httpx.post(
        oauth_gate.revocation_url,
        data={
            "token": token,
            "token_type_hint": "access_token",
            "client_id": ACCOUNT_CLIENT,
            "username": ROBOT,
            "password": ROBOT_TOKEN,
        },
    )
    response = call_proxy(oauth_gate, token)

    assert revoked.status_code == 200
    assert revoked.headers["cache-control"] == "no-store"
    assert response.status_code == 401
    assert response.json()["reason"] == "token_revoked"
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert len(oauth_gate.upstream.received) == before
    assert introspect(oauth_gate, token).json() == {"active": False}
    assert [record.reason_id for record in decisions.records if record.event == "revocation_decision"] == [
        "token_revoked"
    ]


def test_revoking_other_clients_token_needs_any(oauth_gate: OAuthGate) -> None:
    token = robot_token(oauth_gate)
    basic_client = {"Authorization": basic_header(BASIC_CLIENT, BASIC_SECRET)}

    refused = httpx.post(oauth_gate.revocation_url, data={"token": token}, headers=basic_client)
    still_valid = call_proxy(oauth_gate, token)
    accepted = httpx.post(oauth_gate.revocation_url, data={"token": token}, headers=SECRET_CLIENT_BASIC)

    assert refused.status_code == 400
    assert refused.json()["error"] == "unauthorized_client"
    assert still_valid.status_code == 200
    assert accepted.status_code == 200
    assert call_proxy(oauth_gate, token).status_code == 401


def test_client_without_revocation_is_refused(oauth_gate: OAuthGate) -> None:
    token = post_client_token(oauth_gate)

    response = httpx.post(
        oauth_gate.revocation_url, data={"token": token, "client_id": POST_CLIENT, "client_secret": POST_SECRET}
    )

    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"
    assert call_proxy(oauth_gate, token).status_code == 200


def test_revoking_invalid_token_is_ok(oauth_gate: OAuthGate, decisions: Decisions) -> None:
    response = httpx.post(oauth_gate.revocation_url, data={"token": "not-a-token"}, headers=SECRET_CLIENT_BASIC)

    assert response.status_code == 200
    assert decisions.last.reason_id == "token_invalid"


def test_revocation_needs_client_authentication(oauth_gate: OAuthGate) -> None:
    token = robot_token(oauth_gate)

    response = httpx.post(
        oauth_gate.revocation_url, data={"token": token, "client_id": SECRET_CLIENT, "client_secret": "wrong"}
    )

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert call_proxy(oauth_gate, token).status_code == 200


@pytest.mark.parametrize("path", ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"])
def test_discovery_advertises_endpoints(oauth_gate: OAuthGate, path: str) -> None:
    metadata = httpx.get(oauth_gate.url + path).json()

    assert metadata["introspection_endpoint"] == oauth_gate.introspection_url
    assert metadata["revocation_endpoint"] == oauth_gate.revocation_url
    expected = ["client_secret_basic", "client_secret_post", "none"]
    assert metadata["token_endpoint_auth_methods_supported"] == expected
    assert metadata["introspection_endpoint_auth_methods_supported"] == expected
    assert metadata["revocation_endpoint_auth_methods_supported"] == expected


@pytest.mark.parametrize("url_name", ["introspection_url", "revocation_url"])
def test_get_is_rejected(oauth_gate: OAuthGate, url_name: str) -> None:
    response = httpx.get(getattr(oauth_gate, url_name))

    assert response.status_code == 405
    assert response.json()["error"] == "invalid_request"
