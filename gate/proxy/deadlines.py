"""Coarse timers for the many short waits of the request path: one loop timer per tick, not one per wait.

A proxied request sets two timers that almost never fire: the read timeout
while the upstream's response is awaited, and the delay before gate watches
for the client leaving. ``loop.call_later`` plus ``cancel`` cost 2.1 µs of
CPU each under uvloop (timed on the benchmark's machine), and a request
cancels both. ``Deadlines`` keeps the pending callbacks in a dict and runs
one loop timer every ``TICK_SECONDS`` while any are pending, so a callback
runs at most one tick after its deadline. That lateness is fine for read
timeouts, which are configured in seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from typing import Any

TICK_SECONDS = 0.01
"""How often pending deadlines are checked; a callback runs up to this much after its deadline."""


class Deadlines:
    """Callbacks to run on the running loop when their deadline passes, unless cancelled first."""

    def __init__(self) -> None:
        self._pending: dict[Hashable, tuple[float, Callable[[Any], None], Any]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._pending)

    def schedule(self, key: Hashable, delay: float, callback: Callable[[Any], None], argument: Any) -> None:
        """Run ``callback(argument)`` ``delay`` seconds from now, unless ``cancel(key)`` comes first.

        The running loop is looked up only when the timer is not running,
        because ``asyncio.get_running_loop`` costs a system call (getpid) on Python 3.11.
        """
        loop = self._loop
        if self._timer is None or loop is None:
            loop = self._loop = asyncio.get_running_loop()
            self._timer = loop.call_later(TICK_SECONDS, self._tick)

        self._pending[key] = (loop.time() + delay, callback, argument)

    def cancel(self, key: Hashable) -> None:
        self._pending.pop(key, None)

    def close(self) -> None:
        """Drop every pending callback and stop the timer."""
        self._pending.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        assert self._loop is not None
        self._timer = None
        try:
            now = self._loop.time()
            due = [key for key, (deadline, _, _) in self._pending.items() if deadline <= now]
            for key in due:
                entry = self._pending.pop(key, None)  # an earlier callback may have cancelled it
                if entry is not None:
                    entry[1](entry[2])
        finally:
            if self._pending and self._timer is None:
                self._timer = self._loop.call_later(TICK_SECONDS, self._tick)
