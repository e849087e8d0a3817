"""The compiled, immutable form of one config file.

A request holds the snapshot it started with until it ends; a reload builds
a new snapshot and swaps one reference, so no request ever sees half a config.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gate.config.model import GateConfig
from gate.keys.issuers import KeyStore
from gate.keys.signing import Keyring
from gate.oauth.client_auth.assertion_rules import ClientAssertionRules
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
    secret_hashes: tuple[str, ...] = ()
    subject: str = ""
    auth_methods: tuple[str, ...] = ()
    grant_types: frozenset[str] = frozenset({"client_credentials", "password"})
    introspection: bool = False
    revocation: str = "own"

    def __repr__(self) -> str:
        return f"Client(client_id={self.client_id!r}, auth_methods={self.auth_methods!r})"


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
    # Checked instead of a client's secret hashes when the client id is unknown.
    decoy_secret_hash: str = "sha256:" + "0" * 64
    key_store: KeyStore = field(default_factory=KeyStore)
    client_assertions: dict[str, ClientAssertionRules] = field(default_factory=dict)

    def inherit_caches(self, previous: Snapshot) -> None:
        """Take over the key sets ``previous`` already loaded, so a reload fetches no unchanged source again.

        The verified-token cache is not carried over: a reload may change any
        check, so tokens are verified afresh under the new config.
        """
        self.key_store.adopt(previous.key_store)

    async def start(self) -> None:
        """Start this snapshot's background work (key set refreshes); call when it starts serving."""
        await self.key_store.start()

    async def close(self) -> None:
        """Stop this snapshot's background work; call after a reload replaced it, or at shutdown."""
        await self.key_store.close()


class SnapshotHolder:
    """The current snapshot of a running gate."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.current = snapshot

    def swap(self, snapshot: Snapshot) -> None:
        self.current = snapshot

    async def replace(self, snapshot: Snapshot) -> None:
        """Start ``snapshot``'s background work, swap it in, then stop the old snapshot's.

        Key sets the old snapshot already loaded are carried over, so a reload
        causes no key fetch for sources that did not change.
        """
        previous = self.current
        snapshot.key_store.adopt(previous.key_store)
        await snapshot.start()
        self.swap(snapshot)
        await previous.close()
