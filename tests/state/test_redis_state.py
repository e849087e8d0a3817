"""RedisState against a real redis-server: two instances stand for two replicas."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace

import pytest
from redis.asyncio import Redis

from gate.state.redis import RedisState
from gate.state.settings import RedisSettings
from tests.redis_server import RedisServer

# A bound for waits that only end when the code under test works; a failing test stops here instead of hanging.
WAIT_LIMIT = 10.0


async def eventually(condition: Callable[[], bool | Awaitable[bool]], limit: float = WAIT_LIMIT) -> bool:
    """Poll ``condition`` until it is true or ``limit`` seconds pass; return whether it held."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return True
        await asyncio.sleep(0.02)
    return False


@pytest.fixture
def settings(redis_server: RedisServer) -> RedisSettings:
    return RedisSettings(url=redis_server.url, key_prefix="test:", revocation_sync_interval=3600)


@pytest.fixture
async def raw(redis_server: RedisServer) -> AsyncIterator[Redis]:
    """A plain client for looking at what RedisState wrote."""
    client = Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


@pytest.fixture
async def replicas(settings: RedisSettings) -> AsyncIterator[tuple[RedisState, RedisState]]:
    first, second = RedisState(settings), RedisState(settings)
    await first.start()
    await second.start()
    yield first, second
    await first.close()
    await second.close()


async def test_add_if_absent_once_across_replicas(replicas: tuple[RedisState, RedisState]) -> None:
    first, second = replicas

    assert await first.add_if_absent("jti:issuer:abc", ttl=60) is True
    assert await second.add_if_absent("jti:issuer:abc", ttl=60) is False
    assert await first.add_if_absent("jti:issuer:abc", ttl=60) is False
    assert await second.contains("jti:issuer:abc") is True
    assert await second.contains("jti:issuer:other") is False


async def test_add_if_absent_sets_expiry(replicas: tuple[RedisState, RedisState], raw: Redis) -> None:
    first, _ = replicas

    await first.add_if_absent("jti:issuer:ttl", ttl=30.9999)
    remaining = await raw.pttl("test:jti:issuer:ttl")

    assert 0 < remaining <= 31_000


async def test_entry_expires_on_its_own(replicas: tuple[RedisState, RedisState]) -> None:
    first, second = replicas

    assert await first.add_if_absent("jti:issuer:short", ttl=0.05) is True

    assert await eventually(lambda: second.add_if_absent("jti:issuer:short", ttl=60))


async def test_hit_counts_across_replicas(replicas: tuple[RedisState, RedisState], raw: Redis) -> None:
    first, second = replicas

    results = [await state.hit("failed:client-a", window=60, limit=3) for state in (first, second, first, second)]

    assert [result.count for result in results] == [1, 2, 3, 4]
    assert [result.allowed for result in results] == [True, True, True, False]
    assert all(1 <= result.retry_after <= 60 for result in results)
    assert 0 < await raw.pttl("test:failed:client-a") <= 60_000


async def test_hit_window_starts_again(replicas: tuple[RedisState, RedisState]) -> None:
    first, second = replicas
    await first.hit("failed:client-b", window=0.05, limit=1)
    await first.hit("failed:client-b", window=0.05, limit=1)

    async def counter_restarted() -> bool:
        return (await second.hit("failed:client-b", window=60, limit=1)).count == 1

    assert await eventually(counter_restarted)


async def test_key_prefix_separates_deployments(settings: RedisSettings, raw: Redis) -> None:
    ours = RedisState(settings)
    theirs = RedisState(replace(settings, key_prefix="other:"))

    assert await ours.add_if_absent("jti:issuer:shared", ttl=60) is True
    assert await theirs.add_if_absent("jti:issuer:shared", ttl=60) is True
    await ours.hit("failed:client-c", window=60, limit=5)
    await ours.revoke("jti-prefixed", time.time() + 60)

    keys = sorted(key.decode() for key in await raw.keys("*"))
    assert keys == ["other:jti:issuer:shared", "test:failed:client-c", "test:jti:issuer:shared", "test:revocations"]
    await ours.close()
    await theirs.close()


async def test_revocation_reaches_other_replica_by_pubsub(replicas: tuple[RedisState, RedisState]) -> None:
    first, second = replicas  # syncs every hour, so only the published message can deliver it in time

    await first.revoke("jti-revoked-at-a", time.time() + 60)

    assert first.is_revoked("jti-revoked-at-a") is True
    assert await eventually(lambda: second.is_revoked("jti-revoked-at-a"))
    assert second.is_revoked("jti-never-revoked") is False


async def test_revocation_reaches_other_replica_by_sync(settings: RedisSettings, raw: Redis) -> None:
    replica = RedisState(replace(settings, revocation_sync_interval=0.2))
    await replica.start()
    expires_at_ms = int((time.time() + 60) * 1000)

    # Written without a message, as if the message had been lost while the subscriber was away.
    await raw.zadd("test:revocations", {"jti-missed-message": expires_at_ms})
    written = time.monotonic()

    def synced_since_write() -> bool:
        age = replica.health().last_sync_age  # rounded to milliseconds, hence the margin
        return age is not None and age < time.monotonic() - written - 0.001

    # The first full sync that starts after the write enforces it, so the bound is one sync interval.
    assert await eventually(synced_since_write)
    assert replica.is_revoked("jti-missed-message") is True
    await replica.close()


async def test_revocation_known_at_start(settings: RedisSettings) -> None:
    writer = RedisState(settings)
    await writer.revoke("jti-before-start", time.time() + 60)

    late = RedisState(settings)
    await late.start()

    assert late.is_revoked("jti-before-start") is True
    assert late.health().ready is True
    await writer.close()
    await late.close()


async def test_revocation_list_expires(replicas: tuple[RedisState, RedisState], raw: Redis) -> None:
    first, second = replicas
    latest = time.time() + 40

    await first.revoke("jti-short", time.time() + 20)
    await first.revoke("jti-long", latest)
    expires_at_ms = await raw.execute_command("PEXPIRETIME", "test:revocations")

    assert expires_at_ms == math.ceil(latest * 1000)
    assert await eventually(lambda: second.is_revoked("jti-long") and second.is_revoked("jti-short"))


async def test_expired_revocation_not_enforced(replicas: tuple[RedisState, RedisState], raw: Redis) -> None:
    first, _ = replicas

    await first.revoke("jti-already-expired", time.time() - 1)

    assert first.is_revoked("jti-already-expired") is False
    assert await raw.exists("test:revocations") == 0


async def test_malformed_channel_message_ignored(replicas: tuple[RedisState, RedisState], raw: Redis) -> None:
    first, second = replicas

    await raw.publish("test:revocations", b"\xff\xfe not a revocation")
    await first.revoke("jti-after-garbage", time.time() + 60)

    assert await eventually(lambda: second.is_revoked("jti-after-garbage"))
    assert second.health().available is True


async def test_password_required(redis_server: RedisServer, tmp_path) -> None:
    redis_server.kill()
    redis_server.extra_arguments = ["--requirepass", "test-only-redis-password"]
    redis_server.start()
    good = RedisState(RedisSettings(url=redis_server.url, password="test-only-redis-password"))
    bad = RedisState(RedisSettings(url=redis_server.url, password="wrong-password"))

    assert await good.add_if_absent("jti:issuer:auth", ttl=60) is True
    with pytest.raises(Exception, match="unreachable") as raised:
        await bad.add_if_absent("jti:issuer:auth", ttl=60)
    assert "wrong-password" not in str(raised.value)
    await good.close()
    await bad.close()
