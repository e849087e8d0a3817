"""A cached token is checked again whenever the config or the clock could change the verdict."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from gate.config.compile import load_snapshot
from gate.config.snapshot import Snapshot
from gate.keys.generate import generate_private_key, write_private_key
from gate.keys.signing import PrivateKey
from gate.oauth.app_tokens import generate_app_token
from gate.proxy.pipeline import Decision, ProxyRequest, decide
from tests.conftest import AUDIENCE, base_config, sign_access_token

GATE_URL = "http://gate.test"


def write_snapshot(directory: Path, private_key: PrivateKey, audience: str) -> Snapshot:
    directory.mkdir()
    write_private_key(private_key, directory / "signing-key.pem")
    config: dict[str, Any] = base_config(GATE_URL, "http://127.0.0.1:9", generate_app_token())
    config["routes"][1]["auth"]["audience"] = [audience]
    (directory / "gate.yaml").write_text(yaml.safe_dump(config))
    return load_snapshot(directory / "gate.yaml")


async def ask(snapshot: Snapshot, token: str) -> Decision:
    request = ProxyRequest.create(
        "GET", "gate.test", b"/orders/1", headers=[(b"authorization", f"Bearer {token}".encode())]
    )
    return await decide(snapshot, request)


async def test_reload_with_other_audience_rejects_cached_token(tmp_path: Path) -> None:
    private_key = generate_private_key("ES256")
    before = write_snapshot(tmp_path / "before", private_key, AUDIENCE)
    after = write_snapshot(tmp_path / "after", private_key, "billing-api")
    token = sign_access_token(private_key, GATE_URL, {})

    first = await ask(before, token)
    repeated = await ask(before, token)
    reloaded = await ask(after, token)

    assert first.granted
    assert repeated.granted
    assert not reloaded.granted
    assert reloaded.reason_id == "audience_mismatch"


async def test_cached_token_rejected_once_expired(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    private_key = generate_private_key("ES256")
    snapshot = write_snapshot(tmp_path / "config", private_key, AUDIENCE)
    token = sign_access_token(private_key, GATE_URL, {"exp": int(time.time()) + 30})
    assert (await ask(snapshot, token)).granted

    later = time.time() + 30 + snapshot.verifier.own.policy.leeway + 1
    monkeypatch.setattr(time, "time", lambda: later)
    expired = await ask(snapshot, token)

    assert not expired.granted
    assert expired.reason_id == "token_expired"
