"""The compiled, immutable form of one config file.

A request holds the snapshot it started with until it ends; a reload builds
a new snapshot and swaps one reference, so no request ever sees half a config.
"""

from __future__ import annotations

from dataclasses import dataclass

from gate.config.model import GateConfig
from gate.keys.signing import Keyring
from gate.proxy.routes import RouteTable
from gate.state.settings import RedisSettings
from gate.tokens.issuer import TokenIssuer
from gate.tokens.verifier import TokenVerifier


@dataclass(frozen=True)
class Client:
    """An OAuth client as the token endpoint uses it."""

    client_id: str
    service_accounts: frozenset[str]
    audience: tuple[str, ...]
    scopes: frozenset[str]
    token_lifetime: int


@dataclass(frozen=True)
class Snapshot:
    """Everything one config file compiles into."""

    config: GateConfig
    source: str
    version: str
    loaded_at: float
    keyring: Keyring
    issuer: TokenIssuer
    verifier: TokenVerifier
    clients: dict[str, Client]
    service_accounts: dict[str, tuple[str, ...]]
    routes: RouteTable
    shared_state: RedisSettings | None = None
    """Settings of the Redis backend, or ``None`` for the in-memory default; read once at startup."""


class SnapshotHolder:
    """The current snapshot of a running gate."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.current = snapshot

    def swap(self, snapshot: Snapshot) -> None:
        self.current = snapshot
