"""Fixtures for shared-state tests: a real redis-server per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.redis_server import RedisServer, require_redis_server


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, stopped after it."""
    server = RedisServer(require_redis_server(), tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()
