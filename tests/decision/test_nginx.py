"""gate's decision endpoint behind a real nginx ``auth_request``, in front of a recording upstream."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import USERNAME
from tests.decision.conftest import NGINX_PATH, DecisionGate
from tests.decision.nginx import auth_request_config, nginx_port, running_nginx
from tests.proxy.upstreams import RawResponse, send_raw
from tests.servers import Received


@pytest.fixture(scope="module")
def nginx_url(decision_gate: DecisionGate, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("nginx")
    port = nginx_port()
    config = auth_request_config(directory, port, decision_gate.url, NGINX_PATH, decision_gate.upstream_url)
    with running_nginx(directory, config, port) as url:
        yield url


def get(url: str, target: str, headers: list[tuple[str, str]] = ()) -> RawResponse:
    """Send a GET with ``target`` byte for byte, so nginx receives the path exactly as written."""
    lines = [f"GET {target} HTTP/1.1", "Host: api.example.com", *(f"{n}: {v}" for n, v in headers), "Connection: close"]
    return send_raw(url, ("\r\n".join(lines) + "\r\n\r\n").encode())


def new_requests(gate: DecisionGate, before: int) -> list[Received]:
    return gate.upstream.received[before:]


def test_valid_token_passes_with_identity(decision_gate: DecisionGate, nginx_url: str) -> None:
    before = len(decision_gate.upstream.received)
    token = decision_gate.token(tenant="acme")

    response = get(nginx_url, "/admin/users?page=2", [("Authorization", f"Bearer {token}")])

    assert response.status == 200
    [received] = new_requests(decision_gate, before)
    assert received.raw_path == b"/admin/users"
    assert received.query_string == b"page=2"
    assert received.header("x-gate-subject") == [USERNAME]
    assert received.header("x-gate-tenant") == ["acme"]
    assert received.header("x-gate-scope") == ["orders:read"]
    assert len(received.header("x-request-id")) == 1
    assert received.header("authorization") == []


def test_spoofed_identity_headers_replaced(decision_gate: DecisionGate, nginx_url: str) -> None:
    before = len(decision_gate.upstream.received)
    spoofed = [("X-Gate-Subject", "admin"), ("X-Gate-Tenant", "evil")]

    response = get(nginx_url, "/admin", [*spoofed, ("Authorization", f"Bearer {decision_gate.token()}")])
    public = get(nginx_url, "/public/page", spoofed)

    assert response.status == 200
    assert public.status == 200
    granted, anonymous = new_requests(decision_gate, before)
    assert granted.header("x-gate-subject") == [USERNAME]
    assert granted.header("x-gate-tenant") == []
    assert anonymous.header("x-gate-subject") == []
    assert anonymous.header("x-gate-tenant") == []


# target, extra headers (a "token" value is replaced by a token), nginx status, challenge start
REFUSED_CASES = {
    "missing token": ("/admin", [], 401, 'Bearer realm="gate"'),
    "foreign signature": ("/admin", [("Authorization", "foreign")], 401, 'Bearer realm="gate", error="invalid_token"'),
    "not a JWT": ("/admin", [("Authorization", "Bearer not.a.jwt")], 401, 'Bearer realm="gate", error="invalid_token"'),
    "missing scope": ("/scoped", [("Authorization", "token")], 403, 'Bearer realm="gate", error="insufficient_scope"'),
    "encoded dot segments": ("/public/%2e%2e/admin", [], 401, 'Bearer realm="gate"'),
    "plain dot segments": ("/public/../admin", [], 401, 'Bearer realm="gate"'),
    "encoded slash": ("/public/..%2Fadmin", [], 403, None),
    "double encoding": ("/public/%252e%252e/admin", [], 403, None),
    "no route": ("/nowhere", [("Authorization", "token")], 403, None),
}


@pytest.mark.parametrize("target, headers, status, challenge", REFUSED_CASES.values(), ids=REFUSED_CASES.keys())
def test_refused_reaches_nothing(
    decision_gate: DecisionGate,
    nginx_url: str,
    target: str,
    headers: list[tuple[str, str]],
    status: int,
    challenge: str | None,
) -> None:
    tokens = {"token": f"Bearer {decision_gate.token()}", "foreign": f"Bearer {decision_gate.foreign_token()}"}
    headers = [(name, tokens.get(value, value)) for name, value in headers]
    before = len(decision_gate.upstream.received)

    response = get(nginx_url, target, headers)

    assert response.status == status
    assert new_requests(decision_gate, before) == []
    challenges = response.header("www-authenticate")
    if challenge is None:
        assert challenges == []
    else:
        assert challenges[0].startswith(challenge)
