"""The decision pipeline: match, authenticate, authorize.

``decide`` turns a request into a ``Decision`` without forwarding anything,
so the proxy, the WebSocket proxy, the decision endpoint and ``gate explain``
all reach the same verdict the same way. It needs only a snapshot and the
request's method, host, raw path, query string and headers, so it also runs
without a server. With ``explain=True`` the decision also lists every check
it ran; the server leaves that off so the request path allocates nothing extra.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from gate.config.snapshot import Snapshot
from gate.errors import BearerError
from gate.proxy.authorize import AUTHORIZE_STEPS, RequestFacts, authorize
from gate.proxy.bearer import bearer_token
from gate.proxy.headers import Headers
from gate.proxy.paths import PathError, normalise_path
from gate.proxy.routes import Route, request_host
from gate.state import SharedState
from gate.tokens.revocation_list import reject_if_revoked
from gate.tokens.verifier import TokenVerifier, VerifiedToken

_QUERY_SYNTAX = re.compile(rb"^[A-Za-z0-9\-._~!$&'()*+,;=:@%/?]*\Z")


class Verifier(Protocol):
    """The token verifier interface the pipeline uses.

    For gate's own ``TokenVerifier`` a cache hit is looked up with its
    ``cached`` method, which costs no coroutine.
    """

    async def verify(self, token: str) -> VerifiedToken: ...


@dataclass(slots=True)
class ProxyRequest:
    """The parts of a request the pipeline reads. Header names are lower case."""

    method: str
    raw_path: bytes
    query_string: bytes = b""
    headers: Headers = field(default_factory=list)

    @classmethod
    def from_scope(cls, scope: dict[str, Any]) -> ProxyRequest:
        """Read an ASGI ``http`` or ``websocket`` scope; a WebSocket handshake is a GET."""
        raw_path = scope.get("raw_path") or scope["path"].encode()
        return cls(scope.get("method", "GET"), raw_path, scope.get("query_string", b""), scope["headers"])

    @classmethod
    def create(
        cls,
        method: str,
        host: str,
        raw_path: bytes,
        query_string: bytes = b"",
        headers: Iterable[tuple[bytes, bytes]] = (),
    ) -> ProxyRequest:
        """Build a request from its parts, for callers without an ASGI scope such as ``gate explain``.

        ``host`` becomes the ``Host`` header, replacing any in ``headers``.
        """
        lowered = [(name.lower(), value) for name, value in headers if name.lower() != b"host"]
        return cls(method.upper(), raw_path, query_string, [(b"host", host.encode("idna")), *lowered])

    def host_header(self) -> list[bytes]:
        return [value for name, value in self.headers if name == b"host"]


@dataclass(frozen=True)
class Rejection:
    """A denial that is not about the token: a bad request target or no route."""

    error: str
    description: str


@dataclass(frozen=True)
class Check:
    """One check of a decision and its outcome; ``reason_id`` is set when it failed."""

    name: str
    passed: bool
    reason_id: str | None = None
    description: str = ""


@dataclass(slots=True)
class Decision:
    """The verdict on one request, and what it was based on.

    ``status`` is the response status for a denied request and 200 for a
    granted one, which the forwarder replaces with the upstream's status.
    ``error`` is a ``BearerError`` for token problems (401 or 403 with an RFC
    6750 challenge) and a ``Rejection`` for 400 and 404. ``checks`` is
    filled only when ``decide`` runs with ``explain=True``.
    """

    granted: bool
    reason_id: str
    status: int
    route: Route | None = None
    path: str | None = None
    token: VerifiedToken | None = None
    error: BearerError | Rejection | None = None
    checks: tuple[Check, ...] = ()


async def decide(
    snapshot: Snapshot, request: ProxyRequest, state: SharedState | None = None, *, explain: bool = False
) -> Decision:
    """Match ``request`` to a route of ``snapshot``, then authenticate and authorize it.

    With ``state``, a token that gate's revocation endpoint revoked is
    rejected; without it (``gate explain`` runs offline) revocations are not
    looked up. With ``explain``, the decision lists each check in ``checks``.
    """
    trace: list[Check] | None = [] if explain else None
    hosts = request.host_header()
    if len(hosts) > 1:
        rejection = Rejection("invalid_request", "The request has more than one Host header.")
        return _rejected(400, "bad_host", rejection, _noted(trace, "host", rejection, "bad_host"))

    try:
        path = normalise_path(request.raw_path)
        if not _QUERY_SYNTAX.match(request.query_string):
            raise PathError("the query string contains characters that must be percent-encoded")
    except PathError as error:
        rejection = Rejection("invalid_path", f"The request path is rejected: {error}.")
        return _rejected(400, "bad_path", rejection, _noted(trace, "path", rejection, "bad_path"))
    _note(trace, "path", path)

    host = request_host(hosts[0] if hosts else None)
    route = snapshot.routes.match(request.method, host, path)
    if route is None:
        rejection = Rejection("not_found", "No route matches this request.")
        return _rejected(404, "no_route", rejection, _noted(trace, "route", rejection, "no_route"))
    _note(trace, "route", route.id)

    token: VerifiedToken | None = None
    try:
        token = await authenticate(snapshot.verifier, route.mode, request.headers, trace)
        if token is not None and state is not None:
            _check_revocation(state, token, snapshot.config.issuer, trace)
        if token is not None:
            facts = RequestFacts(request.method, path, host, request.headers)
            if trace is None:
                authorize(route.requirements, token, facts)
            else:
                _authorize_traced(route, token, facts, trace)
    except BearerError as error:
        return Decision(False, error.reason_id, error.status, route, path, token, error, tuple(trace or ()))

    reason_id = "token_accepted" if token is not None else f"{route.mode}_route"
    return Decision(True, reason_id, 200, route, path, token, checks=tuple(trace or ()))


def _check_revocation(state: SharedState, token: VerifiedToken, own_issuer: str, trace: list[Check] | None) -> None:
    try:
        reject_if_revoked(state, token, own_issuer)
    except BearerError as error:
        if trace is not None:
            trace.append(Check("revocation", False, error.reason_id, error.description))
        raise
    _note(trace, "revocation", "the token is not revoked")


def _authorize_traced(route: Route, token: VerifiedToken, facts: RequestFacts, trace: list[Check]) -> None:
    """Run the authorize steps one at a time, as ``authorize`` does, noting each outcome."""
    for name, step in AUTHORIZE_STEPS:
        try:
            step(route.requirements, token, facts)
        except BearerError as error:
            trace.append(Check(name, False, error.reason_id, error.description))
            raise
        trace.append(Check(name, True))


async def authenticate(
    verifier: Verifier, mode: str, headers: Headers, trace: list[Check] | None = None
) -> VerifiedToken | None:
    """Return the verified bearer token, or ``None`` where ``mode`` lets a request pass without one.

    Public routes never read the token. Optional routes verify a bearer token
    that is sent and reject a bad one (RFC 6750 section 3.1), but pass a
    request without one, including one whose ``Authorization`` has another scheme.
    """
    if mode == "public":
        _note(trace, "token", "not read on a public route")
        return None

    try:
        token = bearer_token(headers)
    except BearerError as error:
        if mode == "optional" and error.reason_id == "missing_token":
            _note(trace, "token", "none sent, which an optional route allows")
            return None
        if trace is not None:
            trace.append(Check("token", False, error.reason_id, error.description))
        raise
    _note(trace, "token", "a bearer token is present")

    try:
        cached = verifier.cached(token) if isinstance(verifier, TokenVerifier) else None
        verified = cached or await verifier.verify(token)
    except BearerError as error:
        if trace is not None:
            trace.append(Check("verification", False, error.reason_id, error.description))
        raise
    _note(trace, "verification", "signature, issuer and time claims are valid")
    return verified


def _note(trace: list[Check] | None, name: str, description: str) -> None:
    if trace is not None:
        trace.append(Check(name, True, description=description))


def _noted(trace: list[Check] | None, name: str, rejection: Rejection, reason_id: str) -> tuple[Check, ...]:
    if trace is None:
        return ()
    return (*trace, Check(name, False, reason_id, rejection.description))


def _rejected(status: int, reason_id: str, rejection: Rejection, checks: tuple[Check, ...] = ()) -> Decision:
    return Decision(False, reason_id, status, error=rejection, checks=checks)
