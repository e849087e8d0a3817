"""The gate command line, run as a user runs it: in a subprocess."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.servers import free_port

REPOSITORY = Path(__file__).resolve().parent.parent
EXAMPLE = REPOSITORY / "config.example.yaml"


def gate_command(*arguments: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gate", *arguments], capture_output=True, text=True, timeout=60, cwd=cwd, check=False
    )


@pytest.fixture
def example_copy(tmp_path: Path) -> Path:
    """config.example.yaml with the signing key its README step makes."""
    config = tmp_path / "config.example.yaml"
    shutil.copy(EXAMPLE, config)
    (tmp_path / "keys").mkdir()
    made = gate_command("keygen", "--out", str(tmp_path / "keys" / "signing-key.pem"))
    assert made.returncode == 0, made.stderr
    return config


def test_check_accepts_example(example_copy: Path) -> None:
    result = gate_command("check", "--config", str(example_copy))

    assert result.returncode == 0, result.stderr
    assert "OK: 2 routes, 4 clients, 1 service accounts, 0 trusted issuers, 1 signing keys" in result.stdout


def test_check_names_each_broken_field(example_copy: Path) -> None:
    text = example_copy.read_text()
    text = text.replace("token_lifetime: 300", "token_lifetime: soon")
    text = text.replace("    strip_prefix: false", "    strip_prefx: false")
    text = text.replace('    upstream: "http://127.0.0.1:9001"        # base URL', "    # base URL")
    example_copy.write_text(text)
    lines = text.splitlines()
    lifetime_line = next(number for number, line in enumerate(lines, 1) if "token_lifetime: soon" in line)
    typo_line = next(number for number, line in enumerate(lines, 1) if "strip_prefx" in line)

    result = gate_command("check", "--config", str(example_copy))

    assert result.returncode == 1
    assert f"clients[0].token_lifetime (line {lifetime_line})" in result.stderr
    assert f"routes[0].strip_prefx (line {typo_line}): unknown key" in result.stderr
    assert "routes[0].upstream" in result.stderr
    assert "required key is missing" in result.stderr


def test_check_missing_key_file(tmp_path: Path) -> None:
    config = tmp_path / "gate.yaml"
    shutil.copy(EXAMPLE, config)

    result = gate_command("check", "--config", str(config))

    assert result.returncode == 1
    assert "signing_keys[0].private_key_file" in result.stderr
    assert "No such file or directory" in result.stderr


def test_check_never_prints_secret_values(tmp_path: Path, example_copy: Path) -> None:
    text = example_copy.read_text().replace('issuer: "https://gate.internal.example"', "issuer: 12345")
    text += "\nunknown_secret: hunter2-very-secret\n"
    example_copy.write_text(text)

    result = gate_command("check", "--config", str(example_copy))

    assert result.returncode == 1
    assert "hunter2-very-secret" not in result.stderr + result.stdout


@pytest.mark.parametrize(
    "algorithm, marker", [("ES256", "PRIVATE KEY"), ("RS256", "PRIVATE KEY"), ("EdDSA", "PRIVATE KEY")]
)
def test_keygen_writes_private_key(tmp_path: Path, algorithm: str, marker: str) -> None:
    out = tmp_path / "key.pem"

    result = gate_command("keygen", "--algorithm", algorithm, "--out", str(out), "--kid", "k1")

    assert result.returncode == 0
    assert marker in out.read_text()
    assert out.stat().st_mode & 0o777 == 0o600
    assert "kid: k1" in result.stdout


def test_keygen_refuses_to_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "key.pem"
    out.write_text("keep me")

    result = gate_command("keygen", "--out", str(out))

    assert result.returncode == 1
    assert out.read_text() == "keep me"
    assert "--force" in result.stderr


def test_hash_token_prints_matching_hash() -> None:
    from gate.oauth.app_tokens import hash_app_token

    result = gate_command("hash-token")
    token = result.stdout.splitlines()[0].rsplit(" ", 1)[1]
    printed_hash = result.stdout.splitlines()[1].rsplit(" ", 1)[1]

    assert result.returncode == 0
    assert len(token) >= 43
    assert printed_hash == hash_app_token(token)


def test_demo_serves_walkthrough_and_credentials(tmp_path: Path) -> None:
    port = free_port()
    credentials_file = tmp_path / "demo.json"
    demo = subprocess.Popen(
        [sys.executable, "-m", "gate", "demo", "--port", str(port), "--credentials-out", str(credentials_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not credentials_file.exists() and time.monotonic() < deadline and demo.poll() is None:
            time.sleep(0.05)
        credentials = json.loads(credentials_file.read_text())

        token = httpx.post(
            credentials["token_endpoint"],
            data={
                "grant_type": "client_credentials",
                "client_id": credentials["client_id"],
                "username": credentials["username"],
                "password": credentials["password"],
            },
        ).json()["access_token"]
        allowed = httpx.get(credentials["protected_url"], headers={"Authorization": f"Bearer {token}"})
        rejected = httpx.get(credentials["protected_url"])
    finally:
        demo.send_signal(signal.SIGINT)
        stdout, _ = demo.communicate(timeout=20)

    assert credentials["token_endpoint"] == f"http://127.0.0.1:{port}/application/o/token/"
    assert allowed.status_code == 200
    assert allowed.json()["message"] == "hello from the demo upstream"
    assert rejected.status_code == 401
    assert "curl" in stdout
    assert demo.returncode in (0, -signal.SIGINT)


def test_demo_reports_busy_port() -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        result = gate_command("demo", "--port", str(port))

    assert result.returncode == 1
    assert "already in use" in result.stderr
