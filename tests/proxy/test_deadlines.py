"""Coarse deadlines: a callback runs once its deadline passes, never after a cancel, and the timer stops when idle."""

from __future__ import annotations

import asyncio

from gate.proxy.deadlines import TICK_SECONDS, Deadlines


async def ticks(count: int) -> None:
    await asyncio.sleep(TICK_SECONDS * count)


async def test_due_callback_runs_once() -> None:
    deadlines = Deadlines()
    calls: list[str] = []

    deadlines.schedule("read", 0.0, calls.append, "read")
    await ticks(3)

    assert calls == ["read"]
    assert len(deadlines) == 0


async def test_cancelled_callback_never_runs() -> None:
    deadlines = Deadlines()
    calls: list[str] = []

    deadlines.schedule("read", 0.0, calls.append, "read")
    deadlines.cancel("read")
    await ticks(3)

    assert calls == []


async def test_callback_waits_for_its_deadline() -> None:
    deadlines = Deadlines()
    calls: list[str] = []

    deadlines.schedule("later", 60.0, calls.append, "later")
    await ticks(3)

    assert calls == []
    assert len(deadlines) == 1
    deadlines.close()


async def test_timer_stops_when_nothing_is_pending() -> None:
    deadlines = Deadlines()

    deadlines.schedule("read", 0.0, lambda _: None, None)
    await ticks(3)

    assert deadlines._timer is None


async def test_callback_may_schedule_another() -> None:
    deadlines = Deadlines()
    calls: list[str] = []

    def first(_: object) -> None:
        calls.append("first")
        deadlines.schedule("second", 0.0, calls.append, "second")

    deadlines.schedule("first", 0.0, first, None)
    await ticks(5)

    assert calls == ["first", "second"]


async def test_expired_future_gets_timeout_error() -> None:
    deadlines = Deadlines()
    waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    deadlines.schedule(waiter, 0.0, lambda future: future.set_exception(TimeoutError()), waiter)

    await asyncio.wait({waiter}, timeout=5)

    assert waiter.done()
    assert not waiter.cancelled()
    assert isinstance(waiter.exception(), TimeoutError)


async def test_short_deadline_fires_among_long_ones() -> None:
    deadlines = Deadlines()
    calls: list[str] = []

    for number in range(1000):
        deadlines.schedule(f"stream-{number}", 60.0, calls.append, "stream")
    deadlines.schedule("read", 0.0, calls.append, "read")
    await ticks(3)

    assert calls == ["read"]
    assert len(deadlines) == 1000
    deadlines.close()


async def test_rescheduled_key_keeps_new_deadline() -> None:
    deadlines = Deadlines()
    calls: list[str] = []

    deadlines.schedule("read", 0.0, calls.append, "early")
    deadlines.schedule("read", 60.0, calls.append, "late")
    await ticks(3)

    assert calls == []
    assert len(deadlines) == 1
    deadlines.close()


async def test_callback_may_cancel_another_due_one() -> None:
    deadlines = Deadlines()
    calls: list[str] = []

    def first(_: object) -> None:
        calls.append("first")
        deadlines.cancel("second")

    deadlines.schedule("first", 0.0, first, None)
    deadlines.schedule("second", 0.0, calls.append, "second")
    await ticks(3)

    assert calls == ["first"]
