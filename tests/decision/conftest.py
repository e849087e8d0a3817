"""A gate with a decision endpoint per ingress convention, and a recording upstream."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
import yaml

from gate.app import GateApp, create_app
from gate.config.compile import load_snapshot
from gate.keys.generate import generate_private_key, write_private_key
from gate.keys.signing import PrivateKey
from tests.conftest import AUDIENCE, KID, USERNAME, sign_access_token
from tests.proxy.conftest import POLICY
from tests.servers import RecordingUpstream, free_port, running

NGINX_PATH = "/auth/nginx"
TRAEFIK_PATH = "/auth/traefik"
ENVOY_PATH = "/auth/envoy"
UNTRUSTED_PATH = "/auth/elsewhere"
IDENTITY_CLAIMS = {"X-Gate-Tenant": "tenant"}


def decision_routes(upstream: str) -> list[dict[str, Any]]:
    """Routes in evaluation order, one per kind of check."""
    protected = {"audience": [AUDIENCE]}
    return [
        {"id": "public", "path_prefix": "/public/", "upstream": upstream, "auth": {"mode": "public"}},
        {"id": "admin", "path_prefix": "/admin", "upstream": upstream, "auth": protected},
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
            "auth": {**protected, "claims": {"tenant": "acme"}},
        },
        {"id": "policy", "path_prefix": "/policy", "upstream": upstream, "auth": {**protected, "policy": POLICY}},
        {
            "id": "read-only",
            "path_prefix": "/read-only",
            "methods": ["GET"],
            "hosts": ["api.example.com"],
            "upstream": upstream,
            "auth": protected,
        },
    ]


def decision_config(issuer: str, upstream: str) -> dict[str, Any]:
    local = ["127.0.0.1/32"]
    return {
        "issuer": issuer,
        "signing_keys": [{"kid": KID, "private_key_file": "signing-key.pem"}],
        "routes": decision_routes(upstream),
        "identity_headers": {"claims": IDENTITY_CLAIMS},
        "decision_endpoints": [
            {"path": NGINX_PATH, "ingress": "nginx", "trusted_ingresses": local},
            {"path": TRAEFIK_PATH, "ingress": "traefik", "trusted_ingresses": local},
            {"path": ENVOY_PATH, "ingress": "envoy", "trusted_ingresses": local},
            {"path": UNTRUSTED_PATH, "ingress": "traefik", "trusted_ingresses": ["10.0.0.0/8", "::1/128"]},
        ],
    }


@dataclass
class DecisionGate:
    url: str
    app: GateApp
    upstream: RecordingUpstream
    upstream_url: str
    private_key: PrivateKey
    config_path: Path

    @property
    def issuer(self) -> str:
        return self.url

    def token(self, **overrides: object) -> str:
        """A gate-signed access token with claims the test chooses; ``None`` drops a claim."""
        return sign_access_token(self.private_key, self.issuer, {"scope": "orders:read", **overrides})

    def foreign_token(self) -> str:
        """A token with gate's kid and claims, signed by a key gate does not have."""
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": USERNAME, "aud": AUDIENCE, "iat": now, "exp": now + 120}
        other = generate_private_key("ES256")
        return jwt.encode(claims, other, algorithm="ES256", headers={"typ": "at+jwt", "kid": KID})


@pytest.fixture(scope="package")
def decision_gate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DecisionGate]:
    directory = tmp_path_factory.mktemp("decision-gate")
    private_key = generate_private_key("ES256")
    write_private_key(private_key, directory / "signing-key.pem")
    upstream = RecordingUpstream()

    with running(upstream) as upstream_url:
        port = free_port()
        gate_url = f"http://127.0.0.1:{port}"
        config_path = directory / "gate.yaml"
        config_path.write_text(yaml.safe_dump(decision_config(gate_url, upstream_url), sort_keys=False))

        app = create_app(load_snapshot(config_path))
        with running(app, port):
            yield DecisionGate(gate_url, app, upstream, upstream_url, private_key, config_path)
