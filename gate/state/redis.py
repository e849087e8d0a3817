"""Shared state for several gate replicas, kept in Redis.

Each operation is one atomic command or Lua script on the server.
Single-use ids and rate-limit blocks use ``SET key 1 NX PX ttl``, and
rate-limit counters a fixed-window script. Another script adds a revocation
to one sorted set, scored by expiry in Unix milliseconds, and publishes it.
Every key expires on its own: single-use ids, blocks and counters by their
``PX``/``PEXPIRE``, and the sorted set at the expiry of its latest member,
while members already expired are removed on every revocation and ignored by
every read.

The proxy's revocation check reads a local copy that a ``RevocationFollower``
keeps current (see gate/state/follower.py), so no request waits on Redis for
it. Failures follow the ``FailurePolicy`` of the settings.
"""

from __future__ import annotations

import asyncio
import logging
import math
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import RedisError

from gate.state.availability import Availability
from gate.state.base import RateLimitResult, SharedStateUnavailableError, StateHealth
from gate.state.follower import RevocationFollower, encode_revocation
from gate.state.memory import MemoryState
from gate.state.revocations import RevocationList
from gate.state.settings import RedisSettings

logger = logging.getLogger(__name__)

T = TypeVar("T")

# KEYS[1]: the counter. ARGV[1]: the window in milliseconds. Returns {count, remaining milliseconds}.
# The expiry is set by the hit that creates the counter, and again if a counter ever lacks one.
HIT_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
local remaining = redis.call('PTTL', KEYS[1])
if remaining < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  remaining = tonumber(ARGV[1])
end
return {count, remaining}
"""

# KEYS[1]: the sorted set of revocations. ARGV: jti, expiry in Unix ms, now in Unix ms, channel, message.
# A later expiry already recorded for the jti is kept. The set expires with its latest member.
REVOKE_SCRIPT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
local current = redis.call('ZSCORE', KEYS[1], ARGV[1])
if (not current) or tonumber(current) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
end
local latest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], latest[2])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
"""


def milliseconds(seconds: float) -> int:
    """Convert a lifetime to whole milliseconds, rounding up.

    A single-use id must be kept for as long as its assertion can be accepted,
    so it may outlive the assertion by less than a millisecond but never
    expire before it.
    """
    return max(1, math.ceil(seconds * 1000))


def create_client(settings: RedisSettings) -> Redis:
    """Build a pooled client that retries a failed command once and reconnects on demand."""
    options: dict[str, Any] = {
        "username": settings.username,
        "password": settings.password,
        "socket_connect_timeout": settings.connect_timeout,
        "socket_timeout": settings.socket_timeout,
        "socket_keepalive": True,
        "health_check_interval": 30,
        "retry": Retry(ExponentialWithJitterBackoff(cap=0.1, base=0.01), retries=1),
        "max_connections": settings.max_connections,
        "timeout": settings.operation_timeout,
    }
    if settings.url.startswith("rediss://"):
        options |= {
            "ssl_ca_certs": settings.tls_ca_file,
            "ssl_certfile": settings.tls_cert_file,
            "ssl_keyfile": settings.tls_key_file,
            "ssl_cert_reqs": ssl.CERT_REQUIRED if settings.tls_verify else ssl.CERT_NONE,
            "ssl_check_hostname": settings.tls_verify,
            "ssl_min_version": ssl.TLSVersion.TLSv1_2,
        }

    pool = BlockingConnectionPool.from_url(settings.url, **options)
    return Redis.from_pool(pool)


class RedisState:
    """``SharedState`` in Redis, shared by every replica that names the same server and key prefix."""

    def __init__(self, settings: RedisSettings, client: Redis | None = None) -> None:
        self.settings = settings
        self._client = client or create_client(settings)
        self._prefix = settings.key_prefix
        self._policy = settings.on_unavailable
        self._list_key = self._prefix + "revocations"
        self._channel = self._prefix + "revocations"
        self._fallback = MemoryState()
        self._revocations = RevocationList()
        self._availability = Availability(ExponentialWithJitterBackoff(cap=2.0, base=0.05))
        self._hit = self._client.register_script(HIT_SCRIPT)
        self._revoke = self._client.register_script(REVOKE_SCRIPT)
        self._follower = RevocationFollower(
            self._client,
            list_key=self._list_key,
            channel=self._channel,
            revocations=self._revocations,
            availability=self._availability,
            sync_interval=settings.revocation_sync_interval,
            operation_timeout=settings.operation_timeout,
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start following revocations, and wait up to one operation timeout for the first sync.

        A replica that cannot reach Redis at startup still starts. ``/readyz``
        reports it not ready until the first sync has succeeded.
        """
        if self._task is None:
            self._task = asyncio.create_task(self._follower.run(), name="gate-revocation-follower")

        try:
            async with asyncio.timeout(self.settings.operation_timeout):
                await self._follower.synced.wait()
        except TimeoutError:
            logger.error(
                "could not read the revocation list from Redis at startup; not ready until it is read",
                extra={"event": "shared_state_start", "error": self._availability.last_error},
            )

    async def add_if_absent(self, key: str, ttl: float) -> bool:
        if ttl <= 0:
            return True

        try:
            created = await self._call(lambda: self._client.set(self._prefix + key, 1, nx=True, px=milliseconds(ttl)))
        except SharedStateUnavailableError:
            if self._policy.single_use == "reject":
                raise
            return await self._fallback.add_if_absent(key, ttl)
        return bool(created)

    async def contains(self, key: str) -> bool:
        return bool(await self._call(lambda: self._client.exists(self._prefix + key)))

    async def hit(self, key: str, window: float, limit: int) -> RateLimitResult:
        try:
            arguments = [milliseconds(window)]
            count, remaining = await self._call(lambda: self._hit(keys=[self._prefix + key], args=arguments))
        except SharedStateUnavailableError:
            if self._policy.rate_limit == "reject":
                raise
            return await self._fallback.hit(key, window, limit)

        retry_after = max(1, math.ceil(int(remaining) / 1000))
        return RateLimitResult(allowed=int(count) <= limit, count=int(count), retry_after=retry_after)

    async def block(self, key: str, ttl: float) -> None:
        try:
            await self._call(lambda: self._client.set(self._prefix + key, 1, nx=True, px=milliseconds(ttl)))
        except SharedStateUnavailableError:
            if self._policy.rate_limit == "reject":
                raise
            await self._fallback.block(key, ttl)

    async def is_blocked(self, key: str) -> bool:
        try:
            return bool(await self._call(lambda: self._client.exists(self._prefix + key)))
        except SharedStateUnavailableError:
            if self._policy.rate_limit == "reject":
                raise
            return await self._fallback.is_blocked(key)

    async def revoke(self, jti: str, expires_at: float) -> None:
        self._revocations.add(jti, expires_at)
        now_ms = int(time.time() * 1000)
        expires_at_ms = math.ceil(expires_at * 1000)
        if expires_at_ms <= now_ms:
            return

        arguments = [jti, expires_at_ms, now_ms, self._channel, encode_revocation(jti, expires_at_ms)]
        await self._call(lambda: self._revoke(keys=[self._list_key], args=arguments))

    def is_revoked(self, jti: str) -> bool:
        if self._revocations.contains(jti):
            return True

        stale = self._follower.staleness > self._policy.max_revocation_staleness
        if stale and self._policy.revocation == "reject":
            raise SharedStateUnavailableError("the revocation list has not been read from Redis recently enough")
        return False

    def health(self) -> StateHealth:
        last_sync_age = None if self._follower.last_sync is None else round(self._follower.staleness, 3)
        unavailable_for = self._availability.unavailable_for
        return StateHealth(
            backend="redis",
            ready=self._follower.synced.is_set(),
            available=self._availability.available,
            revocations_known=len(self._revocations),
            last_sync_age=last_sync_age,
            outages=self._availability.outages,
            unavailable_for=None if unavailable_for is None else round(unavailable_for, 3),
            last_error=self._availability.last_error,
        )

    async def close(self) -> None:
        """Stop the revocation follower and close every connection, waiting a bounded time for each.

        With redis-py 8.2, a task cancelled while it waits in
        ``PubSub.get_message`` can lose the cancellation and go on waiting for
        data on the socket (seen after Redis restarts). So when the follower has
        not stopped within one operation timeout, the connections are closed
        under it, which ends that read with an error.
        """
        task, self._task = self._task, None
        if task is not None:
            self._follower.stop()
            task.cancel()
            await asyncio.wait({task}, timeout=self.settings.operation_timeout)

        await self._client.aclose()

        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=self.settings.operation_timeout)
            if not task.done():
                logger.warning(
                    "the revocation follower did not stop; abandoning it",
                    extra={"event": "shared_state_close"},
                )

    async def _call(self, command: Callable[[], Awaitable[T]]) -> T:
        """Run one command within the operation timeout; every failure becomes ``SharedStateUnavailableError``."""
        self._availability.check()
        try:
            async with asyncio.timeout(self.settings.operation_timeout):
                result = await command()
        except (RedisError, OSError, TimeoutError) as error:
            self._availability.record_failure(error)
            raise SharedStateUnavailableError(f"Redis is unreachable: {self._availability.last_error}") from error

        self._availability.record_success()
        return result
