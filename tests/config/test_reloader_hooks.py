"""The snapshot lifecycle hooks the reloader calls around a swap: inherit_caches, start, close."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest
import yaml

from gate.config import reloader as reloader_module
from gate.config.compile import load_snapshot
from gate.config.reloader import ConfigReloader
from gate.config.snapshot import Snapshot, SnapshotHolder
from gate.keys.generate import generate_private_key, write_private_key
from gate.oauth.app_tokens import generate_app_token
from tests.conftest import base_config


@dataclasses.dataclass(frozen=True)
class HookedSnapshot(Snapshot):
    """A snapshot that records its hook calls, with the version then serving, in ``events``."""

    events: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)
    holder: list[SnapshotHolder] = dataclasses.field(default_factory=list)
    fail_start: bool = False

    def _record(self, hook: str) -> None:
        serving = self.holder[0].current.version if self.holder else "-"
        self.events.append((hook, self.version, serving))

    def inherit_caches(self, previous: Snapshot) -> None:
        self.events.append(("inherit_caches", self.version, previous.version))

    async def start(self) -> None:
        self._record("start")
        if self.fail_start:
            raise RuntimeError("key refresh could not start")

    async def close(self) -> None:
        self._record("close")


def hooked(snapshot: Snapshot, version: str, **hooks: object) -> HookedSnapshot:
    values = {field.name: getattr(snapshot, field.name) for field in dataclasses.fields(Snapshot)}
    return HookedSnapshot(**{**values, "version": version}, **hooks)  # type: ignore[arg-type]


@pytest.fixture
def snapshot(tmp_path: Path) -> Snapshot:
    write_private_key(generate_private_key("ES256"), tmp_path / "signing-key.pem")
    config = base_config("http://127.0.0.1:1", "http://127.0.0.1:2", generate_app_token())
    (tmp_path / "gate.yaml").write_text(yaml.safe_dump(config))
    return load_snapshot(tmp_path / "gate.yaml")


def run_reload(snapshot: Snapshot, monkeypatch: pytest.MonkeyPatch, *, fail_start: bool) -> tuple:
    events: list[tuple[str, str, str]] = []
    holder_ref: list[SnapshotHolder] = []
    old = hooked(snapshot, "v1", events=events, holder=holder_ref)
    new = hooked(snapshot, "v2", events=events, holder=holder_ref, fail_start=fail_start)
    holder = SnapshotHolder(old)
    holder_ref.append(holder)
    monkeypatch.setattr(reloader_module, "load_snapshot", lambda path, environ: new)
    reloader = ConfigReloader(holder)

    async def scenario() -> bool:
        await reloader.start()
        result = await reloader.reload("test")
        await reloader.stop()
        return result

    return asyncio.run(scenario()), holder, reloader, events


def test_hooks_run_around_swap(snapshot: Snapshot, monkeypatch: pytest.MonkeyPatch) -> None:
    result, holder, _reloader, events = run_reload(snapshot, monkeypatch, fail_start=False)

    assert result is True
    assert holder.current.version == "v2"
    assert events == [
        ("start", "v1", "v1"),
        ("inherit_caches", "v2", "v1"),
        ("start", "v2", "v1"),
        ("close", "v1", "v2"),
        ("close", "v2", "v2"),
    ]


def test_failed_start_keeps_old_snapshot(snapshot: Snapshot, monkeypatch: pytest.MonkeyPatch) -> None:
    result, holder, reloader, events = run_reload(snapshot, monkeypatch, fail_start=True)

    assert result is False
    assert holder.current.version == "v1"
    assert ("close", "v2", "v1") in events
    assert ("close", "v1", "v1") in events
    assert reloader.status.result == "failure"
    assert "RuntimeError: key refresh could not start" in reloader.status.problems[0].message


def test_snapshot_without_hooks_reloads(snapshot: Snapshot) -> None:
    holder = SnapshotHolder(snapshot)
    reloader = ConfigReloader(holder)

    result = asyncio.run(reloader.reload("test"))

    assert result is True
    assert holder.current is not snapshot
    assert holder.current.version == snapshot.version
