"""Liveness and readiness endpoints."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import jwt
from starlette.requests import Request
from starlette.responses import Response

from gate.config.snapshot import Snapshot, SnapshotHolder

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


def key_source_health(snapshot: Snapshot) -> Any:
    """Return ``snapshot.key_health()``, the state of each trusted issuer's key sources.

    The snapshot provides it once it has key sources to report on; until then
    this returns an empty mapping. It must return JSON-serialisable data.
    """
    key_health = getattr(snapshot, "key_health", None)
    return key_health() if key_health is not None else {}


class HealthEndpoints:
    """``/healthz`` reports that the process runs, ``/readyz`` that it can serve and with which config.

    A failed reload does not make gate unready, because the last good config
    keeps serving; ``/readyz`` shows the failure under ``config.last_reload``
    until a good file loads.
    """

    def __init__(self, holder: SnapshotHolder, reloader: ConfigReloader | None = None) -> None:
        self.holder = holder
        self.reloader = reloader

    async def healthz(self, request: Request) -> Response:
        return Response('{"status":"ok"}', media_type="application/json")

    async def readyz(self, request: Request) -> Response:
        snapshot = self.holder.current
        key_ok = signing_key_usable(snapshot)
        config: dict[str, Any] = {
            "source": snapshot.source,
            "version": snapshot.version,
            "loaded_at": snapshot.loaded_at,
        }
        if self.reloader is not None:
            config["last_reload"] = self.reloader.status.as_dict()

        body = {
            "status": "ready" if key_ok else "not_ready",
            "config": config,
            "signing_key": {"kid": snapshot.keyring.active.kid, "usable": key_ok},
            "key_sources": key_source_health(snapshot),
        }
        return Response(json.dumps(body), status_code=200 if key_ok else 503, media_type="application/json")
