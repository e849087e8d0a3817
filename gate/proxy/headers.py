"""Header hygiene between client, gate and upstream.

Hop-by-hop headers (RFC 9110 section 7.6.1) and every header named in
``Connection`` are removed in both directions. Towards the upstream, gate also
removes whatever a client could use to pretend to be someone: identity headers
gate sets itself, in every case and underscore spelling, and forwarding headers,
which gate writes afresh.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable
from random import getrandbits

from gate.config.model import ForwardingConfig, IdentityHeadersConfig

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
# uvicorn sends the client its 100 Continue once gate reads the body, so the upstream gets the
# body at once and no Expect header. Given the header, aiohttp would hold the body back until a
# 100 Continue that an HTTP/1.0 upstream never sends, and no read timeout runs meanwhile.
_DROPPED_TOWARDS_UPSTREAM = frozenset({b"expect", b"host", b"x-request-id"})
_DROPPED_FROM_RESPONSES = HOP_BY_HOP | {b"date"}
_DROPPED_FROM_BODILESS_RESPONSES = _DROPPED_FROM_RESPONSES | {b"content-length"}
_BODILESS_STATUSES = frozenset({204, 304})
_HOST = frozenset({b"host"})
_REQUEST_ID_NAME = frozenset({b"x-request-id"})
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_CHARACTERS_BYTES = re.compile(rb"[\x00-\x1f\x7f]")
_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
MAX_ENCODED_CLAIM_SETS = 4096
"""Claim sets whose identity header values are kept per config; past this the store starts over."""


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
    dropped = HOP_BY_HOP | connection_listed(headers)
    return [(name, value) for name, value in headers if canonical_name(name) not in dropped]


def response_headers(raw_headers: Headers, status: int) -> Headers:
    """Return the upstream's response headers as the client gets them.

    Hop-by-hop headers go, and so does ``Date``, because uvicorn adds its own
    and a response with two ``Date`` headers is invalid (RFC 9110 section 6.6.1).
    A 204 or 304 also loses ``Content-Length``. A 304 may carry the length a
    200 would have had (RFC 9110 section 8.6), but uvicorn 0.55 then expects
    that many body bytes and raises when the response ends without them.
    """
    folded = [name.lower().replace(b"_", b"-") for name, _ in raw_headers]  # canonical_name, inlined
    dropped = _DROPPED_FROM_BODILESS_RESPONSES if status in _BODILESS_STATUSES else _DROPPED_FROM_RESPONSES
    if b"connection" in folded:
        dropped = dropped | connection_listed(raw_headers)
    return [header for header, name in zip(raw_headers, folded, strict=True) if name not in dropped]


class IdentityHeaders:
    """The identity headers of one config: what to remove and what to add."""

    def __init__(self, config: IdentityHeadersConfig) -> None:
        self.claim_headers: tuple[tuple[bytes, str], ...] = (
            (config.subject.encode(), "sub"),
            (config.client_id.encode(), "client_id"),
            (config.scope.encode(), "scope"),
            *((name.encode(), claim) for name, claim in config.claims.items()),
        )
        self.reserved = frozenset(canonical_name(name) for name, _ in self.claim_headers)
        self.prefix = canonical_name(config.strip_prefix.encode())
        # Folded names never sent upstream, computed once per config instead of per header.
        always = HOP_BY_HOP | FORWARDING | _DROPPED_TOWARDS_UPSTREAM | self.reserved
        self._dropped = {True: always, False: always | {b"authorization"}}
        self._encoded: dict[int, tuple[dict[str, object], tuple[tuple[bytes, bytes], ...]]] = {}

    def dropped_towards_upstream(self, keep_authorization: bool) -> frozenset[bytes]:
        """Return the folded names removed from every upstream request, ``Authorization`` included unless kept."""
        return self._dropped[keep_authorization]

    def is_reserved(self, name: bytes) -> bool:
        folded = canonical_name(name)
        return folded in self.reserved or (bool(self.prefix) and folded.startswith(self.prefix))

    def values_for(self, claims: dict[str, object]) -> Headers:
        """Return the identity headers for ``claims``, skipping missing and unsafe values.

        The verified-token cache hands out the same claims object for a
        repeated token, so the encoded values are kept by that object's
        identity (the object itself is held, so its id cannot be reused) and
        a repeated token costs a dict lookup instead of one encoding per claim.
        """
        cached = self._encoded.get(id(claims))
        if cached is not None and cached[0] is claims:
            return list(cached[1])

        headers = self._encode(claims)
        if len(self._encoded) >= MAX_ENCODED_CLAIM_SETS:
            self._encoded.clear()
        self._encoded[id(claims)] = (claims, tuple(headers))
        return headers

    def _encode(self, claims: dict[str, object]) -> Headers:
        headers: Headers = []
        for name, claim in self.claim_headers:
            value = encode_claim(claims.get(claim))
            if value is not None:
                headers.append((name, value))
        return headers


def encode_claim(value: object) -> bytes | None:
    """Encode a claim for a header, or return ``None`` when it cannot be written safely.

    A string is written as it is when it is printable ASCII; a string with
    control or non-ASCII characters is not written at all. Numbers, booleans,
    arrays and objects are written as compact JSON with non-ASCII characters
    escaped, so they never contain a control character. A missing claim or
    ``null`` writes no header.
    """
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode() if _safe_header_value(value) else None
    if isinstance(value, bool | int | float | list | dict):
        try:
            return json.dumps(value, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()
        except ValueError:
            return None
    return None


def _safe_header_value(value: str) -> bool:
    return value.isascii() and not _CONTROL_CHARACTERS.search(value)


class ForwardedHeaders:
    """``X-Forwarded-For``, ``-Proto`` and ``-Host`` for the upstream.

    Incoming forwarded headers are kept, and the peer appended to
    ``X-Forwarded-For``, only when the peer is one of the trusted proxies.
    From any other peer they are replaced, so a client cannot claim another
    address. ``Forwarded`` (RFC 7239) and ``X-Real-IP`` are always removed.
    """

    def __init__(self, config: ForwardingConfig) -> None:
        self.networks = tuple(ipaddress.ip_network(network, strict=False) for network in config.trusted_proxies)
        self.keep_request_id = config.keep_request_id

    def trusts(self, peer: str | None) -> bool:
        if not self.networks or peer is None:
            return False
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    def build(self, client_headers: Headers, peer: str | None, scheme: str) -> Headers:
        incoming = _first_values(client_headers, FORWARDING) if self.trusts(peer) else {}
        chain = [value for value in (incoming.get(b"x-forwarded-for"), (peer or "unknown").encode()) if value]
        host = incoming.get(b"x-forwarded-host") or _first_values(client_headers, _HOST).get(b"host")

        added = [
            (b"x-forwarded-for", b", ".join(chain)),
            (b"x-forwarded-proto", incoming.get(b"x-forwarded-proto") or scheme.encode()),
        ]
        if host:
            added.append((b"x-forwarded-host", host))
        return added

    def request_id(self, client_headers: Headers) -> str:
        """Return the client's ``X-Request-Id`` when configured and well-formed, else a new one."""
        if self.keep_request_id:
            sent = _first_values(client_headers, _REQUEST_ID_NAME).get(b"x-request-id")
            if sent and _REQUEST_ID.match(sent):
                return sent.decode()
        # Not a secret, only unique: the random module's generator costs no system call, unlike os.urandom,
        # and is reseeded in a forked worker.
        return f"{getrandbits(64):016x}"


def _first_values(headers: Headers, wanted: frozenset[bytes]) -> dict[bytes, bytes]:
    """Return the value of each header in ``wanted``; repeated ones are joined by ", "."""
    found: dict[bytes, bytes] = {}
    for name, value in headers:
        folded = name.lower()
        if folded in wanted and not _CONTROL_CHARACTERS_BYTES.search(value):
            found[folded] = found[folded] + b", " + value if folded in found else value.strip()
    return found


def upstream_request_headers(
    client_headers: Headers,
    *,
    identity: IdentityHeaders,
    keep_authorization: bool,
    added: Iterable[tuple[bytes, bytes]],
) -> Headers:
    """Build the headers sent upstream from what the client sent and what gate adds.

    ``Host`` is dropped because the forwarding client sets the upstream's own,
    and ``X-Request-Id`` because gate sets its own. A client that sent
    ``Transfer-Encoding`` loses its ``Content-Length`` (RFC 9112 section 6.3),
    so the upstream never sees both. Headers gate adds are appended after the
    ``Connection`` filter ran, so a client cannot remove them.
    """
    dropped = identity.dropped_towards_upstream(keep_authorization)
    prefix = identity.prefix
    folded_names: list[bytes] = []
    for name, _ in client_headers:
        lowered = name.lower()
        if lowered == b"transfer-encoding":
            dropped = dropped | {b"content-length"}
        elif lowered == b"connection":
            dropped = dropped | connection_listed(client_headers)
        folded_names.append(lowered.replace(b"_", b"-") if b"_" in lowered else lowered)

    kept = [
        header
        for header, folded in zip(client_headers, folded_names, strict=True)
        if folded not in dropped and not (prefix and folded.startswith(prefix))
    ]
    kept.extend(added)
    return kept


class UpstreamHeaders:
    """Builds the upstream request headers of one config."""

    def __init__(self, identity: IdentityHeadersConfig, forwarding: ForwardingConfig) -> None:
        self.identity = IdentityHeaders(identity)
        self.forwarded = ForwardedHeaders(forwarding)

    def build(
        self,
        client_headers: Headers,
        *,
        peer: str | None,
        scheme: str,
        request_id: str,
        claims: dict[str, object] | None,
        keep_authorization: bool,
    ) -> Headers:
        added = self.forwarded.build(client_headers, peer, scheme)
        added.append((b"x-request-id", request_id.encode()))
        if claims is not None:
            added.extend(self.identity.values_for(claims))

        return upstream_request_headers(
            client_headers, identity=self.identity, keep_authorization=keep_authorization, added=added
        )
