"""Header hygiene between client, gate and upstream.

Hop-by-hop headers (RFC 9110 section 7.6.1) and every header named in
``Connection`` are removed in both directions. Towards the upstream, gate also
removes whatever a client could use to pretend to be someone: identity headers
gate sets itself, in every case and underscore spelling, and forwarding headers,
which gate writes afresh.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from gate.config.model import IdentityHeadersConfig

Headers = list[tuple[bytes, bytes]]

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
FORWARDING = frozenset({b"forwarded", b"x-forwarded-for", b"x-forwarded-host", b"x-forwarded-proto", b"x-real-ip"})
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def canonical_name(name: bytes) -> bytes:
    """Fold ``name`` so that ``X_Gate_Subject`` and ``x-gate-subject`` compare equal."""
    return name.lower().replace(b"_", b"-")


def connection_listed(headers: Headers) -> frozenset[bytes]:
    """Return the header names listed in ``Connection`` headers, folded."""
    listed: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            listed.update(canonical_name(token.strip()) for token in value.split(b",") if token.strip())
    return frozenset(listed)


def strip_hop_by_hop(headers: Headers) -> Headers:
    """Return ``headers`` without hop-by-hop headers and those ``Connection`` names."""
    listed = connection_listed(headers)
    return [(name, value) for name, value in headers if canonical_name(name) not in HOP_BY_HOP | listed]


class IdentityHeaders:
    """The identity headers of one config: what to remove and what to add."""

    def __init__(self, config: IdentityHeadersConfig) -> None:
        self.subject = config.subject.encode()
        self.client_id = config.client_id.encode()
        self.scope = config.scope.encode()
        self.reserved = frozenset(canonical_name(name) for name in (self.subject, self.client_id, self.scope))
        self.prefix = canonical_name(config.strip_prefix.encode())

    def is_reserved(self, name: bytes) -> bool:
        folded = canonical_name(name)
        return folded in self.reserved or (bool(self.prefix) and folded.startswith(self.prefix))

    def values_for(self, claims: dict[str, object]) -> Headers:
        """Return the identity headers for ``claims``, skipping unsafe values."""
        pairs = (
            (self.subject, claims.get("sub")),
            (self.client_id, claims.get("client_id")),
            (self.scope, claims.get("scope")),
        )
        return [(name, value.encode()) for name, value in pairs if _safe_header_value(value)]


def _safe_header_value(value: object) -> bool:
    return isinstance(value, str) and value.isascii() and not _CONTROL_CHARACTERS.search(value)


def upstream_request_headers(
    client_headers: Headers,
    *,
    identity: IdentityHeaders,
    keep_authorization: bool,
    added: Iterable[tuple[bytes, bytes]],
) -> Headers:
    """Build the headers sent upstream from what the client sent and what gate adds.

    ``Host`` is dropped because the forwarding client sets the upstream's own.
    Headers gate adds are appended after the ``Connection`` filter ran, so a
    client cannot remove them.
    """
    kept: Headers = []
    for name, value in strip_hop_by_hop(client_headers):
        folded = canonical_name(name)
        if folded == b"host" or folded in FORWARDING or identity.is_reserved(name):
            continue
        if folded == b"authorization" and not keep_authorization:
            continue
        kept.append((name, value))

    kept.extend(added)
    return kept
