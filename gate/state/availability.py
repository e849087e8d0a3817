"""Tracks whether Redis can be reached, so that an outage fails fast and is logged once."""

from __future__ import annotations

import logging
import time

from redis.backoff import ExponentialWithJitterBackoff

from gate.state.base import SharedStateUnavailableError

logger = logging.getLogger(__name__)

REPEAT_LOG_INTERVAL = 30.0
"""Seconds between the "still unreachable" lines of one outage."""


class Availability:
    """The reachability of Redis as seen by one replica: a circuit breaker with backoff.

    After a failure, operations raise ``SharedStateUnavailableError`` at once,
    without touching the network, until the backoff delay has passed. The next
    operation then tries Redis again. Any success ends the outage. An outage is
    logged when it starts, every ``REPEAT_LOG_INTERVAL`` seconds while it lasts,
    and when it ends, and outages are counted for ``/readyz``.
    """

    def __init__(self, backoff: ExponentialWithJitterBackoff) -> None:
        self._backoff = backoff
        self.failures = 0
        self.outages = 0
        self.last_error: str | None = None
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._last_logged = 0.0

    @property
    def available(self) -> bool:
        return self._down_since is None

    @property
    def unavailable_for(self) -> float | None:
        """Seconds since the current outage began, or ``None`` when Redis is reachable."""
        return None if self._down_since is None else time.monotonic() - self._down_since

    def check(self) -> None:
        """Raise ``SharedStateUnavailableError`` while an outage waits out its backoff delay."""
        if self._down_since is not None and time.monotonic() < self._retry_at:
            raise SharedStateUnavailableError(f"Redis is unreachable ({self.last_error}); retrying shortly")

    def record_success(self) -> None:
        if self._down_since is not None:
            logger.warning(
                "Redis is reachable again",
                extra={"event": "shared_state_recovered", "outage_seconds": round(self.unavailable_for or 0.0, 3)},
            )
        self.failures = 0
        self._down_since = None

    def record_failure(self, error: BaseException) -> None:
        now = time.monotonic()
        self.failures += 1
        self.last_error = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        self._retry_at = now + self._backoff.compute(self.failures)

        if self._down_since is None:
            self._down_since = now
            self.outages += 1
            self._log_failure("Redis is unreachable; applying the failure policy", now)
        elif now - self._last_logged >= REPEAT_LOG_INTERVAL:
            self._log_failure("Redis is still unreachable", now)

    def _log_failure(self, message: str, now: float) -> None:
        self._last_logged = now
        logger.error(
            message,
            extra={
                "event": "shared_state_unavailable",
                "error": self.last_error,
                "failures": self.failures,
                "outages": self.outages,
            },
        )
