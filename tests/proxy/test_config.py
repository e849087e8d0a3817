"""The proxy parts of the config: errors name the field and line; forwarding trust."""

from __future__ import annotations

from pathlib import Path

import pytest

from gate.config.compile import load_snapshot
from gate.config.model import ForwardingConfig
from gate.errors import ConfigError
from gate.keys.generate import generate_private_key, write_private_key
from gate.proxy.handler import HeaderBuilders
from gate.proxy.headers import ForwardedHeaders

HEAD = """issuer: "https://gate.test"
signing_keys:
  - kid: "k1"
    private_key_file: "key.pem"
routes:
"""


def load(tmp_path: Path, routes: str) -> ConfigError | None:
    write_private_key(generate_private_key("ES256"), tmp_path / "key.pem")
    path = tmp_path / "gate.yaml"
    path.write_text(HEAD + routes)
    try:
        load_snapshot(path)
    except ConfigError as error:
        return error
    return None


def test_policy_syntax_error_names_field_and_line(tmp_path: Path) -> None:
    routes = """  - id: "orders"
    path_prefix: "/orders"
    upstream: "http://127.0.0.1:9"
    auth:
      audience: ["orders-api"]
      policy: 'claims.sub == '
"""
    error = load(tmp_path, routes)

    assert error is not None
    assert error.problems[0].path == "routes[0].auth.policy"
    assert error.problems[0].line == 11
    assert "invalid CEL expression" in error.problems[0].message


ROUTE_ERRORS = {
    "prefix and glob": ('path_prefix: "/a"\n    path_glob: "/a/*"', "exactly one of"),
    "neither prefix nor glob": ('hosts: ["a.example"]', "exactly one of"),
    "strip with glob": ('path_glob: "/a/*"\n    strip_prefix: true', "needs 'path_prefix'"),
    "bad method": ('path_prefix: "/a"\n    methods: ["FETCH"]', "not an HTTP method"),
    "bad host": ('path_prefix: "/a"\n    hosts: ["a..b"]', "not a host name"),
    "unknown issuer": (
        'path_prefix: "/a"\n    auth: {audience: ["x"], issuers: ["https://other.test"]}',
        "trusted issuer",
    ),
    "optional without audience": ('path_prefix: "/a"\n    auth: {mode: optional}', "needs at least one 'audience'"),
    "scope with space": ('path_prefix: "/a"\n    auth: {audience: ["x"], scopes: ["a b"]}', "not a valid scope"),
}


@pytest.mark.parametrize("fields, message", ROUTE_ERRORS.values(), ids=ROUTE_ERRORS.keys())
def test_route_config_error(tmp_path: Path, fields: str, message: str) -> None:
    routes = f'  - id: "r"\n    upstream: "http://127.0.0.1:9"\n    {fields}\n'
    if "auth:" not in fields:
        routes += "    auth: {mode: public}\n"

    error = load(tmp_path, routes)

    assert error is not None
    assert any(message in problem.message for problem in error.problems), error.render()


def test_route_without_auth_rejected(tmp_path: Path) -> None:
    error = load(tmp_path, '  - id: "r"\n    upstream: "http://127.0.0.1:9"\n    path_prefix: "/a"\n')

    assert error is not None
    assert error.problems[0].path == "routes[0].auth"
    assert error.problems[0].message == "required key is missing"


def test_gate_issuer_accepted_by_default(tmp_path: Path) -> None:
    routes = '  - id: "r"\n    upstream: "http://127.0.0.1:9"\n    path_prefix: "/a"\n    auth: {audience: ["x"]}\n'
    write_private_key(generate_private_key("ES256"), tmp_path / "key.pem")
    (tmp_path / "gate.yaml").write_text(HEAD + routes)

    snapshot = load_snapshot(tmp_path / "gate.yaml")

    assert snapshot.routes.routes[0].requirements.issuers == frozenset({"https://gate.test"})


TRUST_CASES = {
    "untrusted peer": ("192.0.2.7", b"192.0.2.7", b"http", b"gate.test"),
    "trusted peer": ("10.0.0.5", b"203.0.113.9, 10.0.0.5", b"https", b"api.example.com"),
    "trusted IPv6 peer": ("fd00::1", b"203.0.113.9, fd00::1", b"https", b"api.example.com"),
}


@pytest.mark.parametrize("peer, chain, proto, host", TRUST_CASES.values(), ids=TRUST_CASES.keys())
def test_forwarded_headers_trust(peer: str, chain: bytes, proto: bytes, host: bytes) -> None:
    forwarded = ForwardedHeaders(ForwardingConfig(trusted_proxies=["10.0.0.0/8", "fd00::/8"]))
    incoming = [
        (b"host", b"gate.test"),
        (b"x-forwarded-for", b"203.0.113.9"),
        (b"x-forwarded-proto", b"https"),
        (b"x-forwarded-host", b"api.example.com"),
    ]

    added = dict(forwarded.build(incoming, peer, "http"))

    assert added[b"x-forwarded-for"] == chain
    assert added[b"x-forwarded-proto"] == proto
    assert added[b"x-forwarded-host"] == host


@pytest.mark.parametrize(
    "sent, kept", [(b"abc-123", True), (b"bad id\x01", False), (b"x" * 200, False)], ids=["valid", "control", "long"]
)
def test_request_id_kept_when_configured(sent: bytes, kept: bool) -> None:
    forwarded = ForwardedHeaders(ForwardingConfig(keep_request_id=True))

    request_id = forwarded.request_id([(b"x-request-id", sent)])

    assert (request_id == sent.decode("latin-1")) is kept


def test_header_builders_follow_reload(tmp_path: Path) -> None:
    routes = '  - id: "r"\n    upstream: "http://127.0.0.1:9"\n    path_prefix: "/a"\n    auth: {mode: public}\n'
    write_private_key(generate_private_key("ES256"), tmp_path / "key.pem")
    (tmp_path / "gate.yaml").write_text(HEAD + routes)
    first = load_snapshot(tmp_path / "gate.yaml")
    (tmp_path / "gate.yaml").write_text(HEAD + routes + "identity_headers: {subject: X-Caller}\n")
    second = load_snapshot(tmp_path / "gate.yaml")
    builders = HeaderBuilders()

    before = builders.of(first)
    again = builders.of(first)
    after = builders.of(second)

    assert again is before
    assert after is not before
    assert after.identity.is_reserved(b"x_caller")
    assert not before.identity.is_reserved(b"x-caller")
