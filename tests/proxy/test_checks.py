"""Route matching and the authorize checks, end to end and through ``decide`` offline."""

from __future__ import annotations

import logging

import httpx
import pytest

from gate.config.compile import load_snapshot
from gate.proxy.pipeline import ProxyRequest, decide
from tests.proxy.conftest import ProxyGate
from tests.proxy.upstreams import send_raw


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# route path, token claim overrides (None: no token), extra headers, status, reason
CHECK_CASES = {
    "protected without token": ("/admin", None, {}, 401, "missing_token"),
    "protected with token": ("/admin", {}, {}, 200, None),
    "optional without token": ("/maybe", None, {}, 200, None),
    "optional with bad token": ("/maybe", {"aud": "other-api"}, {}, 401, "audience_mismatch"),
    "optional with good token": ("/maybe", {}, {}, 200, None),
    "optional with basic auth": ("/maybe", None, {"Authorization": "Basic dXNlcjpwdw=="}, 200, None),
    "optional with malformed bearer": ("/maybe", None, {"Authorization": "Bearer a b"}, 400, "malformed_bearer"),
    "missing scope": ("/scoped", {}, {}, 403, "insufficient_scope"),
    "scope in scp array": ("/scoped", {"scope": None, "scp": ["admin:all"]}, {}, 200, None),
    "scope granted": ("/scoped", {"scope": "orders:read admin:all"}, {}, 200, None),
    "claims match": ("/claims", {"tenant": "acme"}, {}, 200, None),
    "claim in array": ("/claims", {"tenant": ["zeta", "beta"]}, {}, 200, None),
    "claim wrong value": ("/claims", {"tenant": "zeta"}, {}, 403, "claim_mismatch"),
    "claim missing": ("/claims", {}, {}, 403, "claim_mismatch"),
    "policy true": ("/policy", {}, {"X-Env": "prod"}, 200, None),
    "policy false": ("/policy", {}, {"X-Env": "dev"}, 403, "policy_denied"),
    "policy error on missing header": ("/policy", {}, {}, 403, "policy_error"),
    "every audience present": ("/every-audience", {"aud": ["orders-api", "second-api"]}, {}, 200, None),
    "one audience missing": ("/every-audience", {"aud": ["orders-api"]}, {}, 401, "audience_mismatch"),
}


@pytest.mark.parametrize("path, claims, headers, status, reason", CHECK_CASES.values(), ids=CHECK_CASES.keys())
def test_route_check(
    proxy_gate: ProxyGate, path: str, claims: dict | None, headers: dict, status: int, reason: str | None
) -> None:
    if claims is not None:
        headers = {**headers, **bearer(proxy_gate.token(**claims))}
    before = proxy_gate.count()

    response = httpx.get(proxy_gate.url + path, headers=headers)

    assert response.status_code == status
    assert proxy_gate.count() == before + (1 if status == 200 else 0)
    if reason is not None:
        assert response.json()["reason"] == reason


def test_insufficient_scope_challenge(proxy_gate: ProxyGate) -> None:
    response = httpx.get(proxy_gate.url + "/scoped", headers=bearer(proxy_gate.token()))

    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="gate", error="insufficient_scope"')
    assert 'scope="admin:all"' in challenge


def test_policy_denial_challenge(proxy_gate: ProxyGate) -> None:
    response = httpx.get(proxy_gate.url + "/policy", headers={**bearer(proxy_gate.token()), "X-Env": "dev"})

    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    assert "scope=" not in response.headers["www-authenticate"]


MATCH_CASES = {
    "glob one segment": ("GET", "/files/report/meta", "gate.test", 200),
    "glob does not cross segments": ("GET", "/files/a/b/meta", "gate.test", 404),
    "exact host": ("GET", "/hosted/x", "api.example.com:8080", 200),
    "host case": ("GET", "/hosted/x", "API.Example.COM", 200),
    "wildcard host": ("GET", "/hosted/x", "one.apps.example.com", 200),
    "wildcard excludes its base": ("GET", "/hosted/x", "apps.example.com", 404),
    "other host": ("GET", "/hosted/x", "evil.example.com", 404),
    "method allowed": ("GET", "/read-only/x", "gate.test", 200),
    "method not listed": ("DELETE", "/read-only/x", "gate.test", 404),
    "prefix whole segment": ("GET", "/adminx", "gate.test", 404),
}


@pytest.mark.parametrize("method, path, host, status", MATCH_CASES.values(), ids=MATCH_CASES.keys())
def test_route_matching(proxy_gate: ProxyGate, method: str, path: str, host: str, status: int) -> None:
    before = proxy_gate.count()

    response = httpx.request(method, proxy_gate.url + path, headers={"Host": host})

    assert response.status_code == status
    assert proxy_gate.count() == before + (1 if status == 200 else 0)


def test_strip_prefix_forwards_rest(proxy_gate: ProxyGate) -> None:
    httpx.get(proxy_gate.url + "/strip/inner/path?x=1")

    assert proxy_gate.upstream.received[-1].raw_path == b"/inner/path"
    assert proxy_gate.upstream.received[-1].query_string == b"x=1"


def test_route_read_timeout_504(proxy_gate: ProxyGate) -> None:
    response = httpx.get(proxy_gate.url + "/short-timeout/slow/x")

    assert response.status_code == 504
    assert response.json()["error"] == "upstream_timeout"


def test_dead_upstream_502(proxy_gate: ProxyGate) -> None:
    response = httpx.get(proxy_gate.url + "/dead/x")

    assert response.status_code == 502
    assert response.json()["error"] == "upstream_unreachable"


async def test_decide_runs_offline(proxy_gate: ProxyGate) -> None:
    snapshot = load_snapshot(proxy_gate.config_path)
    token = proxy_gate.token()
    request = ProxyRequest("GET", b"/public/%2e%2e/scoped", b"", [(b"authorization", f"Bearer {token}".encode())])
    before = proxy_gate.count()

    decision = await decide(snapshot, request)

    assert decision.granted is False
    assert decision.route is not None
    assert decision.route.id == "scoped"
    assert decision.path == "/scoped"
    assert decision.status == 403
    assert decision.reason_id == "insufficient_scope"
    assert decision.token is not None
    assert decision.token.subject == "orders-robot"
    assert proxy_gate.count() == before


async def test_explain_style_request_offline(proxy_gate: ProxyGate) -> None:
    snapshot = load_snapshot(proxy_gate.config_path)
    request = ProxyRequest.create("get", "one.apps.example.com", b"/hosted/x", b"a=1", [(b"Host", b"ignored.example")])

    decision = await decide(snapshot, request)

    assert decision.granted is True
    assert decision.route is not None
    assert decision.route.id == "hosted"
    assert decision.reason_id == "public_route"


def test_upstream_failure_logged(proxy_gate: ProxyGate, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="gate")

    httpx.get(proxy_gate.url + "/dead/logged")

    failures = [record for record in caplog.records if getattr(record, "event", None) == "upstream_error"]
    assert failures
    assert any(getattr(record, "reason_id", None) == "upstream_unreachable" for record in failures)


def test_logs_never_contain_token(proxy_gate: ProxyGate, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    tokens = [proxy_gate.token(), proxy_gate.token(aud="other-api"), proxy_gate.token(scope="x")]

    for token in tokens:
        for path in ("/admin/x", "/policy", "/scoped", "/maybe"):
            httpx.get(proxy_gate.url + path, headers=bearer(token))

    text = "\n".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
    assert "proxy_decision" in text
    for token in tokens:
        assert token not in text
        assert token.split(".")[2] not in text


def test_timeout_mid_response_truncates(proxy_gate: ProxyGate) -> None:
    """A response that stalls after it started cannot become a 504, so the client sees it cut short."""
    response = send_raw(
        proxy_gate.url, b"GET /short-timeout/stall HTTP/1.1\r\nHost: gate.test\r\nConnection: close\r\n\r\n"
    )

    assert response.status == 200
    assert response.header("transfer-encoding") == ["chunked"]
    assert b"first part" in response.body
    assert b"too late" not in response.body
    assert not response.body.endswith(b"0\r\n\r\n")
