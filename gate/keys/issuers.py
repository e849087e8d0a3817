"""Trusted issuers: an exact ``iss``, its verification policy and its keys.

Keys are stored per issuer. A kid is looked up only among the keys of the
issuer that the token names, so a key of one issuer never verifies a token
of another. Key material in a token header (``jwk``, ``jku``, ``x5u``,
``x5c``) is never read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from gate.keys.jwk import KeySet, TrustedKey
from gate.keys.remote import RemoteKeySource

# A token without a kid is tried against at most this many keys of its issuer,
# so such tokens cannot make gate check a signature against every key.
MAX_KEYS_WITHOUT_KID = 4


class KeyLookupError(Exception):
    """No key of the issuer can verify the token; ``reason_id`` names the cause."""

    def __init__(self, reason_id: str, description: str) -> None:
        self.reason_id = reason_id
        self.description = description
        super().__init__(description)


@dataclass(frozen=True)
class IssuerPolicy:
    """The checks on one issuer's tokens beyond their signature."""

    algorithms: frozenset[str]
    audiences: tuple[str, ...] = ()
    audience_match: Literal["any", "all"] = "any"
    leeway: int = 60
    required_claims: tuple[str, ...] = ()
    max_token_lifetime: int | None = None
    token_type: str | None = None
    single_use_assertions: bool = True


class TrustedIssuer:
    """One issuer whose tokens gate accepts: local keys plus cached remote key sets."""

    def __init__(
        self, issuer: str, policy: IssuerPolicy, local: Iterable[TrustedKey], remote: Iterable[RemoteKeySource]
    ) -> None:
        self.issuer = issuer
        self.policy = policy
        self.local = KeySet(local)
        self.remote = tuple(remote)

    def known_keys(self, kid: str | None, algorithm: str) -> list[TrustedKey]:
        """Return the keys already loaded that may verify a token with this ``kid`` and ``alg``, without fetching.

        An empty list means ``keys_for`` has to decide: it may fetch, and it raises for a key that cannot be found.
        """
        return self._lookup(kid, algorithm)

    async def keys_for(self, kid: str | None, algorithm: str) -> list[TrustedKey]:
        """Return the keys that may verify a token with this ``kid`` and ``alg``.

        Raises ``KeyLookupError`` with ``keys_unavailable`` when a source that
        might contain the key has no usable key set, and ``unknown_kid`` otherwise.
        """
        found = self._lookup(kid, algorithm)
        if found:
            return found

        await self._refresh_for_unknown(kid)
        found = self._lookup(kid, algorithm)
        if found:
            return found

        now = time.monotonic()
        if any(not source.usable(now) for source in self.remote):
            raise KeyLookupError("keys_unavailable", "The issuer's signing keys are unavailable right now.")
        if kid is None:
            raise KeyLookupError("no_matching_key", "No key of the issuer fits the token's algorithm.")
        raise KeyLookupError("unknown_kid", "The token was signed with an unknown key.")

    def _lookup(self, kid: str | None, algorithm: str) -> list[TrustedKey]:
        now = time.monotonic()
        usable = [source.key_set for source in self.remote if source.key_set is not None and source.usable(now)]
        sets = [self.local, *usable]

        if kid is not None:
            for key_set in sets:
                key = key_set.by_kid.get(kid)
                if key is None:
                    continue
                if key.trusted and algorithm not in key.algorithms:
                    raise KeyLookupError("algorithm_mismatch", "The token's algorithm does not match its key.")
                return [key] if _fits(key, algorithm) else []
            candidates = [key for key in self.local.without_kid if _fits(key, algorithm)]
        else:
            candidates = [key for key_set in sets for key in key_set.keys if _fits(key, algorithm)]
        return candidates[:MAX_KEYS_WITHOUT_KID]

    async def _refresh_for_unknown(self, kid: str | None) -> None:
        if self.remote:
            await asyncio.gather(*(source.refresh_for_unknown_kid(kid) for source in self.remote))


def _fits(key: TrustedKey, algorithm: str) -> bool:
    if not key.trusted or algorithm not in key.algorithms:
        return False
    return key.not_after is None or key.not_after > time.time()


class KeyStore:
    """Every trusted issuer of one snapshot, and the lifecycle of their remote sources.

    ``client_keys`` contains the keys of ``private_key_jwt`` clients by client id.
    They live apart from ``issuers``, so a client id that equals some issuer's
    ``iss`` can never reach that issuer's keys, nor the other way round.
    """

    def __init__(
        self,
        issuers: Iterable[TrustedIssuer] = (),
        *,
        client_keys: Mapping[str, TrustedIssuer] | None = None,
    ) -> None:
        self.issuers: dict[str, TrustedIssuer] = {issuer.issuer: issuer for issuer in issuers}
        self.client_keys: dict[str, TrustedIssuer] = dict(client_keys or {})

    def get(self, issuer: str) -> TrustedIssuer | None:
        return self.issuers.get(issuer)

    @property
    def remote_sources(self) -> list[RemoteKeySource]:
        every = [*self.issuers.values(), *self.client_keys.values()]
        return [source for issuer in every for source in issuer.remote]

    def adopt(self, previous: KeyStore) -> None:
        """Take over the loaded key sets of sources that a reload kept, so they need no fetch."""
        earlier = {(source.issuer, source.name): source for source in previous.remote_sources}
        for source in self.remote_sources:
            match = earlier.get((source.issuer, source.name))
            if match is not None:
                source.adopt(match)

    async def start(self) -> None:
        """Start background refreshes of every remote source."""
        for source in self.remote_sources:
            await source.start()

    async def close(self) -> None:
        """Stop background refreshes and close their HTTP clients."""
        for source in self.remote_sources:
            await source.close()

    def status(self) -> tuple[bool, list[Mapping[str, Any]]]:
        """Describe every remote source; ready unless a source set to wait for its first fetch has none yet."""
        described = []
        ready = True
        for source in self.remote_sources:
            described.append(source.status())
            if source.settings.wait_for_first_fetch and source.key_set is None:
                ready = False
        return ready, described
