"""Keeps a replica's local revocation list current from Redis, off the request path.

Two mechanisms feed the list. Every revocation is published on a channel, and
the follower applies each message as it arrives, which normally takes
milliseconds. Pub/sub drops messages while a subscriber is disconnected, so
the follower also reads the whole sorted set of revocations after every
(re)subscription and every ``sync_interval`` seconds. A revocation written
through any replica therefore reaches this one within ``sync_interval``
seconds plus one round trip, as long as this replica can reach Redis.
"""

from __future__ import annotations

import asyncio
import logging
import time

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import RedisError

from gate.state.availability import Availability
from gate.state.revocations import RevocationList

logger = logging.getLogger(__name__)

MESSAGE_WAIT = 1.0
"""Seconds one read of the subscription waits for a message."""

MAX_RECONNECT_DELAY = 2.0
"""Maximum seconds between two attempts to resubscribe, and never more than the sync interval."""


def encode_revocation(jti: str, expires_at_ms: int) -> str:
    """Render a revocation message: the expiry in Unix milliseconds, a space, the token id."""
    return f"{expires_at_ms} {jti}"


def decode_revocation(data: bytes) -> tuple[str, float]:
    """Parse a revocation message into ``(jti, expires_at)`` with the expiry in seconds."""
    expires_at_ms, _, jti = data.decode().partition(" ")
    return jti, int(expires_at_ms) / 1000


class RevocationFollower:
    """A background task that subscribes to revocations and syncs the full list."""

    def __init__(
        self,
        client: Redis,
        *,
        list_key: str,
        channel: str,
        revocations: RevocationList,
        availability: Availability,
        sync_interval: float,
        operation_timeout: float,
    ) -> None:
        self._client = client
        self._list_key = list_key
        self._channel = channel
        self._revocations = revocations
        self._availability = availability
        self._sync_interval = sync_interval
        self._operation_timeout = operation_timeout
        self._backoff = ExponentialWithJitterBackoff(cap=min(sync_interval, MAX_RECONNECT_DELAY), base=0.05)
        self.synced = asyncio.Event()
        self.last_sync: float | None = None
        self.stopping = False

    @property
    def staleness(self) -> float:
        """Seconds since the last successful full sync started; infinite before the first."""
        return float("inf") if self.last_sync is None else time.monotonic() - self.last_sync

    def stop(self) -> None:
        """Make ``run`` return at its next failure or reconnect, even if a cancellation was lost."""
        self.stopping = True

    async def run(self) -> None:
        """Follow the revocation list until cancelled or stopped, reconnecting with backoff after each failure."""
        failures = 0
        while not self.stopping:
            last_sync = self.last_sync
            try:
                await self._follow()
            except (RedisError, OSError, TimeoutError) as error:
                self._availability.record_failure(error)
                failures = 1 if self.last_sync != last_sync else failures + 1
                await asyncio.sleep(self._backoff.compute(failures))

    async def sync(self) -> None:
        """Merge every revocation still in force from the sorted set into the local list."""
        started = time.monotonic()
        now_ms = int(time.time() * 1000)
        async with asyncio.timeout(self._operation_timeout):
            entries = await self._client.zrangebyscore(self._list_key, now_ms, "+inf", withscores=True)

        self._revocations.merge((member.decode(), score / 1000) for member, score in entries)
        self.last_sync = started  # the local list is at least as recent as the moment the read began
        self._availability.record_success()
        self.synced.set()

    async def _follow(self) -> None:
        pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        try:
            async with asyncio.timeout(self._operation_timeout):
                await pubsub.subscribe(self._channel)
            await self.sync()
            await self._listen(pubsub)
        finally:
            await pubsub.aclose()

    async def _listen(self, pubsub: PubSub) -> None:
        next_sync = time.monotonic() + self._sync_interval
        while True:
            wait = min(MESSAGE_WAIT, max(0.0, next_sync - time.monotonic()))
            # redis-py's get_message was seen to keep waiting after a Redis
            # restart; the outer timeout turns that into a reconnect.
            async with asyncio.timeout(wait + self._operation_timeout):
                message = await pubsub.get_message(timeout=wait)
            if message is not None and message["type"] == "message":
                self._apply(message["data"])

            if time.monotonic() >= next_sync:
                await self.sync()
                next_sync = time.monotonic() + self._sync_interval

    def _apply(self, data: bytes) -> None:
        try:
            jti, expires_at = decode_revocation(data)
        except (UnicodeDecodeError, ValueError):
            logger.warning(
                "ignored a malformed message on the revocation channel",
                extra={"event": "revocation_message_invalid", "channel": self._channel, "size": len(data)},
            )
            return
        self._revocations.add(jti, expires_at)
