"""Every credential form, rejection reason and RFC 6749 error code, against gate under uvicorn."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

import httpx
import jwt
import pytest

from tests.oauth.conftest import (
    ACCOUNT_CLIENT,
    ALL_SECRETS,
    ARGON2_SECRET,
    AUDIENCE,
    BASIC_ASCII_SECRET,
    BASIC_CLIENT,
    BASIC_SECRET,
    PAIR_CLIENT,
    PBKDF2_SECRET,
    POST_CLIENT,
    POST_SECRET,
    ROBOT,
    ROBOT_TOKEN,
    SECRET_A,
    SECRET_B,
    SECRET_CLIENT,
    SLOW_CLIENT,
    STRANGER,
    STRANGER_TOKEN,
    Decisions,
    OAuthGate,
    basic_header,
    encoded_pair,
)

PAIR = encoded_pair(ROBOT, ROBOT_TOKEN)
BASIC = basic_header(SECRET_CLIENT, SECRET_A)


def body(**fields: str | None) -> dict[str, str]:
    """A client_credentials request body with ``fields`` added; a ``None`` value removes the field."""
    base: dict[str, str | None] = {"grant_type": "client_credentials", **fields}
    return {name: value for name, value in base.items() if value is not None}


def account(**fields: str | None) -> dict[str, str]:
    """A service account request of the account client, with ``fields`` changed."""
    return body(**{"client_id": ACCOUNT_CLIENT, "username": ROBOT, "password": ROBOT_TOKEN, **fields})


@dataclass(frozen=True)
class Case:
    """One token request and the response gate must send."""

    data: dict[str, str]
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 200
    error: str | None = None
    reason: str | None = None
    subject: str | None = None
    form: str | None = None


GRANTED = {
    "service account, client_credentials": Case(account(), subject=ROBOT, form="service_account"),
    "service account, password grant": Case(account(grant_type="password"), subject=ROBOT, form="service_account"),
    "encoded pair, standard alphabet": Case(
        body(client_id=ACCOUNT_CLIENT, client_secret=PAIR), subject=ROBOT, form="encoded_pair"
    ),
    "encoded pair, url-safe alphabet": Case(
        body(client_id=ACCOUNT_CLIENT, client_secret=PAIR.translate(str.maketrans("+/", "-_"))),
        subject=ROBOT,
        form="encoded_pair",
    ),
    "encoded pair, padding removed": Case(
        body(client_id=PAIR_CLIENT, client_secret=PAIR.rstrip("=")), subject=ROBOT, form="encoded_pair"
    ),
    "encoded pair, trailing newline": Case(
        body(client_id=PAIR_CLIENT, client_secret=PAIR + "\n"), subject=ROBOT, form="encoded_pair"
    ),
    "encoded pair, newline inside (echo | base64)": Case(
        body(client_id=PAIR_CLIENT, client_secret=base64.b64encode(f"{ROBOT}:{ROBOT_TOKEN}\n".encode()).decode()),
        subject=ROBOT,
        form="encoded_pair",
    ),
    "client secret post, first secret": Case(
        body(client_id=SECRET_CLIENT, client_secret=SECRET_A), subject="svc-reports", form="client_secret_post"
    ),
    "client secret post, rotated second secret": Case(
        body(client_id=SECRET_CLIENT, client_secret=SECRET_B), subject="svc-reports", form="client_secret_post"
    ),
    "client secret post, password grant": Case(
        body(grant_type="password", client_id=SECRET_CLIENT, client_secret=SECRET_A),
        subject="svc-reports",
        form="client_secret_post",
    ),
    "client secret basic": Case(body(), {"Authorization": BASIC}, subject="svc-reports", form="client_secret_basic"),
    "client secret basic, urlencoded secret with colon": Case(
        body(),
        {"Authorization": basic_header(BASIC_CLIENT, BASIC_SECRET)},
        subject=BASIC_CLIENT,
        form="client_secret_basic",
    ),
    "client secret basic, lower-case scheme": Case(
        body(), {"Authorization": basic_header(SECRET_CLIENT, SECRET_B, "basic")}, subject="svc-reports"
    ),
    "client secret basic, upper-case scheme": Case(
        body(), {"Authorization": basic_header(SECRET_CLIENT, SECRET_B, "BASIC")}, subject="svc-reports"
    ),
    "client secret basic, same client_id in body": Case(
        body(client_id=SECRET_CLIENT), {"Authorization": BASIC}, subject="svc-reports"
    ),
    "client secret basic, secret sent without urlencoding": Case(
        body(),
        {"Authorization": "Basic " + base64.b64encode(f"{BASIC_CLIENT}:{BASIC_ASCII_SECRET}".encode()).decode()},
        subject=BASIC_CLIENT,
        form="client_secret_basic",
    ),
    "pbkdf2 client secret": Case(body(client_id=SLOW_CLIENT, client_secret=PBKDF2_SECRET), subject=SLOW_CLIENT),
    "argon2 client secret": Case(body(client_id=SLOW_CLIENT, client_secret=ARGON2_SECRET), subject=SLOW_CLIENT),
    "requested scope subset": Case(account(scope="orders:read"), subject=ROBOT),
}

REJECTED = {
    # grant
    "grant type missing": Case(
        account(grant_type=None), status=400, error="invalid_request", reason="missing_grant_type"
    ),
    "grant type unsupported": Case(
        account(grant_type="authorization_code"),
        status=400,
        error="unsupported_grant_type",
        reason="unsupported_grant_type",
    ),
    "grant type not allowed for client": Case(
        body(grant_type="password"),
        {"Authorization": basic_header(BASIC_CLIENT, BASIC_SECRET)},
        status=400,
        error="unauthorized_client",
        reason="grant_type_not_allowed",
    ),
    # which client and which form
    "client id missing": Case(account(client_id=None), status=400, error="invalid_request", reason="missing_client_id"),
    "client unknown, service account form": Case(
        account(client_id="nobody"), status=401, error="invalid_client", reason="unknown_client"
    ),
    "client unknown, client secret": Case(
        body(client_id="nobody", client_secret=SECRET_A), status=401, error="invalid_client", reason="unknown_client"
    ),
    "client unknown, basic": Case(
        body(), {"Authorization": basic_header("nobody", SECRET_A)}, 401, "invalid_client", "unknown_client"
    ),
    "no credentials at all": Case(
        body(client_id=SECRET_CLIENT), status=401, error="invalid_client", reason="no_credentials"
    ),
    "credentials in two places": Case(
        account(client_secret=SECRET_A), status=400, error="invalid_request", reason="several_credentials"
    ),
    "basic and username/password": Case(
        body(username=ROBOT, password=ROBOT_TOKEN),
        {"Authorization": BASIC},
        400,
        "invalid_request",
        "several_credentials",
    ),
    "basic and client_secret in body": Case(
        body(client_secret=SECRET_A), {"Authorization": BASIC}, 400, "invalid_request", "credentials_in_header_and_body"
    ),
    "basic and other client_id in body": Case(
        body(client_id=ACCOUNT_CLIENT), {"Authorization": BASIC}, 400, "invalid_request", "client_id_mismatch"
    ),
    "form not accepted, basic to post-only client": Case(
        body(),
        {"Authorization": basic_header(POST_CLIENT, POST_SECRET)},
        400,
        "unauthorized_client",
        "auth_method_not_allowed",
    ),
    "form not accepted, post to basic-only client": Case(
        body(client_id=BASIC_CLIENT, client_secret=BASIC_SECRET),
        status=400,
        error="unauthorized_client",
        reason="auth_method_not_allowed",
    ),
    "form not accepted, service account to secret client": Case(
        account(client_id=SECRET_CLIENT), status=400, error="unauthorized_client", reason="auth_method_not_allowed"
    ),
    "form not accepted, service account to pair-only client": Case(
        account(client_id=PAIR_CLIENT), status=400, error="unauthorized_client", reason="auth_method_not_allowed"
    ),
    "unsigned jwt in client_secret": Case(
        body(client_id=SECRET_CLIENT, client_secret="eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."),
        status=401,
        error="invalid_client",
        reason="alg_none",
    ),
    # service account and app token
    "username missing": Case(account(username=None), status=400, error="invalid_request", reason="missing_credentials"),
    "password missing": Case(account(password=None), status=400, error="invalid_request", reason="missing_credentials"),
    "app token wrong": Case(
        account(password="not-the-token"), status=400, error="invalid_grant", reason="bad_app_token"
    ),
    "service account unknown": Case(
        account(username="ghost"), status=400, error="invalid_grant", reason="bad_app_token"
    ),
    "service account not listed by client": Case(
        account(username=STRANGER, password=STRANGER_TOKEN),
        status=400,
        error="unauthorized_client",
        reason="service_account_not_allowed",
    ),
    # encoded pair
    "encoded pair, wrong token": Case(
        body(client_id=ACCOUNT_CLIENT, client_secret=encoded_pair(ROBOT, "wrong")),
        status=401,
        error="invalid_client",
        reason="bad_app_token",
    ),
    "encoded pair, unknown account": Case(
        body(client_id=PAIR_CLIENT, client_secret=encoded_pair("ghost", ROBOT_TOKEN)),
        {},
        401,
        "invalid_client",
        "bad_app_token",
    ),
    "encoded pair, account not listed": Case(
        body(client_id=PAIR_CLIENT, client_secret=encoded_pair(STRANGER, STRANGER_TOKEN)),
        status=400,
        error="unauthorized_client",
        reason="service_account_not_allowed",
    ),
    "encoded pair, not base64": Case(
        body(client_id=PAIR_CLIENT, client_secret="not base64!"), {}, 401, "invalid_client", "encoded_pair_malformed"
    ),
    "encoded pair, impossible length": Case(
        body(client_id=PAIR_CLIENT, client_secret="QUJDR"), {}, 401, "invalid_client", "encoded_pair_malformed"
    ),
    "encoded pair, no colon": Case(
        body(client_id=PAIR_CLIENT, client_secret=base64.b64encode(b"robot-and-token").decode()),
        status=401,
        error="invalid_client",
        reason="encoded_pair_malformed",
    ),
    "encoded pair, not utf-8": Case(
        body(client_id=PAIR_CLIENT, client_secret=base64.b64encode(b"\xff\xfe:token").decode()),
        status=401,
        error="invalid_client",
        reason="encoded_pair_malformed",
    ),
    "encoded pair, two trailing newlines": Case(
        body(client_id=PAIR_CLIENT, client_secret=PAIR + "\n\n"), {}, 401, "invalid_client", "encoded_pair_malformed"
    ),
    "encoded pair, padding inside": Case(
        body(client_id=PAIR_CLIENT, client_secret="QQ==QUJD"), {}, 401, "invalid_client", "encoded_pair_malformed"
    ),
    # client secret
    "client secret wrong, post": Case(
        body(client_id=SECRET_CLIENT, client_secret="wrong"),
        status=401,
        error="invalid_client",
        reason="bad_client_secret",
    ),
    "client secret wrong, basic": Case(
        body(), {"Authorization": basic_header(SECRET_CLIENT, "wrong")}, 401, "invalid_client", "bad_client_secret"
    ),
    "client secret of another client": Case(
        body(client_id=SECRET_CLIENT, client_secret=POST_SECRET), {}, 401, "invalid_client", "bad_client_secret"
    ),
    "slow hash, wrong secret": Case(
        body(client_id=SLOW_CLIENT, client_secret="guess"),
        status=401,
        error="invalid_client",
        reason="bad_client_secret",
    ),
    # malformed Authorization header
    "basic, not base64": Case(
        body(), {"Authorization": "Basic %%%"}, 401, "invalid_client", "malformed_basic_credentials"
    ),
    "basic, no colon": Case(
        body(),
        {"Authorization": "Basic " + base64.b64encode(b"just-an-id").decode()},
        401,
        "invalid_client",
        "malformed_basic_credentials",
    ),
    "basic, bad percent-encoding": Case(
        body(),
        {"Authorization": "Basic " + base64.b64encode(b"client:%ff").decode()},
        401,
        "invalid_client",
        "malformed_basic_credentials",
    ),
    "basic, empty client id": Case(
        body(),
        {"Authorization": "Basic " + base64.b64encode(b":secret").decode()},
        401,
        "invalid_client",
        "malformed_basic_credentials",
    ),
    "basic, not utf-8": Case(
        body(),
        {"Authorization": "Basic " + base64.b64encode(b"\xff:\xfe").decode()},
        401,
        "invalid_client",
        "malformed_basic_credentials",
    ),
    "bearer scheme": Case(body(), {"Authorization": "Bearer abc"}, 400, "invalid_request", "unsupported_auth_scheme"),
    "authorization header too long": Case(
        body(), {"Authorization": "Basic " + "A" * 9000}, 400, "invalid_request", "authorization_too_long"
    ),
    # scope and sizes
    "scope not allowed": Case(
        account(scope="orders:read admin"), status=400, error="invalid_scope", reason="scope_not_allowed"
    ),
    "scope malformed": Case(
        account(scope='orders:read "x'), status=400, error="invalid_scope", reason="malformed_scope"
    ),
    "parameter too long": Case(
        account(username="u" * 5000), status=400, error="invalid_request", reason="parameter_too_long"
    ),
}


def send(oauth_gate: OAuthGate, case: Case) -> httpx.Response:
    return httpx.post(oauth_gate.token_url, data=case.data, headers=case.headers)


@pytest.mark.parametrize("case", GRANTED.values(), ids=GRANTED.keys())
def test_form_is_granted(oauth_gate: OAuthGate, decisions: Decisions, case: Case) -> None:
    response = send(oauth_gate, case)

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.json()["token_type"] == "Bearer"
    claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
    assert claims["sub"] == case.subject
    assert decisions.last.subject == case.subject
    assert decisions.last.granted is True
    if case.form:
        assert decisions.last.credential_form == case.form


@pytest.mark.parametrize("case", REJECTED.values(), ids=REJECTED.keys())
def test_request_is_rejected(oauth_gate: OAuthGate, decisions: Decisions, case: Case) -> None:
    response = send(oauth_gate, case)

    assert response.status_code == case.status
    assert response.json()["error"] == case.error
    assert response.json()["error_description"]
    assert response.headers["cache-control"] == "no-store"
    assert decisions.last.reason_id == case.reason
    assert decisions.last.granted is False
    for secret in ALL_SECRETS:
        assert secret not in response.text


@pytest.mark.parametrize("case", [*GRANTED.values(), *REJECTED.values()], ids=[*GRANTED, *REJECTED])
def test_basic_challenge_only_after_basic(oauth_gate: OAuthGate, case: Case) -> None:
    response = send(oauth_gate, case)

    challenged = response.status_code == 401 and "Authorization" in case.headers
    if challenged:
        assert response.headers["www-authenticate"].startswith("Basic ")
    else:
        assert "www-authenticate" not in response.headers


def test_table_covers_every_rfc6749_error(oauth_gate: OAuthGate) -> None:
    errors = {case.error for case in REJECTED.values()}

    assert errors >= {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
    }


def test_audience_and_scope_of_secret_client(oauth_gate: OAuthGate) -> None:
    response = httpx.post(oauth_gate.token_url, data=body(), headers={"Authorization": BASIC})
    claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})

    assert claims["aud"] == ["reports-api", AUDIENCE]
    assert claims["client_id"] == SECRET_CLIENT
    assert claims["scope"] == "reports:read"
    assert response.json()["scope"] == "reports:read"


def test_encoded_pair_cases_are_meaningful() -> None:
    assert "+" in PAIR or "/" in PAIR
    assert PAIR.endswith("=")
