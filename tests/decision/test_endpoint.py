"""The decision endpoint under each ingress convention, called directly as each ingress calls it."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable

import httpx
import pytest

from gate.tokens.revocation_list import RevocationList
from tests.conftest import USERNAME
from tests.decision.conftest import ENVOY_PATH, NGINX_PATH, TRAEFIK_PATH, UNTRUSTED_PATH, DecisionGate
from tests.proxy.upstreams import RawResponse, send_raw

Header = tuple[str, str]
# An ingress convention turns the original request (method, URI, host, headers)
# into the request the ingress sends to gate: (method, target, headers).
Convention = Callable[[str, str, str, list[Header]], tuple[str, str, list[Header]]]


def nginx(method: str, uri: str, host: str, headers: list[Header]) -> tuple[str, str, list[Header]]:
    return "GET", NGINX_PATH, [("Host", host), ("X-Original-Method", method), ("X-Original-URI", uri), *headers]


def traefik(method: str, uri: str, host: str, headers: list[Header]) -> tuple[str, str, list[Header]]:
    forwarded = [("X-Forwarded-Method", method), ("X-Forwarded-Uri", uri), ("X-Forwarded-Host", host)]
    return "GET", TRAEFIK_PATH, [("Host", "gate.internal"), *forwarded, ("X-Forwarded-Proto", "https"), *headers]


def envoy(method: str, uri: str, host: str, headers: list[Header]) -> tuple[str, str, list[Header]]:
    return method, ENVOY_PATH + uri, [("Host", host), *headers]


CONVENTIONS: dict[str, Convention] = {"nginx": nginx, "traefik": traefik, "envoy": envoy}


def ask(gate: DecisionGate, method: str, target: str, headers: list[Header]) -> RawResponse:
    """Send one request to gate byte for byte, so paths reach it exactly as written."""
    lines = [f"{method} {target} HTTP/1.1", *(f"{name}: {value}" for name, value in headers), "Connection: close"]
    return send_raw(gate.url, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))


def ask_as(
    convention: Convention,
    gate: DecisionGate,
    uri: str,
    *,
    method: str = "GET",
    host: str = "api.example.com",
    headers: list[Header] | None = None,
) -> RawResponse:
    return ask(gate, *convention(method, uri, host, headers or []))


def bearer(token: str) -> list[Header]:
    return [("Authorization", f"Bearer {token}")]


def reason(response: RawResponse) -> str:
    return json.loads(response.body)["reason"]


# original URI, method, host, token claim overrides (None: no token), proxy status, reason id
DECISION_CASES = {
    "valid token": ("/admin/users", "GET", "api.example.com", {}, 200, None),
    "no token": ("/admin/users", "GET", "api.example.com", None, 401, "missing_token"),
    "expired token": ("/admin", "GET", "api.example.com", {"exp": int(time.time()) - 3600}, 401, "token_expired"),
    "wrong audience": ("/admin", "GET", "api.example.com", {"aud": "other-api"}, 401, "audience_mismatch"),
    "missing scope": ("/scoped", "GET", "api.example.com", {}, 403, "insufficient_scope"),
    "failed claim": ("/claims", "GET", "api.example.com", {"tenant": "zeta"}, 403, "claim_mismatch"),
    "public route": ("/public/page?x=1", "GET", "api.example.com", None, 200, None),
    "dot segments to admin": ("/public/%2e%2e/admin", "GET", "api.example.com", None, 401, "missing_token"),
    "encoded slash": ("/public/..%2Fadmin", "GET", "api.example.com", None, 400, "bad_path"),
    "no route": ("/nowhere", "GET", "api.example.com", {}, 404, "no_route"),
    "method from ingress": ("/read-only", "POST", "api.example.com", {}, 404, "no_route"),
    "host from ingress": ("/read-only", "GET", "other.example.com", {}, 404, "no_route"),
    "method and host match": ("/read-only", "GET", "api.example.com", {}, 200, None),
}


@pytest.mark.parametrize("convention", CONVENTIONS.values(), ids=CONVENTIONS.keys())
@pytest.mark.parametrize(
    "uri, method, host, claims, status, reason_id", DECISION_CASES.values(), ids=DECISION_CASES.keys()
)
def test_decision(
    decision_gate: DecisionGate,
    convention: Convention,
    uri: str,
    method: str,
    host: str,
    claims: dict | None,
    status: int,
    reason_id: str | None,
) -> None:
    headers = bearer(decision_gate.token(**claims)) if claims is not None else []
    before = len(decision_gate.upstream.received)

    response = ask_as(convention, decision_gate, uri, method=method, host=host, headers=headers)

    expected = 403 if convention is nginx and status not in (200, 401, 403) else status
    assert response.status == expected
    if reason_id is not None:
        assert reason(response) == reason_id
    assert len(decision_gate.upstream.received) == before


def test_granted_answer_carries_identity(decision_gate: DecisionGate) -> None:
    token = decision_gate.token(tenant="acme")

    response = ask_as(traefik, decision_gate, "/admin", headers=bearer(token))

    assert response.status == 200
    assert response.header("x-gate-subject") == [USERNAME]
    assert response.header("x-gate-tenant") == ["acme"]
    assert response.header("x-gate-scope") == ["orders:read"]
    assert len(response.header("x-request-id")) == 1
    assert response.body == b""


def test_denial_carries_challenge(decision_gate: DecisionGate) -> None:
    response = ask_as(envoy, decision_gate, "/scoped", headers=bearer(decision_gate.token()))

    assert response.status == 403
    challenge = response.header("www-authenticate")[0]
    assert challenge.startswith('Bearer realm="gate", error="insufficient_scope"')
    assert 'scope="admin:all"' in challenge
    assert response.header("x-gate-subject") == []


def test_missing_token_gets_bare_challenge(decision_gate: DecisionGate) -> None:
    response = ask_as(nginx, decision_gate, "/admin")

    assert response.status == 401
    assert response.header("www-authenticate") == ['Bearer realm="gate"']


@pytest.mark.parametrize("convention", CONVENTIONS.values(), ids=CONVENTIONS.keys())
def test_spoofed_identity_headers_dropped(decision_gate: DecisionGate, convention: Convention) -> None:
    spoofed = [("X-Gate-Subject", "admin"), ("X_Gate_Tenant", "evil"), ("X-Gate-Roles", "root")]

    granted = ask_as(convention, decision_gate, "/admin", headers=[*spoofed, *bearer(decision_gate.token())])
    public = ask_as(convention, decision_gate, "/public/page", headers=spoofed)

    assert granted.status == 200
    assert granted.header("x-gate-subject") == [USERNAME]
    assert granted.header("x-gate-tenant") == []
    assert granted.header("x-gate-roles") == []
    assert public.status == 200
    assert [name for name, _ in public.headers if name.lower().startswith("x-gate")] == []


def test_untrusted_address_rejected(decision_gate: DecisionGate) -> None:
    token = decision_gate.token()
    headers = [("X-Forwarded-Method", "GET"), ("X-Forwarded-Uri", "/admin"), *bearer(token)]

    response = ask(decision_gate, "GET", UNTRUSTED_PATH, [("Host", "gate.internal"), *headers])

    assert response.status == 403
    assert reason(response) == "untrusted_ingress"
    assert response.header("x-gate-subject") == []


def test_nginx_endpoint_ignores_traefik_headers(decision_gate: DecisionGate) -> None:
    """A client behind nginx sends X-Forwarded-Uri for a public path while asking for /admin."""
    spoof = [("X-Forwarded-Method", "GET"), ("X-Forwarded-Uri", "/public/page"), ("X-Forwarded-Host", "x")]

    response = ask_as(nginx, decision_gate, "/admin", headers=spoof)

    assert response.status == 401
    assert reason(response) == "missing_token"


def test_traefik_endpoint_ignores_nginx_headers(decision_gate: DecisionGate) -> None:
    spoof = [("X-Original-Method", "GET"), ("X-Original-URI", "/public/page")]

    response = ask_as(traefik, decision_gate, "/admin", headers=spoof)

    assert response.status == 401
    assert reason(response) == "missing_token"


INGRESS_ERRORS = {
    "nginx without method": (NGINX_PATH, [("Host", "api.example.com"), ("X-Original-URI", "/admin")]),
    "nginx without URI": (NGINX_PATH, [("Host", "api.example.com"), ("X-Original-Method", "GET")]),
    "traefik with two URIs": (
        TRAEFIK_PATH,
        [("Host", "g"), ("X-Forwarded-Method", "GET"), ("X-Forwarded-Uri", "/public/"), ("X-Forwarded-Uri", "/admin")],
    ),
}


@pytest.mark.parametrize("target, headers", INGRESS_ERRORS.values(), ids=INGRESS_ERRORS.keys())
def test_ingress_request_invalid(decision_gate: DecisionGate, target: str, headers: list[Header]) -> None:
    response = ask(decision_gate, "GET", target, headers)

    assert response.status == 400
    assert reason(response) == "bad_ingress"


def test_revoked_token_denied(decision_gate: DecisionGate) -> None:
    token = decision_gate.token(jti="revoked-in-decision-test")
    assert ask_as(traefik, decision_gate, "/admin", headers=bearer(token)).status == 200

    revocations = RevocationList(decision_gate.app.state)
    asyncio.run(revocations.revoke("revoked-in-decision-test", time.time() + 120, 60))
    response = ask_as(traefik, decision_gate, "/admin", headers=bearer(token))

    assert response.status == 401
    assert reason(response) == "token_revoked"


def test_decision_logged_and_counted(decision_gate: DecisionGate, caplog: pytest.LogCaptureFixture) -> None:
    def denied_count() -> float:
        text = httpx.get(decision_gate.url + "/metrics").text
        wanted = 'gate_proxy_requests_total{decision="denied",reason="claim_mismatch",route="claims"}'
        return next((float(line.split()[-1]) for line in text.splitlines() if line.startswith(wanted)), 0.0)

    before = denied_count()
    token = decision_gate.token(tenant="zeta")
    with caplog.at_level(logging.DEBUG, logger="gate"):
        response = ask_as(envoy, decision_gate, "/claims", headers=bearer(token))

    assert response.status == 403
    assert denied_count() == before + 1
    lines = [record for record in caplog.records if getattr(record, "event", None) == "auth_decision"]
    assert [(line.route_id, line.reason_id, line.status, line.granted) for line in lines] == [
        ("claims", "claim_mismatch", 403, False)
    ]
    assert lines[0].subject == USERNAME
    assert lines[0].getMessage() == "decision request denied"
    signature = token.rsplit(".", 1)[1]
    assert not [record for record in caplog.records if signature in json.dumps(record.__dict__, default=str)]
