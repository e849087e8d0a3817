"""gate's own signing keys: pre-publication, retirement and the JWKS cache lifetime."""

from __future__ import annotations

import datetime
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import yaml

from gate.app import create_app
from gate.config.compile import load_snapshot
from gate.config.snapshot import Snapshot
from gate.errors import BearerError
from gate.keys.generate import generate_private_key, write_private_key
from tests.servers import running

ISSUER = "https://gate.test"


def rotation_snapshot(directory: Path, retired_ago: float, *, jwks_max_age: int = 300) -> Snapshot:
    """Three keys: a retired one (stopped ``retired_ago`` seconds ago), the active one and the next one."""
    for name in ("old", "current", "upcoming"):
        write_private_key(generate_private_key("ES256"), directory / f"{name}.pem", overwrite=True)
    retired_at = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=retired_ago)
    config: dict[str, Any] = {
        "issuer": ISSUER,
        "jwks_max_age": jwks_max_age,
        "signing_keys": [
            {"kid": "old", "private_key_file": "old.pem", "status": "retired", "retired_at": retired_at.isoformat()},
            {"kid": "current", "private_key_file": "current.pem", "status": "active"},
            {"kid": "upcoming", "private_key_file": "upcoming.pem", "status": "next"},
        ],
        "clients": [
            {"client_id": "c", "secret_hashes": ["sha256:" + "1" * 64], "audience": ["api"], "token_lifetime": 600}
        ],
        "tokens": {"leeway": 60},
    }
    (directory / "gate.yaml").write_text(yaml.safe_dump(config))
    return load_snapshot(directory / "gate.yaml")


def jwks_response(snapshot: Snapshot) -> httpx.Response:
    with running(create_app(snapshot)) as url:
        return httpx.get(url + "/.well-known/jwks.json")


def test_retired_key_published_until_tokens_expire(tmp_path: Path) -> None:
    snapshot = rotation_snapshot(tmp_path, retired_ago=60)

    response = jwks_response(snapshot)
    kids = [key["kid"] for key in response.json()["keys"]]
    max_age = int(response.headers["cache-control"].removeprefix("max-age="))

    assert kids == ["old", "current", "upcoming"]
    assert snapshot.issuer.issue(subject="s", client_id="c", audience=("api",), scope=(), lifetime=60).access_token
    assert (
        jwt.get_unverified_header(
            snapshot.issuer.issue(subject="s", client_id="c", audience=("api",), scope=(), lifetime=60).access_token
        )["kid"]
        == "current"
    )
    assert max_age == 300


def test_max_age_shrinks_before_retired_key_drops(tmp_path: Path) -> None:
    # Dropped at retired_at + 600 s lifetime + 60 s leeway, so 100 s from now.
    snapshot = rotation_snapshot(tmp_path, retired_ago=560)

    response = jwks_response(snapshot)
    max_age = int(response.headers["cache-control"].removeprefix("max-age="))

    assert 0 < max_age <= 100


def test_retired_key_dropped_after_window(tmp_path: Path) -> None:
    snapshot = rotation_snapshot(tmp_path, retired_ago=3600)

    kids = [key["kid"] for key in jwks_response(snapshot).json()["keys"]]

    assert kids == ["current", "upcoming"]


async def test_retired_key_tokens_rejected_after_window(tmp_path: Path) -> None:
    snapshot = rotation_snapshot(tmp_path, retired_ago=3600)
    old_key = snapshot.keyring.keys["old"]
    claims = {"iss": ISSUER, "sub": "s", "aud": "api", "iat": 0, "exp": 2**31}
    token = jwt.encode(claims, old_key.private_key, algorithm="ES256", headers={"kid": "old", "typ": "at+jwt"})

    with pytest.raises(BearerError) as caught:
        await snapshot.verifier.verify(token)

    assert caught.value.reason_id == "unknown_kid"


async def test_tokens_of_current_key_verify(tmp_path: Path) -> None:
    snapshot = rotation_snapshot(tmp_path, retired_ago=60)
    issued = snapshot.issuer.issue(subject="s", client_id="c", audience=("api",), scope=(), lifetime=60)

    verified = await snapshot.verifier.verify(issued.access_token)

    assert verified.kid == "current"


def test_retired_key_needs_retired_at(tmp_path: Path) -> None:
    write_private_key(generate_private_key("ES256"), tmp_path / "k.pem")
    config = {
        "issuer": ISSUER,
        "signing_keys": [
            {"kid": "a", "private_key_file": "k.pem"},
            {"kid": "b", "private_key_file": "k.pem", "status": "retired"},
        ],
    }
    (tmp_path / "gate.yaml").write_text(yaml.safe_dump(config))

    result = subprocess.run(
        [sys.executable, "-m", "gate", "check", "--config", str(tmp_path / "gate.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 1
    assert "signing_keys[1]" in result.stderr
    assert "retired_at" in result.stderr


def test_keygen_next_prints_rotation_steps(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gate",
            "keygen",
            "--out",
            str(tmp_path / "k.pem"),
            "--kid",
            "2027-01",
            "--status",
            "next",
        ],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0
    assert "status: next" in result.stdout
    assert "Rotation, step by step" in result.stderr
    assert "retired_at" in result.stderr
