"""A gate with one client per credential form, under uvicorn on 127.0.0.1."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import httpx
import pytest
import yaml
from argon2 import PasswordHasher

from gate.app import create_app
from gate.config.compile import load_snapshot
from gate.keys.generate import generate_private_key, write_private_key
from gate.oauth.app_tokens import hash_app_token
from gate.oauth.secret_hashes import hash_secret
from tests.servers import RecordingUpstream, free_port, running

KID = "oauth-test-key"
AUDIENCE = "orders-api"

ROBOT = "orders-robot"
ROBOT_TOKEN = "robot-app-token-~~~???>>>-used-only-in-tests-1"  # base64 of it has '+' and '/'
STRANGER = "billing-robot"  # a service account that no client below lists
STRANGER_TOKEN = "billing-robot-app-token-used-only-in-tests"

ACCOUNT_CLIENT = "orders-client"  # service_account and encoded_pair, by default
PAIR_CLIENT = "pair-only-client"  # encoded_pair only
SECRET_CLIENT = "reports-client"  # client_secret_basic and client_secret_post, two secrets
SECRET_A = "reports-secret-a-5Qk2WcVb8sT1mN0pX7yZ"
SECRET_B = "reports-secret-b-Lr4Hd9Fg2Jk6Zx3Cv8Bn"
BASIC_CLIENT = "basic-only-client"  # client_secret_basic, client_credentials only
BASIC_SECRET = "p:ss wörd+%/&=?secret-used-only-in-tests"  # needs form-urlencoding in Basic
BASIC_ASCII_SECRET = "a+b%2Bc:d=e-ascii-secret-used-only-in-tests"  # changed by form-urldecoding
POST_CLIENT = "post-only-client"  # client_secret_post, may not revoke
POST_SECRET = "post-only-secret-used-only-in-tests"
SLOW_CLIENT = "slow-hash-client"  # operator-chosen secrets under PBKDF2 and argon2id
PBKDF2_SECRET = "tr0ub4dor&3"
ARGON2_SECRET = "correct horse battery staple"

ALL_SECRETS = (
    ROBOT_TOKEN,
    STRANGER_TOKEN,
    SECRET_A,
    SECRET_B,
    BASIC_SECRET,
    BASIC_ASCII_SECRET,
    POST_SECRET,
    PBKDF2_SECRET,
    ARGON2_SECRET,
)


def encoded_pair(username: str, token: str) -> str:
    return base64.b64encode(f"{username}:{token}".encode()).decode()


def basic_header(client_id: str, secret: str, scheme: str = "Basic") -> str:
    """An RFC 6749 section 2.3.1 Basic header: form-urlencode each part, then base64."""
    joined = f"{quote_plus(client_id)}:{quote_plus(secret)}"
    return f"{scheme} {base64.b64encode(joined.encode()).decode()}"


def oauth_config(gate_url: str, upstream_url: str, rate_limit: dict[str, Any] | None = None) -> dict[str, Any]:
    fast_argon2 = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
    secret_client = {"secret_hashes": [hash_secret(SECRET_A), hash_secret(SECRET_B)]}
    return {
        "issuer": gate_url,
        "signing_keys": [{"kid": KID, "private_key_file": "signing-key.pem"}],
        "service_accounts": [
            {"username": ROBOT, "token_hashes": [hash_app_token(ROBOT_TOKEN)]},
            {"username": STRANGER, "token_hashes": [hash_app_token(STRANGER_TOKEN)]},
        ],
        "clients": [
            {
                "client_id": ACCOUNT_CLIENT,
                "service_accounts": [ROBOT],
                "audience": [AUDIENCE],
                "scopes": ["orders:read", "orders:write"],
                "token_lifetime": 120,
            },
            {
                "client_id": PAIR_CLIENT,
                "service_accounts": [ROBOT],
                "auth_methods": ["encoded_pair"],
                "audience": [AUDIENCE],
            },
            {
                "client_id": SECRET_CLIENT,
                **secret_client,
                "subject": "svc-reports",
                "audience": ["reports-api", AUDIENCE],
                "scopes": ["reports:read"],
                "introspection": True,
                "revocation": "any",
            },
            {
                "client_id": BASIC_CLIENT,
                "secret_hashes": [hash_secret(BASIC_SECRET), hash_secret(BASIC_ASCII_SECRET)],
                "auth_methods": ["client_secret_basic"],
                "grant_types": ["client_credentials"],
                "audience": [AUDIENCE],
            },
            {
                "client_id": POST_CLIENT,
                "secret_hashes": [hash_secret(POST_SECRET)],
                "auth_methods": ["client_secret_post"],
                "audience": [AUDIENCE],
                "revocation": "none",
            },
            {
                "client_id": SLOW_CLIENT,
                "secret_hashes": [
                    hash_secret(PBKDF2_SECRET, "pbkdf2", iterations=10_000),
                    "argon2:" + fast_argon2.hash(ARGON2_SECRET),
                ],
                "audience": [AUDIENCE],
            },
        ],
        "routes": [
            {"id": "orders", "path_prefix": "/orders", "upstream": upstream_url, "auth": {"audience": [AUDIENCE]}}
        ],
        "token_endpoint": {
            "rate_limit": rate_limit or {"max_failures_per_address": 10_000, "max_failures_per_client_address": 10_000}
        },
    }


@dataclass
class OAuthGate:
    """A running gate with the clients above, and its upstream."""

    url: str
    upstream: RecordingUpstream

    @property
    def token_url(self) -> str:
        return self.url + "/application/o/token/"

    @property
    def introspection_url(self) -> str:
        return self.url + "/application/o/introspect/"

    @property
    def revocation_url(self) -> str:
        return self.url + "/application/o/revoke/"


class Decisions(logging.Handler):
    """Every decision record of gate's OAuth endpoints, in order."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def last(self) -> logging.LogRecord:
        return self.records[-1]


def start_gate(directory: Path, rate_limit: dict[str, Any] | None = None) -> Iterator[OAuthGate]:
    write_private_key(generate_private_key("ES256"), directory / "signing-key.pem")
    upstream = RecordingUpstream()

    with running(upstream) as upstream_url:
        port = free_port()
        gate_url = f"http://127.0.0.1:{port}"
        config_path = directory / "gate.yaml"
        config_path.write_text(yaml.safe_dump(oauth_config(gate_url, upstream_url, rate_limit), allow_unicode=True))

        with running(create_app(load_snapshot(config_path)), port):
            yield OAuthGate(gate_url, upstream)


@pytest.fixture(scope="module")
def oauth_gate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OAuthGate]:
    yield from start_gate(tmp_path_factory.mktemp("oauth-gate"))


@pytest.fixture
def decisions() -> Iterator[Decisions]:
    """The decision records logged while the test runs."""
    handler = Decisions()
    logger = logging.getLogger("gate.oauth.decision")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def post(url: str, data: dict[str, str] | None = None, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(url, data=data, headers=headers)
