"""RedisState while its redis-server is killed and started again on the same port."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from gate.config.model import RateLimitConfig
from gate.errors import OAuthError
from gate.oauth.rate_limit import FailureLimiter
from gate.state import FailurePolicy, SharedStateUnavailableError
from gate.state.redis import RedisState
from gate.state.settings import RedisSettings
from tests.redis_server import RedisServer
from tests.state.test_redis_state import WAIT_LIMIT, eventually


@pytest.fixture
def settings(redis_server: RedisServer) -> RedisSettings:
    return RedisSettings(url=redis_server.url, key_prefix="test:", revocation_sync_interval=0.2)


@pytest.fixture
async def replicas(settings: RedisSettings) -> AsyncIterator[tuple[RedisState, RedisState]]:
    first, second = RedisState(settings), RedisState(settings)
    await first.start()
    await second.start()
    yield first, second
    await first.close()
    await second.close()


async def test_outage_raises_without_hanging(redis_server: RedisServer, replicas) -> None:
    first, _ = replicas
    redis_server.kill()

    for operation in (
        first.add_if_absent("jti:issuer:during-outage", ttl=60),
        first.contains("jti:issuer:during-outage"),
        first.revoke("jti-during-outage", time.time() + 60),
    ):
        with pytest.raises(SharedStateUnavailableError):
            await asyncio.wait_for(operation, WAIT_LIMIT)


async def test_outage_keeps_known_revocations(redis_server: RedisServer, replicas) -> None:
    first, second = replicas
    await first.revoke("jti-known-before", time.time() + 60)
    assert await eventually(lambda: second.is_revoked("jti-known-before"))

    redis_server.kill()
    with pytest.raises(SharedStateUnavailableError):
        await first.revoke("jti-revoked-during-outage", time.time() + 60)

    assert second.is_revoked("jti-known-before") is True
    assert first.is_revoked("jti-revoked-during-outage") is True
    assert second.is_revoked("jti-revoked-during-outage") is False
    assert await eventually(lambda: not second.health().available)
    assert second.health().ready is True
    assert second.health().outages == 1


async def test_outage_counts_rate_limit_locally(redis_server: RedisServer, replicas) -> None:
    first, _ = replicas
    await first.hit("failed:client-a", window=60, limit=1)
    await first.hit("failed:client-a", window=60, limit=1)

    redis_server.kill()
    local = [await first.hit("failed:client-a", window=60, limit=1) for _ in range(2)]

    assert [result.count for result in local] == [1, 2]
    assert [result.allowed for result in local] == [True, False]


async def test_restart_recovers_same_instances(redis_server: RedisServer, replicas) -> None:
    first, second = replicas
    redis_server.kill()
    with pytest.raises(SharedStateUnavailableError):
        await first.add_if_absent("jti:issuer:before-restart", ttl=60)

    redis_server.start()

    async def accepts_writes() -> bool:
        try:
            return await first.add_if_absent("jti:issuer:after-restart", ttl=60)
        except SharedStateUnavailableError:
            return False

    async def second_sees_the_write() -> bool:
        # The second replica may still be waiting out its reconnect backoff.
        try:
            return await second.add_if_absent("jti:issuer:after-restart", ttl=60) is False
        except SharedStateUnavailableError:
            return False

    assert await eventually(accepts_writes)
    assert await eventually(second_sees_the_write)
    assert await eventually(lambda: second.health().available)

    await first.revoke("jti-after-restart", time.time() + 60)
    assert await eventually(lambda: second.is_revoked("jti-after-restart"))


async def test_unreachable_at_start_becomes_ready(redis_server: RedisServer, settings: RedisSettings) -> None:
    redis_server.kill()
    replica = RedisState(settings)

    await asyncio.wait_for(replica.start(), WAIT_LIMIT)
    assert replica.health().ready is False
    assert replica.health().available is False

    redis_server.start()
    assert await eventually(lambda: replica.health().ready)
    await replica.close()


POLICY_CASES = [
    pytest.param(FailurePolicy(single_use="local"), "single_use", id="single use checked in local memory"),
    pytest.param(FailurePolicy(rate_limit="reject"), "rate_limit", id="rate limit rejects"),
    pytest.param(FailurePolicy(), "local_rate_limit", id="rate limit blocks in local memory"),
    pytest.param(
        FailurePolicy(revocation="reject", max_revocation_staleness=0.3), "revocation", id="stale revocations reject"
    ),
]


@pytest.mark.parametrize(("policy", "operation"), POLICY_CASES)
async def test_failure_policy(redis_server: RedisServer, settings: RedisSettings, policy, operation) -> None:
    replica = RedisState(replace(settings, on_unavailable=policy))
    await replica.start()
    redis_server.kill()

    if operation == "single_use":
        assert await replica.add_if_absent("jti:issuer:local", ttl=60) is True
        assert await replica.add_if_absent("jti:issuer:local", ttl=60) is False
    elif operation == "rate_limit":
        with pytest.raises(SharedStateUnavailableError):
            await replica.hit("failed:client-b", window=60, limit=5)
        with pytest.raises(SharedStateUnavailableError):
            await replica.block("blocked:client-b", ttl=60)
        with pytest.raises(SharedStateUnavailableError):
            await replica.is_blocked("blocked:client-b")
    elif operation == "local_rate_limit":
        assert await replica.is_blocked("blocked:client-c") is False
        await replica.block("blocked:client-c", ttl=60)
        assert await replica.is_blocked("blocked:client-c") is True
    else:

        def rejects() -> bool:
            try:
                replica.is_revoked("jti-unknown")
            except SharedStateUnavailableError:
                return True
            return False

        assert await eventually(rejects)
    await replica.close()


@pytest.mark.parametrize(
    ("rate_limit", "status"),
    [pytest.param("reject", 503, id="reject answers 503"), pytest.param("local", 429, id="local blocks in memory")],
)
async def test_failure_limiter_during_outage(
    redis_server: RedisServer, settings: RedisSettings, rate_limit: str, status: int
) -> None:
    replica = RedisState(replace(settings, on_unavailable=FailurePolicy(rate_limit=rate_limit)))
    await replica.start()
    limiter = FailureLimiter(replica)
    limits = RateLimitConfig(window=60, max_failures_per_address=2, max_failures_per_client_address=2)
    redis_server.kill()

    for _ in range(2):
        await limiter.record_failure(limits, "client-a", "192.0.2.1")
    with pytest.raises(OAuthError) as raised:
        await limiter.check(limits, "client-a", "192.0.2.1")

    assert raised.value.status == status
    assert raised.value.error == "temporarily_unavailable"
    await replica.close()
