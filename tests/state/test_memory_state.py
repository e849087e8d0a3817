"""The in-memory default: revocations and what /readyz shows for it."""

from __future__ import annotations

import time

import httpx

from gate.state import MemoryState
from tests.conftest import GateSetup


async def test_memory_revocation_until_expiry() -> None:
    state = MemoryState()

    await state.revoke("jti-live", time.time() + 60)
    await state.revoke("jti-expired", time.time() - 1)

    assert state.is_revoked("jti-live") is True
    assert state.is_revoked("jti-expired") is False
    assert state.is_revoked("jti-never-revoked") is False
    assert state.health().revocations_known == 1
    await state.close()
    assert state.is_revoked("jti-live") is False


def test_readyz_shows_memory_backend(gate: GateSetup) -> None:
    response = httpx.get(gate.url + "/readyz")
    shared_state = response.json()["shared_state"]

    assert response.status_code == 200
    assert shared_state["backend"] == "memory"
    assert shared_state["ready"] is True
    assert shared_state["available"] is True
