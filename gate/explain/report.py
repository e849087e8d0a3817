"""``gate explain``: run the proxy's decision on one request offline and report every check.

The report comes from the same ``decide`` that the proxy and the decision
endpoint run, with ``explain=True`` so that the decision lists its checks.
No upstream is contacted. Two things differ from a running gate:

- revocations are not looked up, because the revocation list lives in the
  running gate's shared state;
- the verified-token cache starts empty, so every token is verified in full.

The token is never part of the report: its header and claims are, read
without verification when verification failed, and the ``Authorization``
header is shown as ``[redacted]``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt

from gate.config.snapshot import Snapshot
from gate.errors import BearerError
from gate.proxy.authorize import AUTHORIZE_STEPS, token_audiences, token_scopes
from gate.proxy.bearer import challenge
from gate.proxy.headers import IdentityHeaders
from gate.proxy.paths import PathError, normalise_path
from gate.proxy.pipeline import Decision, ProxyRequest, decide
from gate.proxy.replies import denial_parts
from gate.proxy.routes import Route, request_host
from gate.tokens.verifier import VerifiedToken

CHECK_ORDER = ("host", "path", "route", "token", "verification", "revocation", *(name for name, _ in AUTHORIZE_STEPS))
"""Every check ``decide`` can record, in the order it runs them."""

# The part of token verification that each verifier reason id points to.
VERIFICATION_PARTS = {
    "token_too_long": "format",
    "malformed_token": "format",
    "wrong_token_type": "type (typ header)",
    "missing_kid": "key selection",
    "unknown_kid": "key selection",
    "no_matching_key": "key selection",
    "keys_unavailable": "key selection",
    "algorithm_mismatch": "key selection (alg)",
    "bad_signature": "signature",
    "issuer_mismatch": "issuer (iss)",
    "unknown_issuer": "issuer (iss)",
    "token_expired": "time (exp)",
    "token_not_yet_valid": "time (nbf)",
    "missing_claim": "required claims",
}

NGINX_STATUSES = (401, 403)
_PASSED_DETAIL = {"path": "normalised to {}", "route": "matched route {!r}"}


@dataclass(frozen=True)
class ExplainRequest:
    """The request to explain, as given on the command line."""

    method: str
    host: str | None
    raw_path: bytes
    query_string: bytes
    headers: list[tuple[bytes, bytes]]

    def proxy_request(self) -> ProxyRequest:
        if self.host is None:
            lowered = [(name.lower(), value) for name, value in self.headers]
            return ProxyRequest(self.method.upper(), self.raw_path, self.query_string, lowered)
        return ProxyRequest.create(self.method, self.host, self.raw_path, self.query_string, self.headers)


async def explain(snapshot: Snapshot, request: ExplainRequest) -> dict[str, Any]:
    """Decide on ``request`` as the proxy would and return the report as JSON-ready data."""
    proxy_request = request.proxy_request()
    key_sources = await _fetch_remote_keys(snapshot)
    decision = await decide(snapshot, proxy_request, explain=True)

    return {
        "key_sources": key_sources,
        "config": snapshot.source,
        "config_version": snapshot.version,
        "request": _request_report(proxy_request),
        "routes": _route_report(snapshot, proxy_request, decision),
        "token": _token_report(proxy_request, decision),
        "checks": _check_report(decision),
        "decision": _decision_report(snapshot, proxy_request, decision),
    }


async def _fetch_remote_keys(snapshot: Snapshot) -> list[Any]:
    """Fetch every remote key set once, as ``gate serve`` does at startup, and return each source's state.

    A source that cannot be fetched stays empty, so tokens of its issuer are
    explained as ``keys_unavailable``, as a running gate would answer them.
    """
    sources = snapshot.key_store.remote_sources
    await asyncio.gather(*(source.refresh("explain") for source in sources), return_exceptions=True)
    _, states = snapshot.key_store.status()
    await snapshot.key_store.close()
    return list(states)


def _request_report(request: ProxyRequest) -> dict[str, Any]:
    headers = [
        [name.decode("latin-1"), "[redacted]" if name == b"authorization" else value.decode("latin-1")]
        for name, value in request.headers
    ]
    return {
        "method": request.method,
        "path": request.raw_path.decode("latin-1"),
        "query": request.query_string.decode("latin-1"),
        "headers": headers,
    }


def _route_report(snapshot: Snapshot, request: ProxyRequest, decision: Decision) -> list[dict[str, Any]]:
    """List the routes tried before the match (or all of them), each with the rules it failed."""
    try:
        path = normalise_path(request.raw_path)
    except PathError:
        return []

    hosts = request.host_header()
    host = request_host(hosts[0]) if len(hosts) == 1 else None
    report: list[dict[str, Any]] = []
    for route in snapshot.routes.routes:
        failed = [
            rule
            for rule, matches in (
                ("path", route.matches_path(path)),
                ("method", route.matches_method(request.method)),
                ("host", route.matches_host(host)),
            )
            if not matches
        ]
        report.append({"id": route.id, "rule": _route_rule(route), "matched": not failed, "failed": failed})
        if route is decision.route:
            break
    return report


def _route_rule(route: Route) -> str:
    rule = f"path_glob {route.path_pattern.pattern}" if route.path_pattern else f"path_prefix {route.path_prefix}"
    if route.methods:
        rule += f", methods {' '.join(sorted(route.methods))}"
    if route.hosts:
        rule += f", hosts {' '.join(route.hosts)}"
    return rule + f", auth {route.mode}"


def _token_report(request: ProxyRequest, decision: Decision) -> dict[str, Any] | None:
    """Return the header and claims of the bearer token, never the token itself."""
    values = [value for name, value in request.headers if name == b"authorization"]
    scheme, _, token = values[0].decode("latin-1").strip().partition(" ") if len(values) == 1 else ("", "", "")
    if scheme.lower() != "bearer" or not token.strip():
        return None

    verified = decision.token is not None
    try:
        header = jwt.get_unverified_header(token.strip())
        claims = (
            decision.token.claims if decision.token else jwt.decode(token.strip(), options={"verify_signature": False})
        )
    except jwt.InvalidTokenError:
        return {"verified": False, "readable": False}
    return {"verified": verified, "readable": True, "header": header, "claims": claims}


def _check_report(decision: Decision) -> list[dict[str, Any]]:
    """Return every check in order: the ones ``decide`` ran, then the ones it did not reach."""
    ran = {check.name: check for check in decision.checks}
    failed = next((check.name for check in decision.checks if not check.passed), None)
    report: list[dict[str, Any]] = []

    for name in CHECK_ORDER:
        check = ran.get(name)
        if check is not None:
            detail = _PASSED_DETAIL.get(name, "{}").format(check.description) if check.passed else check.description
            entry = {"name": name, "result": "passed" if check.passed else "failed", "detail": detail}
            if not check.passed:
                entry["reason_id"] = check.reason_id
                entry.update(_failure_part(name, check.reason_id))
            report.append(entry)
        elif name == "host" and failed != "host":
            continue
        elif name == "revocation" and decision.token is not None:
            report.append(
                {
                    "name": name,
                    "result": "not checked",
                    "detail": "gate explain cannot see the revocations of a running gate",
                }
            )
        else:
            report.append({"name": name, "result": "not run", "detail": ""})

    if decision.route is not None and decision.token is not None:
        _add_requirement_details(report, decision.route, decision.token)
    return report


def _failure_part(name: str, reason_id: str | None) -> dict[str, str]:
    if name == "verification" and reason_id in VERIFICATION_PARTS:
        return {"failed_part": VERIFICATION_PARTS[reason_id]}
    return {}


def _add_requirement_details(report: list[dict[str, Any]], route: Route, token: VerifiedToken) -> None:
    """Say what each authorize check required and what the token had."""
    requirements = route.requirements
    claims = token.claims
    details = {
        "issuer": f"iss {claims.get('iss')!r}; accepted: {', '.join(sorted(requirements.issuers))}",
        "audience": (
            f"aud {sorted(token_audiences(token))}; required: {requirements.audience_match} of"
            f" {sorted(requirements.audiences)}"
        ),
        "scopes": (
            f"granted {sorted(token_scopes(token))}; required: {sorted(requirements.scopes)}"
            if requirements.scopes
            else "no scope required"
        ),
        "claims": (
            "; ".join(
                f"{name} {claims.get(name)!r} must be one of {list(values)}"
                for name, values in requirements.claims.items()
            )
            if requirements.claims
            else "no claim required"
        ),
        "policy": requirements.policy.source if requirements.policy else "no policy",
    }
    for entry in report:
        if entry["name"] in details and entry["result"] in ("passed", "failed"):
            own = entry["detail"]
            entry["detail"] = f"{own} ({details[entry['name']]})" if own else details[entry["name"]]


def _decision_report(snapshot: Snapshot, request: ProxyRequest, decision: Decision) -> dict[str, Any]:
    report: dict[str, Any] = {
        "granted": decision.granted,
        "status": decision.status,
        "reason_id": decision.reason_id,
        "route": decision.route.id if decision.route else None,
    }

    if not decision.granted:
        _start, body = denial_parts(decision)
        report["www_authenticate"] = challenge(decision.error) if isinstance(decision.error, BearerError) else None
        report["body"] = body["body"].decode()
        if decision.status not in NGINX_STATUSES:
            report["nginx_decision_status"] = 403
        return report

    identity = IdentityHeaders(snapshot.config.identity_headers)
    claims = decision.token.claims if decision.token else {}
    report["identity_headers"] = [[name.decode(), value.decode()] for name, value in identity.values_for(claims)]
    if decision.route is not None and decision.path is not None:
        report["upstream_url"] = decision.route.upstream_url(decision.path, request.query_string)
    if decision.token is not None:
        report["token_expires_at"] = datetime.fromtimestamp(decision.token.expires_at, UTC).isoformat()
    return report
