"""`gate serve` in a subprocess: SIGHUP reload, lifecycle log lines, SIGTERM shutdown."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import yaml

from gate.keys.generate import generate_private_key, write_private_key
from gate.oauth.app_tokens import generate_app_token
from tests.config.test_reload import wait_until
from tests.conftest import base_config
from tests.servers import RecordingUpstream, free_port, running


def readyz(url: str) -> dict | None:
    try:
        return httpx.get(url + "/readyz").json()
    except httpx.TransportError:
        return None


def test_sighup_reloads_gate_serve(tmp_path: Path) -> None:
    write_private_key(generate_private_key("ES256"), tmp_path / "signing-key.pem")
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    with running(RecordingUpstream()) as upstream_url:
        config = base_config(url, upstream_url, generate_app_token())
        config_path = tmp_path / "gate.yaml"
        config_path.write_text(yaml.safe_dump(config))
        serve = subprocess.Popen(
            [sys.executable, "-m", "gate", "serve", "--config", str(config_path), "--port", str(port), "--no-watch"],
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_until(lambda: readyz(url) is not None, "gate serve to start")
            old_version = readyz(url)["config"]["version"]

            config["routes"].append(
                {"id": "added", "path_prefix": "/added/", "upstream": upstream_url, "auth": {"mode": "public"}}
            )
            config_path.write_text(yaml.safe_dump(config))
            not_yet = httpx.get(url + "/added/x").status_code
            serve.send_signal(signal.SIGHUP)
            wait_until(lambda: readyz(url)["config"]["version"] != old_version, "the SIGHUP reload")
            added = httpx.get(url + "/added/x").status_code
            new_version = readyz(url)["config"]["version"]
        finally:
            serve.send_signal(signal.SIGTERM)
            _, stderr = serve.communicate(timeout=20)

    lines = [json.loads(line) for line in stderr.splitlines()]
    events = [line.get("event") for line in lines]
    reload_line = next(line for line in lines if line.get("event") == "config_reload")
    assert not_yet == 404
    assert added == 200
    assert serve.returncode in (0, -signal.SIGTERM)
    assert reload_line["trigger"] == "SIGHUP"
    assert reload_line["old_version"] == old_version
    assert reload_line["new_version"] == new_version
    assert events.index("starting") < events.index("start") < events.index("config_reload")
    assert events.index("config_reload") < events.index("stop") < events.index("stopped")
