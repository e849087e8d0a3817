"""Live reload: watch the config file and its referenced files, reload on ``SIGHUP``.

A reload reads, validates and compiles the new file into a new snapshot, and
only then swaps it into the ``SnapshotHolder``. A request that started before
the swap keeps the snapshot reference it took, so it finishes under the old
config. An invalid file changes nothing: the old snapshot keeps serving, and
the error is logged, counted and shown in ``/readyz`` until a good file loads.

Watching uses watchfiles (Rust ``notify``: inotify on Linux). It watches the
directories that contain the files rather than the files themselves. An
editor's save (write a temporary file, rename it over the old one) and a
Kubernetes ConfigMap update (swap the ``..data`` symlink) both replace the
directory entry, so a watch on the old file would never see them. After each
batch of events the reloader hashes the config file and every file it
references, and reloads only when that hash changed.

Snapshot lifecycle hooks, all optional and looked up by name:

- ``async start()``: called on a new snapshot before it is swapped in, for
  example to start background key-set refresh. If it raises, the reload fails.
- ``async close()``: called on the old snapshot after the swap, and on the
  current one when gate stops.
- ``inherit_caches(previous)``: called on a new snapshot before ``start()`` so
  it can keep the cached keys and verified tokens of issuers whose key sources
  did not change, and drop the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import watchfiles
from pydantic import BaseModel

from gate import metrics
from gate.config.compile import load_snapshot
from gate.config.snapshot import Snapshot, SnapshotHolder
from gate.errors import ConfigError, ConfigProblem

logger = logging.getLogger(__name__)

DEFAULT_DEBOUNCE_MS = 500
"""Maximum time watchfiles groups file events into one batch, in milliseconds."""

DEFAULT_STEP_MS = 50
"""Quiet time after the last file event before watchfiles yields a batch, in milliseconds."""

WATCH_RETRY_SECONDS = 1.0


def referenced_files(snapshot: Snapshot) -> tuple[Path, ...]:
    """List the config file and every file its fields name.

    A field names a file when its name ends in ``_file`` (a string) or ``_files``
    (a list of strings). Relative paths are resolved against the directory of
    the config file, as ``compile`` resolves them.
    """
    config_path = Path(snapshot.source)
    found: list[Path] = [config_path]
    for name in _file_fields(snapshot.config):
        found.append(config_path.parent / name)

    return tuple(dict.fromkeys(found))


def _file_fields(value: Any) -> Iterator[str]:
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            item = getattr(value, name)
            if name.endswith("_file") and isinstance(item, str):
                yield item
            elif name.endswith("_files") and isinstance(item, list | tuple):
                yield from (entry for entry in item if isinstance(entry, str))
            else:
                yield from _file_fields(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _file_fields(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _file_fields(item)


def fingerprint(files: tuple[Path, ...]) -> str:
    """Hash the contents of ``files``; a missing or unreadable file hashes as such."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path).encode() + b"\0")
        try:
            digest.update(hashlib.sha256(path.read_bytes()).digest())
        except OSError as error:
            digest.update(f"unreadable:{error.errno}".encode())

    return digest.hexdigest()


def watch_directories(files: tuple[Path, ...]) -> tuple[Path, ...]:
    """Return the existing directories to watch, recursively, to see every change of ``files``.

    Both the directory a path names and the one its symlinks resolve to are
    watched. A directory inside another watched directory is dropped, so a
    ConfigMap's ``..2026_12_04_...`` directory, which is deleted at the next
    update, is watched through its parent.
    """
    candidates: set[Path] = set()
    for path in files:
        for directory in (path.absolute().parent, path.resolve().parent):
            if directory.is_dir():
                candidates.add(directory)

    outermost = [directory for directory in candidates if not any(other in directory.parents for other in candidates)]
    return tuple(sorted(outermost))


@dataclass
class ReloadStatus:
    """The outcome of the last reload attempt, for ``/readyz``."""

    result: Literal["none", "success", "failure"] = "none"
    trigger: str | None = None
    attempted_at: float | None = None
    problems: list[ConfigProblem] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "result": self.result,
            "trigger": self.trigger,
            "attempted_at": self.attempted_at,
            "errors": [
                {"path": problem.path, "line": problem.line, "message": problem.message} for problem in self.problems
            ],
        }


class ConfigReloader:
    """Reload the config of a running gate on file changes and on ``SIGHUP``."""

    def __init__(
        self,
        holder: SnapshotHolder,
        *,
        watch: bool = False,
        sighup: bool = False,
        debounce_ms: int = DEFAULT_DEBOUNCE_MS,
        step_ms: int = DEFAULT_STEP_MS,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.holder = holder
        self.path = Path(holder.current.source)
        self.watch = watch
        self.sighup = sighup
        self.debounce_ms = debounce_ms
        self.step_ms = step_ms
        self.environ = environ
        self.status = ReloadStatus()

        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sighup_installed = False
        self._last_fingerprint = fingerprint(referenced_files(holder.current))

    async def start(self) -> None:
        """Start the current snapshot, then the file watch and the ``SIGHUP`` handler."""
        await _call_hook(self.holder.current, "start")

        if self.watch:
            self._spawn(self._watch_loop())
        if self.sighup:
            self._install_sighup()

    async def stop(self) -> None:
        """Stop watching, wait for a running reload, and close the current snapshot."""
        self._stop.set()
        if self._sighup_installed:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            self._sighup_installed = False

        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

        async with self._lock:
            await _close_quietly(self.holder.current)

    async def reload(self, trigger: str) -> bool:
        """Load the config file again and swap it in if it is valid.

        Returns True when the new snapshot serves, False when the old one stays.
        """
        async with self._lock:
            old = self.holder.current
            self._last_fingerprint = fingerprint(referenced_files(old))
            self.status = ReloadStatus(trigger=trigger, attempted_at=time.time())

            try:
                new = await asyncio.to_thread(load_snapshot, self.path, self.environ)
            except ConfigError as error:
                self._record_failure(old, error.problems)
                return False

            if not await self._start_snapshot(new, old):
                return False

            self.holder.swap(new)
            await _close_quietly(old)
            self._record_success(old, new)
            return True

    async def reload_if_changed(self, trigger: str) -> bool | None:
        """Reload when the config or a file it references changed since the last attempt.

        Returns None when nothing changed, else the result of ``reload``.
        """
        if fingerprint(referenced_files(self.holder.current)) == self._last_fingerprint:
            return None
        return await self.reload(trigger)

    async def _start_snapshot(self, new: Snapshot, old: Snapshot) -> bool:
        inherit = getattr(new, "inherit_caches", None)
        try:
            if inherit is not None:
                inherit(old)
            await _call_hook(new, "start")
        except Exception as error:
            logger.exception("starting the new config failed", extra={"event": "config_reload_failed"})
            await _close_quietly(new)
            problem = ConfigProblem("", None, f"starting the new config failed: {type(error).__name__}: {error}")
            self._record_failure(old, [problem])
            return False
        return True

    def _record_success(self, old: Snapshot, new: Snapshot) -> None:
        if referenced_files(new) != referenced_files(old):
            self._last_fingerprint = fingerprint(referenced_files(new))
        self.status.result = "success"
        metrics.config_reloads.labels("success").inc()
        metrics.config_last_reload_successful.set(1)

        logger.info(
            "config reloaded",
            extra={
                "event": "config_reload",
                "trigger": self.status.trigger,
                "config": str(self.path),
                "old_version": old.version,
                "new_version": new.version,
            },
        )
        for section in ("listen", "admin_listen", "upstream_client", "shared_state"):
            if getattr(old.config, section, None) != getattr(new.config, section, None):
                logger.warning(
                    "config section %s changed; it applies only after a restart",
                    section,
                    extra={"event": "config_reload_needs_restart", "section": section},
                )

    def _record_failure(self, old: Snapshot, problems: list[ConfigProblem]) -> None:
        self.status.result = "failure"
        self.status.problems = problems
        metrics.config_reloads.labels("failure").inc()
        metrics.config_last_reload_successful.set(0)

        logger.error(
            "config reload failed; the previous config keeps serving",
            extra={
                "event": "config_reload_failed",
                "trigger": self.status.trigger,
                "config": str(self.path),
                "kept_version": old.version,
                "error_count": len(problems),
                "errors": [str(problem) for problem in problems],
            },
        )

    async def _watch_loop(self) -> None:
        while not self._stop.is_set():
            directories = watch_directories(referenced_files(self.holder.current))
            try:
                await self._watch(directories)
            except (OSError, RuntimeError) as error:
                logger.error(
                    "watching the config failed; retrying",
                    extra={"event": "config_watch_failed", "error": f"{type(error).__name__}: {error}"},
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), WATCH_RETRY_SECONDS)

    async def _watch(self, directories: tuple[Path, ...]) -> None:
        """Reload on changes under ``directories`` until the set of directories changes."""
        logger.debug("watching config directories", extra={"directories": [str(path) for path in directories]})
        async for _changes in watchfiles.awatch(
            *directories,
            watch_filter=None,
            debounce=self.debounce_ms,
            step=self.step_ms,
            stop_event=self._stop,
            recursive=True,
        ):
            await self.reload_if_changed("file change")
            if watch_directories(referenced_files(self.holder.current)) != directories:
                return

    def _install_sighup(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            logger.warning("SIGHUP reload is off: gate does not run in the main thread", extra={"event": "sighup_off"})
            return

        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, lambda: self._spawn(self.reload("SIGHUP")))
        self._sighup_installed = True

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def _call_hook(snapshot: Snapshot, name: Literal["start", "close"]) -> None:
    hook = getattr(snapshot, name, None)
    if hook is not None:
        await hook()


async def _close_quietly(snapshot: Snapshot) -> None:
    try:
        await _call_hook(snapshot, "close")
    except Exception:
        logger.exception("closing a config snapshot failed", extra={"event": "snapshot_close_failed"})
