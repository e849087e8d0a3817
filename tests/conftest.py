"""Shared fixtures: a real gate in front of a real recording upstream."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
import yaml

from gate.app import create_app
from gate.config.compile import load_snapshot
from gate.keys.generate import generate_private_key, write_private_key
from gate.keys.signing import PrivateKey
from gate.oauth.app_tokens import generate_app_token, hash_app_token
from tests.servers import RecordingUpstream, free_port, running

CLIENT_ID = "orders-client"
USERNAME = "orders-robot"
AUDIENCE = "orders-api"
KID = "test-key-1"
OTHER_USERNAME = "billing-robot"  # a service account the client does not list
OTHER_APP_TOKEN = "billing-robot-app-token-used-only-in-tests"


def sign_access_token(private_key: PrivateKey, issuer: str, overrides: dict[str, object]) -> str:
    """Sign an access token as gate would, for the test client; an override of ``None`` drops that claim."""
    now = int(time.time())
    claims = {
        "iss": issuer,
        "sub": USERNAME,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 120,
        "jti": f"test-{time.monotonic_ns()}",
        "client_id": CLIENT_ID,
        **overrides,
    }
    claims = {key: value for key, value in claims.items() if value is not None}
    return jwt.encode(claims, private_key, algorithm="ES256", headers={"typ": "at+jwt", "kid": KID})


@dataclass
class GateSetup:
    """A running gate, its upstream, and what the test needs to talk to them."""

    url: str
    upstream: RecordingUpstream
    upstream_url: str
    config_path: Path
    app_token: str
    private_key: PrivateKey

    @property
    def token_url(self) -> str:
        return self.url + "/application/o/token/"

    @property
    def issuer(self) -> str:
        return self.url


UPSTREAM_ENGINE = os.environ.get("GATE_TEST_UPSTREAM_ENGINE", "native")
"""The forwarding engine of the test gates: run the suite with ``GATE_TEST_UPSTREAM_ENGINE=aiohttp`` for the other."""


def base_config(gate_url: str, upstream_url: str, app_token: str) -> dict[str, Any]:
    """A config with one client, one service account, a protected and a public route."""
    return {
        "issuer": gate_url,
        "signing_keys": [{"kid": KID, "private_key_file": "signing-key.pem"}],
        "service_accounts": [
            {"username": USERNAME, "token_hashes": [hash_app_token(app_token)]},
            {"username": OTHER_USERNAME, "token_hashes": [hash_app_token(OTHER_APP_TOKEN)]},
        ],
        "clients": [
            {
                "client_id": CLIENT_ID,
                "service_accounts": [USERNAME],
                "audience": [AUDIENCE],
                "scopes": ["orders:read", "orders:write"],
                "token_lifetime": 120,
            }
        ],
        "routes": [
            {"id": "public", "path_prefix": "/public/", "upstream": upstream_url, "auth": {"mode": "public"}},
            {"id": "orders", "path_prefix": "/orders", "upstream": upstream_url, "auth": {"audience": [AUDIENCE]}},
            {
                "id": "dead",
                "path_prefix": "/dead/",
                "upstream": f"http://127.0.0.1:{free_port()}",
                "auth": {"mode": "public"},
            },
        ],
        "upstream_client": {"read_timeout": 0.5, "engine": UPSTREAM_ENGINE},
    }


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GateSetup]:
    """gate under uvicorn in front of a recording upstream, both on 127.0.0.1."""
    directory = tmp_path_factory.mktemp("gate")
    private_key = generate_private_key("ES256")
    write_private_key(private_key, directory / "signing-key.pem")
    app_token = generate_app_token()
    upstream = RecordingUpstream()

    with running(upstream) as upstream_url:
        port = free_port()
        gate_url = f"http://127.0.0.1:{port}"
        config_path = directory / "gate.yaml"
        config_path.write_text(yaml.safe_dump(base_config(gate_url, upstream_url, app_token)))

        with running(create_app(load_snapshot(config_path)), port):
            yield GateSetup(gate_url, upstream, upstream_url, config_path, app_token, private_key)
