"""Live reload against a running gate: file watch, ConfigMap swaps, invalid files, running requests."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gate import metrics
from gate.app import GateApp
from gate.config.compile import load_snapshot
from gate.config.reloader import ConfigReloader, referenced_files, watch_directories
from gate.config.snapshot import SnapshotHolder
from gate.keys.generate import generate_private_key, write_private_key
from gate.oauth.app_tokens import generate_app_token
from tests.conftest import CLIENT_ID, USERNAME, base_config
from tests.servers import RecordingUpstream, free_port, running

WAIT_SECONDS = 10


def wait_until(condition: Callable[[], bool], description: str) -> None:
    """Poll ``condition`` until it is true; fail with ``description`` after WAIT_SECONDS."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {description}")
        time.sleep(0.02)


def write_atomically(path: Path, text: str) -> None:
    """Save as editors do: write a temporary file next to ``path``, then rename it over ``path``."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


@dataclass
class LiveGate:
    """A gate under uvicorn that watches its config file."""

    url: str
    config_path: Path
    upstream: RecordingUpstream
    upstream_url: str
    app_token: str
    reloader: ConfigReloader

    def config(self) -> dict[str, Any]:
        return gate_config(self.url, self.upstream_url, self.app_token)

    def readyz(self) -> dict[str, Any]:
        return httpx.get(self.url + "/readyz").json()

    def token(self) -> str:
        form = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "username": USERNAME}
        response = httpx.post(self.url + "/application/o/token/", data={**form, "password": self.app_token})
        return response.json()["access_token"]


def gate_config(url: str, upstream_url: str, app_token: str) -> dict[str, Any]:
    """The shared test config, with a read timeout that lets /slow/ requests finish."""
    config = base_config(url, upstream_url, app_token)
    config["upstream_client"] = {"read_timeout": 5.0}
    return config


def config_with_route(live: LiveGate, route_id: str, prefix: str) -> dict[str, Any]:
    config = live.config()
    config["routes"].append(
        {"id": route_id, "path_prefix": prefix, "upstream": live.upstream_url, "auth": {"mode": "public"}}
    )
    return config


@contextmanager
def live_gate(config_path: Path, key_path: Path, upstream: RecordingUpstream) -> Iterator[LiveGate]:
    """Run gate on ``config_path`` (written here, unless it exists) with a fast file watch."""
    write_private_key(generate_private_key("ES256"), key_path)
    app_token = generate_app_token()

    with running(upstream) as upstream_url:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        if not config_path.exists():
            config_path.write_text(yaml.safe_dump(gate_config(url, upstream_url, app_token)))

        holder = SnapshotHolder(load_snapshot(config_path))
        reloader = ConfigReloader(holder, watch=True, debounce_ms=200, step_ms=20)
        with running(GateApp(holder, reloader=reloader), port):
            yield LiveGate(url, config_path, upstream, upstream_url, app_token, reloader)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveGate]:
    with live_gate(tmp_path / "gate.yaml", tmp_path / "signing-key.pem", RecordingUpstream()) as gate:
        yield gate


def test_reload_on_atomic_rename(live: LiveGate) -> None:
    old_version = live.readyz()["config"]["version"]
    assert httpx.get(live.url + "/added/x").status_code == 404

    write_atomically(live.config_path, yaml.safe_dump(config_with_route(live, "added", "/added/")))
    wait_until(lambda: httpx.get(live.url + "/added/x").status_code == 200, "the added route to serve")

    readyz = live.readyz()
    assert readyz["config"]["version"] != old_version
    assert readyz["config"]["last_reload"]["result"] == "success"
    assert readyz["config"]["last_reload"]["trigger"] == "file change"


def test_reload_on_write_in_place(live: LiveGate) -> None:
    live.config_path.write_text(yaml.safe_dump(config_with_route(live, "added", "/added/")))

    wait_until(lambda: httpx.get(live.url + "/added/x").status_code == 200, "the added route to serve")


def test_reload_on_configmap_symlink_swap(tmp_path: Path) -> None:
    """Kubernetes updates a mounted ConfigMap by pointing the ..data symlink at a new directory."""
    mount = tmp_path / "mount"
    (mount / "..2026_12_04_first").mkdir(parents=True)
    (mount / "..data").symlink_to("..2026_12_04_first")
    (mount / "gate.yaml").symlink_to("..data/gate.yaml")
    (mount / "signing-key.pem").symlink_to("..data/signing-key.pem")

    with live_gate(mount / "gate.yaml", mount / "..data" / "signing-key.pem", RecordingUpstream()) as live:
        assert httpx.get(live.url + "/added/x").status_code == 404

        second = mount / "..2026_12_04_second"
        second.mkdir()
        (second / "gate.yaml").write_text(yaml.safe_dump(config_with_route(live, "added", "/added/")))
        shutil.copy(mount / "..data" / "signing-key.pem", second / "signing-key.pem")
        (mount / "..data_tmp").symlink_to(second.name)
        os.replace(mount / "..data_tmp", mount / "..data")
        shutil.rmtree(mount / "..2026_12_04_first")

        wait_until(lambda: httpx.get(live.url + "/added/x").status_code == 200, "the swapped config to serve")
        assert live.readyz()["config"]["last_reload"]["result"] == "success"


def test_reload_on_referenced_key_change(live: LiveGate, tmp_path: Path) -> None:
    def public_key() -> dict[str, Any]:
        return httpx.get(live.url + "/.well-known/jwks.json").json()["keys"][0]

    old_key = public_key()
    config_text = live.config_path.read_text()

    replacement = tmp_path / "replacement.pem"
    write_private_key(generate_private_key("ES256"), replacement)
    os.replace(replacement, tmp_path / "signing-key.pem")

    wait_until(lambda: public_key() != old_key, "the new signing key to be published")
    assert live.config_path.read_text() == config_text


def test_invalid_file_keeps_old_config(live: LiveGate) -> None:
    failures_before = metrics.REGISTRY.get_sample_value("gate_config_reloads_total", {"result": "failure"})
    old_version = live.readyz()["config"]["version"]
    token = live.token()

    broken = yaml.safe_dump(live.config()).replace("upstream:", "upstreem:", 1)
    write_atomically(live.config_path, broken)
    wait_until(lambda: live.readyz()["config"]["last_reload"]["result"] == "failure", "the failed reload")

    readyz = live.readyz()
    errors = readyz["config"]["last_reload"]["errors"]
    typo_line = next(number for number, line in enumerate(broken.splitlines(), 1) if "upstreem:" in line)
    assert readyz["status"] == "ready"
    assert readyz["config"]["version"] == old_version
    assert {
        "path": "routes[0].upstreem",
        "line": typo_line,
        "message": "unknown key. Did you mean 'upstream'?",
    } in errors
    assert metrics.REGISTRY.get_sample_value("gate_config_reloads_total", {"result": "failure"}) == failures_before + 1
    assert metrics.REGISTRY.get_sample_value("gate_config_last_reload_successful") == 0
    assert httpx.get(live.url + "/public/x").status_code == 200
    assert httpx.get(live.url + "/orders/1", headers={"Authorization": f"Bearer {token}"}).status_code == 200

    write_atomically(live.config_path, yaml.safe_dump(config_with_route(live, "added", "/added/")))
    wait_until(lambda: live.readyz()["config"]["last_reload"]["result"] == "success", "the good file to load")
    assert live.readyz()["config"]["last_reload"]["errors"] == []
    assert metrics.REGISTRY.get_sample_value("gate_config_last_reload_successful") == 1


def test_reload_only_when_content_changes(tmp_path: Path) -> None:
    with live_gate(tmp_path / "gate.yaml", tmp_path / "signing-key.pem", RecordingUpstream()) as live:
        config_text = live.config_path.read_text()
    reloader = ConfigReloader(SnapshotHolder(load_snapshot(live.config_path)))

    write_atomically(live.config_path, config_text)
    (tmp_path / "unrelated.txt").write_text("not gate's")
    unchanged = asyncio.run(reloader.reload_if_changed("test"))
    write_atomically(live.config_path, config_text + "\n# a comment changes the content\n")
    changed = asyncio.run(reloader.reload_if_changed("test"))
    again = asyncio.run(reloader.reload_if_changed("test"))

    assert unchanged is None
    assert changed is True
    assert again is None


def test_running_request_finishes_under_old_config(live: LiveGate) -> None:
    """A request keeps the snapshot it started with, so removing its route mid-request does not break it."""
    results: list[httpx.Response] = []
    slow = threading.Thread(target=lambda: results.append(httpx.get(live.url + "/public/slow/1", timeout=10)))
    slow.start()
    wait_until(lambda: any(b"/slow/" in request.raw_path for request in live.upstream.received), "the slow request")

    config = live.config()
    config["routes"] = [route for route in config["routes"] if route["id"] != "public"]
    write_atomically(live.config_path, yaml.safe_dump(config))
    wait_until(lambda: httpx.get(live.url + "/public/x").status_code == 404, "the public route to be removed")
    slow.join(timeout=10)

    assert results[0].status_code == 200
    assert results[0].json()["path"] == "/public/slow/1"
    assert live.readyz()["config"]["last_reload"]["result"] == "success"


def test_watch_directories_cover_configmap_layout(tmp_path: Path) -> None:
    data = tmp_path / "..2026_12_04_first"
    data.mkdir()
    (tmp_path / "..data").symlink_to(data.name)
    (tmp_path / "gate.yaml").symlink_to("..data/gate.yaml")
    (data / "gate.yaml").write_text("")

    assert watch_directories((tmp_path / "gate.yaml",)) == (tmp_path,)


def test_referenced_files_lists_key_files(live: LiveGate) -> None:
    files = referenced_files(live.reloader.holder.current)

    assert files == (live.config_path, live.config_path.parent / "signing-key.pem")


def test_requests_survive_reloads(live: LiveGate) -> None:
    """A stream of requests runs through a valid, an invalid and another valid change; none fails."""
    token = live.token()
    statuses: list[int] = []
    stop = threading.Event()

    def stream() -> None:
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}) as client:
            while not stop.is_set() and len(statuses) < 2000:
                statuses.append(client.get(live.url + "/orders/1").status_code)

    streamer = threading.Thread(target=stream)
    streamer.start()
    try:
        write_atomically(live.config_path, yaml.safe_dump(config_with_route(live, "first", "/first/")))
        wait_until(lambda: httpx.get(live.url + "/first/x").status_code == 200, "the first change")
        write_atomically(live.config_path, "routes: [\n")
        wait_until(lambda: live.readyz()["config"]["last_reload"]["result"] == "failure", "the invalid change")
        write_atomically(live.config_path, yaml.safe_dump(config_with_route(live, "second", "/second/")))
        wait_until(lambda: httpx.get(live.url + "/second/x").status_code == 200, "the second change")
    finally:
        stop.set()
        streamer.join(timeout=WAIT_SECONDS)

    assert len(statuses) > 0
    assert set(statuses) == {200}
    assert httpx.get(live.url + "/first/x").status_code == 404


def test_watch_follows_key_to_new_directory(live: LiveGate, tmp_path_factory: pytest.TempPathFactory) -> None:
    """After a reload names a key file in another directory, changes there reload too."""
    elsewhere = tmp_path_factory.mktemp("keys-elsewhere")
    shutil.copy(live.config_path.parent / "signing-key.pem", elsewhere / "signing-key.pem")
    config = live.config()
    config["signing_keys"][0]["private_key_file"] = str(elsewhere / "signing-key.pem")
    write_atomically(live.config_path, yaml.safe_dump(config))
    wait_until(lambda: live.reloader.status.result == "success", "the reload naming the new key directory")
    old_key = httpx.get(live.url + "/.well-known/jwks.json").json()["keys"][0]

    replacement = elsewhere / "replacement.pem"
    write_private_key(generate_private_key("ES256"), replacement)
    os.replace(replacement, elsewhere / "signing-key.pem")

    wait_until(
        lambda: httpx.get(live.url + "/.well-known/jwks.json").json()["keys"][0] != old_key,
        "the key in the new directory to be reloaded",
    )
