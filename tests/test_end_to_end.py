"""gate issues a token and guards a real upstream, end to end over HTTP."""

from __future__ import annotations

import time

import httpx
import jwt
import pytest
from authlib.integrations.requests_client import OAuth2Session
from oauthlib.oauth2 import LegacyApplicationClient
from requests_oauthlib import OAuth2Session as RequestsOAuth2Session

from tests.conftest import AUDIENCE, CLIENT_ID, KID, USERNAME, GateSetup


def fetch_with_authlib(gate: GateSetup, grant_type: str) -> dict:
    session = OAuth2Session(client_id=CLIENT_ID, token_endpoint_auth_method="none")
    return session.fetch_token(gate.token_url, grant_type=grant_type, username=USERNAME, password=gate.app_token)


def forged_token(gate: GateSetup, **overrides: object) -> str:
    """A token signed with gate's real key, with claims the test chooses."""
    now = int(time.time())
    claims = {
        "iss": gate.issuer,
        "sub": USERNAME,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 60,
        "jti": "test",
        "client_id": CLIENT_ID,
        **overrides,
    }
    return jwt.encode(claims, gate.private_key, algorithm="ES256", headers={"typ": "at+jwt", "kid": KID})


@pytest.mark.parametrize("grant_type", ["client_credentials", "password"])
def test_authlib_token_reaches_upstream(gate: GateSetup, grant_type: str) -> None:
    token = fetch_with_authlib(gate, grant_type)
    before = len(gate.upstream.received)

    response = httpx.get(gate.url + "/orders/42", headers={"Authorization": f"Bearer {token['access_token']}"})

    assert response.status_code == 200
    assert response.json() == {"upstream": "ok", "path": "/orders/42"}
    assert len(gate.upstream.received) == before + 1
    assert gate.upstream.received[-1].header("x-gate-subject") == [USERNAME]


def test_requests_oauthlib_password_client(gate: GateSetup, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # plain HTTP is fine on loopback
    session = RequestsOAuth2Session(client=LegacyApplicationClient(client_id=CLIENT_ID))
    token = session.fetch_token(gate.token_url, username=USERNAME, password=gate.app_token, include_client_id=True)

    response = session.get(gate.url + "/orders")

    assert token["token_type"] == "Bearer"
    assert response.status_code == 200
    assert response.json()["path"] == "/orders"


def test_issued_token_follows_rfc9068(gate: GateSetup) -> None:
    token = fetch_with_authlib(gate, "client_credentials")
    jwks = httpx.get(gate.url + "/.well-known/jwks.json").json()
    header = jwt.get_unverified_header(token["access_token"])
    key = jwt.PyJWKSet.from_dict(jwks)[header["kid"]]

    claims = jwt.decode(token["access_token"], key, algorithms=["ES256"], audience=AUDIENCE, issuer=gate.issuer)

    assert header["typ"] == "at+jwt"
    assert header["alg"] == "ES256"
    assert claims["sub"] == USERNAME
    assert claims["client_id"] == CLIENT_ID
    assert claims["scope"] == "orders:read orders:write"
    assert claims["exp"] - claims["iat"] == 120
    assert set(claims) >= {"iss", "sub", "aud", "exp", "iat", "jti", "client_id"}


def test_tampered_token_signature_fails(gate: GateSetup) -> None:
    token = fetch_with_authlib(gate, "client_credentials")["access_token"]
    header, payload, signature = token.split(".")
    forged_payload = jwt.utils.base64url_encode(
        jwt.utils.base64url_decode(payload).replace(USERNAME.encode(), b"admin-robot")
    ).decode()
    before = len(gate.upstream.received)

    response = httpx.get(
        gate.url + "/orders/1", headers={"Authorization": f"Bearer {header}.{forged_payload}.{signature}"}
    )

    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert response.json()["reason"] == "bad_signature"
    assert len(gate.upstream.received) == before


REJECTED_CASES = {
    "missing token": (None, "missing_token"),
    "expired token": ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 4000}, "token_expired"),
    "wrong audience": ({"aud": "billing-api"}, "audience_mismatch"),
    "wrong issuer": ({"iss": "https://elsewhere.example"}, "issuer_mismatch"),
    "not yet valid": ({"nbf": int(time.time()) + 3600}, "token_not_yet_valid"),
    "exp NaN": ({"exp": float("nan")}, "malformed_claim"),
    "exp beyond any float": ({"exp": 10**400}, "malformed_claim"),
}


@pytest.mark.parametrize("overrides, reason", REJECTED_CASES.values(), ids=REJECTED_CASES.keys())
def test_rejected_token_never_reaches_upstream(gate: GateSetup, overrides: dict | None, reason: str) -> None:
    headers = {} if overrides is None else {"Authorization": f"Bearer {forged_token(gate, **overrides)}"}
    before = len(gate.upstream.received)

    response = httpx.get(gate.url + "/orders/1", headers=headers)

    assert response.status_code == 401
    assert response.json()["reason"] == reason
    assert len(gate.upstream.received) == before


def test_missing_token_gets_bare_challenge(gate: GateSetup) -> None:
    response = httpx.get(gate.url + "/orders/1")

    assert response.headers["www-authenticate"] == 'Bearer realm="gate"'


@pytest.mark.parametrize("header", ["Bearer not-a-jwt", "Bearer a.b.c", "bearer x.y.z"])
def test_garbage_token_is_invalid_token(gate: GateSetup, header: str) -> None:
    before = len(gate.upstream.received)

    response = httpx.get(gate.url + "/orders/1", headers={"Authorization": header})

    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert len(gate.upstream.received) == before


def test_token_with_wrong_type_rejected(gate: GateSetup) -> None:
    now = int(time.time())
    claims = {"iss": gate.issuer, "sub": USERNAME, "aud": AUDIENCE, "iat": now, "exp": now + 60}
    id_token = jwt.encode(claims, gate.private_key, algorithm="ES256", headers={"typ": "JWT", "kid": KID})
    before = len(gate.upstream.received)

    response = httpx.get(gate.url + "/orders/1", headers={"Authorization": f"Bearer {id_token}"})

    assert response.status_code == 401
    assert response.json()["reason"] == "wrong_token_type"
    assert len(gate.upstream.received) == before


def test_public_route_needs_no_token(gate: GateSetup) -> None:
    response = httpx.get(gate.url + "/public/status")

    assert response.status_code == 200
    assert response.json()["path"] == "/public/status"


def test_unknown_path_is_404(gate: GateSetup) -> None:
    before = len(gate.upstream.received)

    response = httpx.get(gate.url + "/nowhere")

    assert response.status_code == 404
    assert len(gate.upstream.received) == before


def test_upstream_timeout_is_504(gate: GateSetup) -> None:
    response = httpx.get(gate.url + "/public/slow/report")

    assert response.status_code == 504
    assert response.json()["error"] == "upstream_timeout"


def test_unreachable_upstream_is_502(gate: GateSetup) -> None:
    response = httpx.get(gate.url + "/dead/anything")

    assert response.status_code == 502
    assert response.json()["error"] == "upstream_unreachable"


def test_healthz_and_readyz(gate: GateSetup) -> None:
    health = httpx.get(gate.url + "/healthz")
    ready = httpx.get(gate.url + "/readyz")

    assert health.status_code == 200
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert ready.json()["signing_key"] == {"kid": KID, "usable": True}
    assert len(ready.json()["config"]["version"]) == 16


@pytest.mark.parametrize("path", ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"])
def test_discovery_documents(gate: GateSetup, path: str) -> None:
    document = httpx.get(gate.url + path).json()

    assert document["issuer"] == gate.issuer
    assert document["token_endpoint"] == gate.token_url
    assert document["jwks_uri"] == gate.url + "/.well-known/jwks.json"
    assert "client_credentials" in document["grant_types_supported"]
    assert "password" in document["grant_types_supported"]
    assert document["token_endpoint_auth_methods_supported"]


def test_shared_state_memory_semantics() -> None:
    import asyncio

    from gate.state import MemoryState

    async def scenario() -> tuple[bool, bool, bool, list[bool]]:
        state = MemoryState()
        first = await state.add_if_absent("jti:a", ttl=60)
        second = await state.add_if_absent("jti:a", ttl=60)
        known = await state.contains("jti:a")
        hits = [(await state.hit("ip:1", window=60, limit=2)).allowed for _ in range(3)]
        return first, second, known, hits

    first, second, known, hits = asyncio.run(scenario())

    assert first is True
    assert second is False
    assert known is True
    assert hits == [True, True, False]
