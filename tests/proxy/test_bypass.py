"""Crafted request targets, sent as raw bytes, never reach a protected route."""

from __future__ import annotations

import base64
import json

import pytest

from tests.proxy.conftest import ProxyGate
from tests.proxy.upstreams import send_raw


def raw_get(target: bytes, *extra_headers: bytes) -> bytes:
    headers = b"".join(header + b"\r\n" for header in extra_headers)
    return b"GET " + target + b" HTTP/1.1\r\nHost: gate.test\r\n" + headers + b"Connection: close\r\n\r\n"


def admin_requests(gate: ProxyGate) -> list[bytes]:
    return [received.raw_path for received in gate.upstream.received if b"admin" in received.raw_path.lower()]


# Each target, once normalised, is /admin (401 without a token) or is rejected
# with 400. None may be forwarded as a request to the public route.
BYPASS_TARGETS = {
    "dot-dot segment": (b"/public/../admin", 401),
    "encoded dot-dot": (b"/public/%2e%2e/admin", 401),
    "upper-case encoded dot-dot": (b"/public/%2E%2E/admin", 401),
    "half-encoded dot-dot": (b"/public/.%2e/admin", 401),
    "double slash": (b"//admin", 401),
    "empty segment then dot-dot": (b"/public//../admin", 401),
    "encoded unreserved letters": (b"/%61dmin", 401),
    "dot segment": (b"/public/./../admin", 401),
    "encoded slash": (b"/public/..%2fadmin", 400),
    "encoded slash lower case": (b"/public%2f..%2fadmin", 400),
    "encoded backslash": (b"/public/..%5cadmin", 400),
    "raw backslash": (b"/public/..\\admin", 400),
    "double encoded dot-dot": (b"/public/%252e%252e/admin", 400),
    "double encoding with escaped digits": (b"/public/%25%32%65%25%32%65/admin", 400),
    "double encoded slash with escaped digits": (b"/public%25%32%66..%25%32%66admin", 400),
    "encoded percent": (b"/admin%25", 400),
    "servlet path parameter": (b"/public/..;/admin", 400),
    "encoded NUL": (b"/public/%00/../admin", 400),
    "climbs above root": (b"/public/../../admin", 400),
    "malformed escape": (b"/public/%zz/../admin", 400),
    "non-ASCII byte": (b"/public/\xc0\xae\xc0\xae/admin", 400),
}


@pytest.mark.parametrize("target, status", BYPASS_TARGETS.values(), ids=BYPASS_TARGETS.keys())
def test_bypass_target_never_forwarded(proxy_gate: ProxyGate, target: bytes, status: int) -> None:
    before = proxy_gate.count()

    response = send_raw(proxy_gate.url, raw_get(target))

    assert response.status == status
    assert proxy_gate.count() == before
    assert admin_requests(proxy_gate) == []


def test_bypass_401_names_token_check(proxy_gate: ProxyGate) -> None:
    response = send_raw(proxy_gate.url, raw_get(b"/public/%2e%2e/admin"))

    assert response.header("www-authenticate") == ['Bearer realm="gate"']
    assert b'"reason":"missing_token"' in response.body


@pytest.mark.parametrize("target", [b"/PUBLIC/status", b"/ADMIN", b"/Public/status"])
def test_path_case_matters(proxy_gate: ProxyGate, target: bytes) -> None:
    before = proxy_gate.count()

    response = send_raw(proxy_gate.url, raw_get(target))

    assert response.status == 404
    assert proxy_gate.count() == before


def test_absolute_form_cannot_reach_admin(proxy_gate: ProxyGate) -> None:
    before = proxy_gate.count()

    response = send_raw(proxy_gate.url, raw_get(b"http://upstream.invalid/admin"))

    assert response.status in (400, 401)
    assert proxy_gate.count() == before


def test_absolute_form_keeps_upstream_host(proxy_gate: ProxyGate) -> None:
    """gate cannot resolve upstream.invalid; a 200 shows the configured upstream answered."""
    before = proxy_gate.count()

    response = send_raw(proxy_gate.url, raw_get(b"http://upstream.invalid/public/absolute"))

    if response.status == 400:  # an HTTP parser may reject absolute form outright
        assert proxy_gate.count() == before
        return
    assert response.status == 200
    assert proxy_gate.upstream.received[-1].raw_path == b"/public/absolute"


def test_fragment_never_changes_target(proxy_gate: ProxyGate) -> None:
    before = proxy_gate.count()

    response = send_raw(proxy_gate.url, raw_get(b"/public/x#/../../admin"))

    assert response.status in (200, 400)
    assert admin_requests(proxy_gate) == []
    if response.status == 200:
        assert proxy_gate.count() == before + 1
        assert proxy_gate.upstream.received[-1].raw_path == b"/public/x"


def test_normalised_path_is_forwarded(proxy_gate: ProxyGate) -> None:
    response = send_raw(proxy_gate.url, raw_get(b"/public/a/./b//c/../%7Euser?q=%2F.."))

    assert response.status == 200
    assert proxy_gate.upstream.received[-1].raw_path == b"/public/a/b/~user"
    assert proxy_gate.upstream.received[-1].query_string == b"q=%2F.."


def test_two_host_headers_rejected(proxy_gate: ProxyGate) -> None:
    before = proxy_gate.count()

    response = send_raw(proxy_gate.url, b"GET /public/x HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n")

    assert response.status == 400
    assert proxy_gate.count() == before


CRAFTED_HEADERS = {
    "kid not a string": {"alg": "ES256", "kid": 5, "typ": "at+jwt"},
    "critical extension": {"alg": "ES256", "crit": ["exp"], "typ": "at+jwt"},
    "header not an object": ["ES256"],
}


@pytest.mark.parametrize("header", CRAFTED_HEADERS.values(), ids=CRAFTED_HEADERS.keys())
def test_crafted_token_header_is_invalid_token(proxy_gate: ProxyGate, header: object) -> None:
    encode = lambda value: base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()  # noqa: E731
    token = f"{encode(header)}.{encode({'sub': 'x'})}.c2lnbmF0dXJl"
    before = proxy_gate.count()

    response = send_raw(proxy_gate.url, raw_get(b"/admin", f"Authorization: Bearer {token}".encode()))

    assert response.status == 401
    assert b'"error":"invalid_token"' in response.body
    assert proxy_gate.count() == before


@pytest.mark.parametrize("target", [b"//application/o/token/", b"/application/o/x/../token/", b"/./healthz"])
def test_disguised_gate_endpoint_not_proxied(proxy_gate: ProxyGate, target: bytes) -> None:
    before = proxy_gate.count()

    response = send_raw(proxy_gate.url, raw_get(target))

    assert response.status == 400
    assert b"canonical path" in response.body
    assert proxy_gate.count() == before
