"""Liveness and readiness endpoints."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import jwt
from starlette.requests import Request
from starlette.responses import Response

from gate.config.snapshot import Snapshot, SnapshotHolder
from gate.state import SharedState

if TYPE_CHECKING:
    from gate.config.reloader import ConfigReloader

logger = logging.getLogger(__name__)


def signing_key_usable(snapshot: Snapshot) -> bool:
    """Sign and verify a throwaway token with the active key."""
    key = snapshot.keyring.active
    try:
        probe = jwt.encode({"probe": True}, key.private_key, algorithm=key.algorithm)
        jwt.decode(probe, key.public_key, algorithms=[key.algorithm])
    except (jwt.PyJWTError, ValueError, TypeError) as error:
        logger.error(
            "active signing key failed its probe",
            extra={"event": "signing_key_probe", "kid": key.kid, "error": str(error)},
        )
        return False
    return True


class HealthEndpoints:
    """``/healthz`` reports that the process runs, ``/readyz`` that it can serve and with which config.

    A failed reload does not make gate unready, because the last good config
    keeps serving; ``/readyz`` shows the failure under ``config.last_reload``
    until a good file loads. ``/readyz`` is not ready until the shared-state
    backend holds a usable revocation list. A Redis outage after that is shown
    (``available: false``) but leaves the replica ready, because an outage
    reaches every replica at once and the failure policy decides what each
    request does.
    """

    def __init__(
        self, holder: SnapshotHolder, reloader: ConfigReloader | None = None, state: SharedState | None = None
    ) -> None:
        self.holder = holder
        self.reloader = reloader
        self.state = state

    async def healthz(self, request: Request) -> Response:
        return Response('{"status":"ok"}', media_type="application/json")

    async def readyz(self, request: Request) -> Response:
        snapshot = self.holder.current
        key_ok = signing_key_usable(snapshot)
        sources_ready, key_sources = snapshot.key_store.status()
        state_health = self.state.health() if self.state is not None else None
        ready = key_ok and sources_ready and (state_health is None or state_health.ready)
        config: dict[str, Any] = {
            "source": snapshot.source,
            "version": snapshot.version,
            "loaded_at": snapshot.loaded_at,
        }
        if self.reloader is not None:
            config["last_reload"] = self.reloader.status.as_dict()

        body = {
            "status": "ready" if ready else "not_ready",
            "config": config,
            "signing_key": {"kid": snapshot.keyring.active.kid, "usable": key_ok},
            "key_sources": key_sources,
        }
        if state_health is not None:
            body["shared_state"] = state_health.to_json()
        return Response(json.dumps(body), status_code=200 if ready else 503, media_type="application/json")
