"""Rate limiting of failed client authentication (online guessing).

Failures are counted in fixed windows in ``SharedState``, per source address
and per (client id, source address). When either count reaches its limit, the
address (or the client from that address) is blocked until the window ends:
every request from it gets 429 with ``Retry-After``, correct credentials
included, so a guesser learns nothing while blocked. Both keys contain the
source address, so failures sent from elsewhere never block a client on its
own addresses.

Only failures are counted; a client that authenticates correctly never uses up
its limit. Failures naming an unknown client id are counted per address only,
so made-up client ids cannot fill the store with keys.

While a shared store cannot be reached, its ``rate_limit`` failure policy
applies to counters and blocks alike: ``local`` counts and blocks in this
replica's memory, ``reject`` answers 503 to every request.
"""

from __future__ import annotations

import logging

from gate.config.model import RateLimitConfig
from gate.errors import OAuthError
from gate.state import SharedState
from gate.state.base import SharedStateUnavailableError

logger = logging.getLogger(__name__)


class FailureLimiter:
    """Block sources of repeated client authentication failures."""

    def __init__(self, state: SharedState) -> None:
        self.state = state

    async def check(self, settings: RateLimitConfig, client_id: str | None, address: str) -> None:
        """Raise a 429 ``OAuthError`` if ``address``, or ``client_id`` from ``address``, is blocked.

        Raise a 503 ``OAuthError`` when the shared state cannot be reached and
        its ``rate_limit`` failure policy is ``reject``.
        """
        if not settings.enabled:
            return

        try:
            blocked = await self.state.is_blocked(_blocked_key(_address_key(address)))
            if not blocked and client_id is not None:
                blocked = await self.state.is_blocked(_blocked_key(_client_key(client_id, address)))
        except SharedStateUnavailableError:
            logger.warning(
                "cannot check the rate limit because the shared state is unreachable; returning 503",
                extra={"event": "rate_limit_error", "client_id": client_id, "address": address},
            )
            raise rate_limit_unavailable() from None

        if blocked:
            raise too_many_failures(settings.window)

    async def record_failure(self, settings: RateLimitConfig, client_id: str | None, address: str) -> None:
        """Count one failed authentication; block the source when a limit is reached."""
        if not settings.enabled:
            return

        counted = [(_address_key(address), settings.max_failures_per_address)]
        if client_id is not None:
            counted.append((_client_key(client_id, address), settings.max_failures_per_client_address))

        try:
            for key, limit in counted:
                result = await self.state.hit(key, settings.window, limit)
                if result.count >= limit:
                    await self.state.block(_blocked_key(key), result.retry_after)
        except SharedStateUnavailableError:
            logger.warning("failure not counted: shared state unavailable", extra={"event": "rate_limit_error"})


def rate_limit_unavailable() -> OAuthError:
    return OAuthError(
        "temporarily_unavailable",
        "The server cannot check its rate limits right now; retry later.",
        reason_id="rate_limit_store_unavailable",
        status=503,
    )


def too_many_failures(retry_after: int) -> OAuthError:
    # RFC 6749 defines no error code for rate limiting; temporarily_unavailable
    # is the registered code closest in meaning.
    return OAuthError(
        "temporarily_unavailable",
        "Too many failed authentication attempts from this address; retry later.",
        reason_id="rate_limited",
        status=429,
        retry_after=retry_after,
    )


def _address_key(address: str) -> str:
    return f"authfail:addr:{address}"


def _client_key(client_id: str, address: str) -> str:
    return f"authfail:client:{address}:{client_id}"


def _blocked_key(key: str) -> str:
    return f"blocked:{key}"
