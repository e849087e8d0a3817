"""Real OAuth client libraries fetch tokens from gate and call the proxy with them."""

from __future__ import annotations

import httpx
import pytest
from authlib.integrations.requests_client import OAuth2Session
from oauthlib.oauth2 import BackendApplicationClient
from requests_oauthlib import OAuth2Session as RequestsOAuth2Session

from tests.oauth.conftest import BASIC_ASCII_SECRET, BASIC_CLIENT, SECRET_A, SECRET_CLIENT, Decisions, OAuthGate


@pytest.mark.parametrize("auth_method", ["client_secret_basic", "client_secret_post"])
def test_authlib_client_secret(oauth_gate: OAuthGate, decisions: Decisions, auth_method: str) -> None:
    session = OAuth2Session(client_id=SECRET_CLIENT, client_secret=SECRET_A, token_endpoint_auth_method=auth_method)

    token = session.fetch_token(oauth_gate.token_url, grant_type="client_credentials")
    response = httpx.get(oauth_gate.url + "/orders/1", headers={"Authorization": f"Bearer {token['access_token']}"})

    assert token["token_type"] == "Bearer"
    assert decisions.records[0].credential_form == auth_method
    assert response.status_code == 200
    assert oauth_gate.upstream.received[-1].header("x-gate-subject") == ["svc-reports"]


def test_authlib_basic_secret_with_plus_and_percent(oauth_gate: OAuthGate) -> None:
    # Authlib 1.x does not form-urlencode the secret in the Basic header.
    session = OAuth2Session(
        client_id=BASIC_CLIENT, client_secret=BASIC_ASCII_SECRET, token_endpoint_auth_method="client_secret_basic"
    )

    token = session.fetch_token(oauth_gate.token_url, grant_type="client_credentials")

    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 300


def test_requests_oauthlib_backend_client(oauth_gate: OAuthGate, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # plain HTTP is fine on loopback
    session = RequestsOAuth2Session(client=BackendApplicationClient(client_id=SECRET_CLIENT))

    token = session.fetch_token(oauth_gate.token_url, client_id=SECRET_CLIENT, client_secret=SECRET_A)
    response = session.get(oauth_gate.url + "/orders/2")

    assert token["scope"] == ["reports:read"]
    assert response.status_code == 200
    assert response.json()["path"] == "/orders/2"
