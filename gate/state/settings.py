"""The compiled settings of the Redis shared-state backend, with their defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

DEFAULT_KEY_PREFIX = "gate:"
DEFAULT_CONNECT_TIMEOUT = 1.0
DEFAULT_SOCKET_TIMEOUT = 0.5
DEFAULT_MAX_CONNECTIONS = 50
DEFAULT_REVOCATION_SYNC_INTERVAL = 5.0
DEFAULT_MAX_REVOCATION_STALENESS = 60.0

SingleUsePolicy = Literal["reject", "local"]
RateLimitPolicy = Literal["local", "reject"]
RevocationPolicy = Literal["serve_known", "reject"]


@dataclass(frozen=True)
class FailurePolicy:
    """What each operation does while Redis cannot be reached.

    ``single_use``: ``reject`` raises ``SharedStateUnavailableError`` (the token
    endpoint returns 503), ``local`` checks single-use ids in this replica's
    memory only, so a replay at another replica passes.
    ``rate_limit``: ``local`` counts in this replica's memory, so the limit is
    multiplied by the number of replicas; ``reject`` raises.
    ``revocation``: ``serve_known`` keeps enforcing the revocations this replica
    already has; ``reject`` raises from ``is_revoked`` (the proxy returns 503)
    once the local list is older than ``max_revocation_staleness`` seconds.
    """

    single_use: SingleUsePolicy = "reject"
    rate_limit: RateLimitPolicy = "local"
    revocation: RevocationPolicy = "serve_known"
    max_revocation_staleness: float = DEFAULT_MAX_REVOCATION_STALENESS


@dataclass(frozen=True)
class RedisSettings:
    """How to reach Redis and how to behave when it cannot be reached.

    File paths are absolute. ``password`` is kept out of ``repr``.
    """

    url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_verify: bool = True
    key_prefix: str = DEFAULT_KEY_PREFIX
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    socket_timeout: float = DEFAULT_SOCKET_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    revocation_sync_interval: float = DEFAULT_REVOCATION_SYNC_INTERVAL
    on_unavailable: FailurePolicy = field(default_factory=FailurePolicy)

    @property
    def operation_timeout(self) -> float:
        """The maximum seconds one operation may take, connecting included, before it counts as failed."""
        return self.connect_timeout + self.socket_timeout
