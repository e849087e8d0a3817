"""A gate with one route per rule under test, in front of a scripted upstream."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from gate.app import create_app
from gate.config.compile import load_snapshot
from gate.keys.generate import generate_private_key, write_private_key
from gate.keys.signing import PrivateKey
from tests.conftest import AUDIENCE, CLIENT_ID, KID, UPSTREAM_ENGINE, sign_access_token
from tests.proxy.upstreams import ScriptedUpstream
from tests.servers import free_port, running

POLICY = 'request.method == "GET" && claims.sub.startsWith("orders-") && request.headers["x-env"] == "prod"'


def proxy_routes(upstream: str) -> list[dict[str, Any]]:
    """Routes in evaluation order; each test names the one it exercises."""
    protected = {"audience": [AUDIENCE]}
    return [
        {"id": "public", "path_prefix": "/public/", "upstream": upstream, "auth": {"mode": "public"}},
        {"id": "ws", "path_prefix": "/ws", "upstream": upstream, "auth": {**protected, "scopes": ["orders:read"]}},
        {"id": "admin", "path_prefix": "/admin", "upstream": upstream, "auth": protected},
        {"id": "optional", "path_prefix": "/maybe", "upstream": upstream, "auth": {**protected, "mode": "optional"}},
        {
            "id": "scoped",
            "path_prefix": "/scoped",
            "upstream": upstream,
            "auth": {**protected, "scopes": ["admin:all"]},
        },
        {
            "id": "claims",
            "path_prefix": "/claims",
            "upstream": upstream,
            "auth": {**protected, "claims": {"client_id": CLIENT_ID, "tenant": ["acme", "beta"]}},
        },
        {"id": "policy", "path_prefix": "/policy", "upstream": upstream, "auth": {**protected, "policy": POLICY}},
        {
            "id": "every-audience",
            "path_prefix": "/every-audience",
            "upstream": upstream,
            "auth": {"audience": [AUDIENCE, "second-api"], "audience_match": "all"},
        },
        {"id": "glob", "path_glob": "/files/*/meta", "upstream": upstream, "auth": {"mode": "public"}},
        {
            "id": "hosted",
            "path_prefix": "/hosted",
            "hosts": ["api.example.com", "*.apps.example.com"],
            "upstream": upstream,
            "auth": {"mode": "public"},
        },
        {
            "id": "read-only",
            "path_prefix": "/read-only",
            "methods": ["GET"],
            "upstream": upstream,
            "auth": {"mode": "public"},
        },
        {
            "id": "strip",
            "path_prefix": "/strip/",
            "strip_prefix": True,
            "upstream": upstream,
            "auth": {"mode": "public"},
        },
        {
            "id": "with-authorization",
            "path_prefix": "/with-authorization",
            "forward_authorization": True,
            "upstream": upstream,
            "auth": protected,
        },
        {
            "id": "short-timeout",
            "path_prefix": "/short-timeout/",
            "read_timeout": 0.3,
            "upstream": upstream,
            "auth": {"mode": "public"},
        },
        {
            "id": "dead",
            "path_prefix": "/dead/",
            "upstream": f"http://127.0.0.1:{free_port()}",
            "auth": {"mode": "public"},
        },
    ]


@dataclass
class ProxyGate:
    url: str
    upstream: ScriptedUpstream
    private_key: PrivateKey
    config_path: Path

    @property
    def issuer(self) -> str:
        return self.url

    def token(self, **overrides: object) -> str:
        """A gate-signed access token for the test client, with claims the test chooses."""
        return sign_access_token(self.private_key, self.issuer, {"scope": "orders:read orders:write", **overrides})

    def count(self) -> int:
        return len(self.upstream.received)


def proxy_config(gate_url: str, upstream_url: str) -> dict[str, Any]:
    return {
        "issuer": gate_url,
        "signing_keys": [{"kid": KID, "private_key_file": "signing-key.pem"}],
        "routes": proxy_routes(upstream_url),
        "upstream_client": {"read_timeout": 2.0, "engine": UPSTREAM_ENGINE},
        "identity_headers": {"claims": {"X-Gate-Roles": "roles", "X-Gate-Tenant": "tenant"}},
        "forwarding": {"trusted_proxies": ["10.0.0.0/8"]},
    }


@pytest.fixture(scope="package")
def proxy_gate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyGate]:
    directory = tmp_path_factory.mktemp("proxy-gate")
    private_key = generate_private_key("ES256")
    write_private_key(private_key, directory / "signing-key.pem")
    upstream = ScriptedUpstream()

    with running(upstream) as upstream_url:
        port = free_port()
        gate_url = f"http://127.0.0.1:{port}"
        config_path = directory / "gate.yaml"
        config_path.write_text(yaml.safe_dump(proxy_config(gate_url, upstream_url), sort_keys=False))

        with running(create_app(load_snapshot(config_path)), port):
            yield ProxyGate(gate_url, upstream, private_key, config_path)
