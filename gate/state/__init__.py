"""State that replicas of gate must share: used assertion ids, revocations, rate limits."""

from __future__ import annotations

from gate.state.base import RateLimitResult, SharedState, SharedStateUnavailableError, StateHealth
from gate.state.memory import MemoryState
from gate.state.settings import FailurePolicy, RedisSettings

__all__ = [
    "FailurePolicy",
    "MemoryState",
    "RateLimitResult",
    "RedisSettings",
    "SharedState",
    "SharedStateUnavailableError",
    "StateHealth",
    "create_state",
]


def create_state(settings: RedisSettings | None) -> SharedState:
    """Build the Redis store for ``settings``, or the in-memory store when there are none."""
    if settings is None:
        return MemoryState()

    from gate.state.redis import RedisState  # imported here because the redis package is an optional extra

    return RedisState(settings)
