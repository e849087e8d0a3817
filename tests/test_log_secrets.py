"""Every log record of a token flow, a proxy flow and a failed reload is free of secrets."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
import yaml

from gate.logs import JsonFormatter, KeyValueFormatter
from tests.config.test_reload import live_gate, wait_until, write_atomically
from tests.conftest import CLIENT_ID, USERNAME
from tests.servers import RecordingUpstream


def test_logs_hold_no_secrets(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with live_gate(tmp_path / "gate.yaml", tmp_path / "signing-key.pem", RecordingUpstream()) as live:
        form = {"grant_type": "password", "client_id": CLIENT_ID, "username": USERNAME, "password": live.app_token}
        token = httpx.post(live.url + "/application/o/token/", data=form).json()["access_token"]
        httpx.post(live.url + "/application/o/token/", data={**form, "password": live.app_token + "x"})
        granted = httpx.get(f"{live.url}/orders/1?access_token={token}", headers={"Authorization": f"Bearer {token}"})
        denied = httpx.get(live.url + "/orders/1", headers={"Authorization": f"Bearer {token[:-4]}AAAA"})

        broken = live.config()
        broken["notes"] = live.app_token
        broken["routes"][0]["upstream"] = f"http://127.0.0.1:1/{live.app_token}?"
        write_atomically(live.config_path, yaml.safe_dump(broken))
        wait_until(lambda: live.readyz()["config"]["last_reload"]["result"] == "failure", "the failed reload")

    key_text = (tmp_path / "signing-key.pem").read_text()
    formatters = [JsonFormatter(), KeyValueFormatter("%(asctime)s %(levelname)s %(name)s %(message)s")]
    # httpx is the test's own client here, and it logs each URL it requests, query string included.
    records = [record for record in caplog.records if not record.name.startswith(("httpx", "httpcore"))]
    text = "\n".join(formatter.format(record) for record in records for formatter in formatters)
    events = {getattr(record, "event", None) for record in records}

    assert granted.status_code == 200
    assert denied.status_code == 401
    assert {"token_decision", "proxy_decision", "config_reload_failed", "start", "stop"} <= events
    assert live.app_token not in text
    assert token not in text
    assert token.split(".")[2] not in text
    assert "eyJ" not in text
    assert "PRIVATE KEY" not in text
    assert key_text.splitlines()[1] not in text
