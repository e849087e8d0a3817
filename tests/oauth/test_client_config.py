"""Client config: credential forms, secret hashes and the choice of one method per request."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from gate.config.compile import load_snapshot
from gate.config.snapshot import Client
from gate.errors import ConfigError, OAuthError
from gate.keys.generate import generate_private_key, write_private_key
from gate.oauth import client_auth
from gate.oauth.client_auth import select_method
from gate.oauth.request import BasicCredentials, TokenRequest
from gate.oauth.secret_hashes import decoy_hash, hash_secret, secret_matches

SHA = hash_secret("s")


def client(**fields: Any) -> dict[str, Any]:
    return {"client_id": "c", "audience": ["api"], **fields}


def write_config(directory: Path, clients: list[dict[str, Any]]) -> Path:
    write_private_key(generate_private_key("ES256"), directory / "key.pem")
    config = {
        "issuer": "http://127.0.0.1:1",
        "signing_keys": [{"kid": "k", "private_key_file": "key.pem"}],
        "service_accounts": [{"username": "robot", "token_hashes": [SHA]}],
        "clients": clients,
    }
    path = directory / "gate.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


CONFIG_ERRORS = {
    "no credential": (client(), "clients[0]", "no credential"),
    "pair and post together": (
        client(service_accounts=["robot"], secret_hashes=[SHA]),
        "clients[0].auth_methods",
        "encoded_pair and client_secret_post",
    ),
    "secret form without hashes": (
        client(auth_methods=["client_secret_basic"]),
        "clients[0].secret_hashes",
        "required by auth_methods",
    ),
    "account form without accounts": (
        client(auth_methods=["encoded_pair"], secret_hashes=[SHA]),
        "clients[0].service_accounts",
        "required by auth_methods",
    ),
    "bad hash format": (client(secret_hashes=["md5:abc"]), "clients[0].secret_hashes", "gate hash-token"),
    "unknown auth method": (client(secret_hashes=[SHA], auth_methods=["magic"]), "clients[0].auth_methods[0]", ""),
    "unknown grant type": (client(secret_hashes=[SHA], grant_types=["implicit"]), "clients[0].grant_types[0]", ""),
}


@pytest.mark.parametrize("entry, path, message", CONFIG_ERRORS.values(), ids=CONFIG_ERRORS.keys())
def test_client_config_errors(tmp_path: Path, entry: dict, path: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_snapshot(write_config(tmp_path, [entry]))

    problems = [problem for problem in raised.value.problems if problem.path == path]
    assert problems, raised.value.render()
    assert message in problems[0].message
    assert problems[0].line is not None


def test_client_defaults(tmp_path: Path) -> None:
    snapshot = load_snapshot(
        write_config(tmp_path, [client(secret_hashes=[SHA]), client(client_id="a", service_accounts=["robot"])])
    )

    assert snapshot.clients["c"].auth_methods == ("client_secret_basic", "client_secret_post")
    assert snapshot.clients["c"].subject == "c"
    assert snapshot.clients["c"].grant_types == {"client_credentials", "password"}
    assert snapshot.clients["c"].introspection is False
    assert snapshot.clients["c"].revocation == "own"
    assert snapshot.clients["a"].auth_methods == ("service_account", "encoded_pair")
    assert SHA not in repr(snapshot.clients["c"])


class OverlappingMethod:
    """A stand-in for a second form that reads client_secret, as the JWT assertion form will."""

    name: ClassVar[str] = "overlapping"
    channel: ClassVar[str] = "client_secret"
    metadata_name: ClassVar[str] = "client_secret_post"

    def applies(self, request: TokenRequest) -> bool:
        return request.has("client_secret")

    async def authenticate(self, request: TokenRequest, client: Client | None, context: object) -> object:
        raise AssertionError("not called")


def make_client(*auth_methods: str) -> Client:
    return Client("c", frozenset(), ("api",), frozenset(), 60, auth_methods=auth_methods)


def test_two_accepted_forms_are_ambiguous(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(client_auth.METHODS, "overlapping", OverlappingMethod())
    request = TokenRequest({"client_id": "c", "client_secret": "x"}, None, "127.0.0.1")

    with pytest.raises(OAuthError) as raised:
        select_method(request, make_client("client_secret_post", "overlapping"))

    assert raised.value.error == "invalid_request"
    assert raised.value.reason_id == "ambiguous_credentials"
    assert select_method(request, make_client("overlapping")).name == "overlapping"


def test_basic_credentials_repr_masks_secret() -> None:
    credentials = BasicCredentials("c", "hunter2-secret")

    assert "hunter2-secret" not in repr(credentials)
    assert "hunter2-secret" not in repr(TokenRequest({}, credentials, "127.0.0.1"))


@pytest.mark.parametrize("scheme", ["sha256", "pbkdf2", "argon2"])
async def test_secret_hash_schemes(scheme: str) -> None:
    stored = hash_secret("right", scheme, iterations=10_000)  # type: ignore[arg-type]

    assert await secret_matches("right", [stored])
    assert not await secret_matches("wrong", [stored])
    assert await secret_matches("right", [hash_secret("other"), stored])


def test_decoy_uses_slowest_scheme() -> None:
    assert decoy_hash([SHA]).startswith("sha256:")
    assert decoy_hash([SHA, hash_secret("x", "pbkdf2", iterations=20_000)]).startswith("pbkdf2:sha256:20000:")
    assert decoy_hash([hash_secret("x", "argon2")]).startswith("argon2:$argon2id$")


def gate_hash_token(*arguments: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gate", "hash-token", *arguments],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )


async def test_hash_token_client_secret() -> None:
    result = gate_hash_token("--client-secret")
    secret = result.stdout.splitlines()[0].rsplit(" ", 1)[1]
    stored = result.stdout.splitlines()[1].rsplit(" ", 1)[1]

    assert result.returncode == 0
    assert stored.startswith("sha256:")
    assert await secret_matches(secret, [stored])


async def test_hash_token_chosen_secret_from_stdin() -> None:
    result = gate_hash_token("--client-secret", "--stdin", "--scheme", "pbkdf2", stdin="my chosen secret\n")
    stored = result.stdout.strip().rsplit(" ", 1)[1]

    assert result.returncode == 0
    assert "my chosen secret" not in result.stdout
    assert await secret_matches("my chosen secret", [stored])


def test_hash_token_slow_scheme_needs_client_secret() -> None:
    result = gate_hash_token("--scheme", "argon2")

    assert result.returncode == 2
    assert "--client-secret" in result.stderr
