"""The shared_state section: defaults, validation and what the compiler reads from files."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import yaml

from gate.config.compile import load_snapshot
from gate.errors import ConfigError
from gate.keys.generate import generate_private_key, write_private_key
from gate.state import FailurePolicy

REDIS_URL = "redis://127.0.0.1:6379/0"


def write_config(directory: Path, shared_state: dict[str, Any] | None) -> Path:
    write_private_key(generate_private_key("ES256"), directory / "signing-key.pem")
    config: dict[str, Any] = {
        "issuer": "http://127.0.0.1:8080",
        "signing_keys": [{"kid": "k1", "private_key_file": "signing-key.pem"}],
    }
    if shared_state is not None:
        config["shared_state"] = shared_state
    path = directory / "gate.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def problems_of(directory: Path, shared_state: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load_snapshot(write_config(directory, shared_state))
    return [str(problem) for problem in raised.value.problems]


def test_default_is_memory(tmp_path: Path) -> None:
    snapshot = load_snapshot(write_config(tmp_path, None))

    assert snapshot.config.shared_state.backend == "memory"
    assert snapshot.shared_state is None


def test_redis_settings_compiled(tmp_path: Path) -> None:
    (tmp_path / "redis-password").write_text("from-a-file\n")
    shared_state = {
        "backend": "redis",
        "url": REDIS_URL,
        "username": "gate",
        "password_file": "redis-password",
        "key_prefix": "prod:",
        "connect_timeout": 2,
        "socket_timeout": 0.25,
        "revocation_sync_interval": 10,
        "on_unavailable": {"single_use": "local", "rate_limit": "reject"},
    }

    settings = load_snapshot(write_config(tmp_path, shared_state)).shared_state

    assert settings is not None
    assert settings.url == REDIS_URL
    assert settings.username == "gate"
    assert settings.password == "from-a-file"
    assert settings.key_prefix == "prod:"
    assert settings.operation_timeout == 2.25
    assert settings.revocation_sync_interval == 10
    assert settings.on_unavailable == FailurePolicy(single_use="local", rate_limit="reject")
    assert "from-a-file" not in repr(settings)


def test_password_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATE_TEST_REDIS_PASSWORD", "from-the-environment")
    shared_state = {"backend": "redis", "url": REDIS_URL, "password": "${GATE_TEST_REDIS_PASSWORD}"}

    snapshot = load_snapshot(write_config(tmp_path, shared_state))

    assert snapshot.shared_state is not None
    assert snapshot.shared_state.password == "from-the-environment"
    assert "from-the-environment" not in repr(snapshot.config)


def test_tls_files_resolved(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("placeholder; only the path is checked at load time")
    shared_state = {"backend": "redis", "url": "rediss://redis.internal:6380/0", "tls": {"ca_file": "ca.pem"}}

    settings = load_snapshot(write_config(tmp_path, shared_state)).shared_state

    assert settings is not None
    assert settings.tls_ca_file == str(tmp_path / "ca.pem")
    assert settings.tls_verify is True


INVALID_CASES = [
    pytest.param({"backend": "redis"}, "shared_state (line 2): backend 'redis' needs 'url'", id="redis without url"),
    pytest.param({"url": REDIS_URL}, "'url' is used only with backend 'redis'", id="url with memory backend"),
    pytest.param(
        {"backend": "redis", "url": "http://127.0.0.1:6379"}, "expected redis://HOST:PORT/DB", id="wrong scheme"
    ),
    pytest.param(
        {"backend": "redis", "url": "redis://:secret@127.0.0.1:6379"},
        "must not contain a password",
        id="password in url",
    ),
    pytest.param(
        {"backend": "redis", "url": REDIS_URL, "password": "a", "password_file": "b"},
        "not both",
        id="password and password file",
    ),
    pytest.param(
        {"backend": "redis", "url": REDIS_URL, "tls": {"verify": False}},
        "'tls' needs a rediss:// URL",
        id="tls on redis",
    ),
    pytest.param(
        {"backend": "redis", "url": "rediss://127.0.0.1:6380", "tls": {"cert_file": "client.pem"}},
        "'cert_file' and 'key_file' go together",
        id="client certificate without key",
    ),
    pytest.param(
        {"backend": "redis", "url": REDIS_URL, "password_file": "missing-password"},
        "shared_state.password_file",
        id="password file missing",
    ),
    pytest.param(
        {"backend": "redis", "url": "rediss://127.0.0.1:6380", "tls": {"ca_file": "missing-ca.pem"}},
        "shared_state.tls.ca_file",
        id="ca file missing",
    ),
    pytest.param(
        {"backend": "redis", "url": REDIS_URL, "on_unavailable": {"single_use": "allow"}},
        "shared_state.on_unavailable.single_use",
        id="unknown policy",
    ),
    pytest.param({"backend": "redis", "url": REDIS_URL, "socket_timeout": 0}, "socket_timeout", id="zero timeout"),
]


@pytest.mark.parametrize(("shared_state", "expected"), INVALID_CASES)
def test_invalid_shared_state(tmp_path: Path, shared_state: dict[str, Any], expected: str) -> None:
    problems = problems_of(tmp_path, shared_state)

    assert len(problems) == 1
    assert expected in problems[0]


def test_password_in_url_not_echoed(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, {"backend": "redis", "url": "redis://:hunter2-test@127.0.0.1:6379"})

    assert "hunter2-test" not in problems[0]


def test_redis_backend_needs_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "redis" else real_find_spec(name))

    problems = problems_of(tmp_path, {"backend": "redis", "url": REDIS_URL})

    assert len(problems) == 1
    assert "pip install 'gate[redis]'" in problems[0]
