"""What the Redis tests do on a machine without redis-server."""

from __future__ import annotations

import pytest

from tests.redis_server import require_redis_server


def test_missing_server_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    monkeypatch.delenv("GATE_REQUIRE_REDIS", raising=False)

    with pytest.raises(pytest.skip.Exception, match="apt-get install redis-server"):
        require_redis_server()


def test_missing_server_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    monkeypatch.setenv("GATE_REQUIRE_REDIS", "1")

    with pytest.raises(pytest.fail.Exception, match="GATE_REQUIRE_REDIS is set"):
        require_redis_server()
