"""The ``gate explain`` command: read the request from the command line, print the report.

Exit status: 0 when the request would be granted, 3 when it would be denied,
1 when the config or an option value is unusable. argparse itself exits with
2 on a malformed command line, so 2 is never a decision.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from gate.config.compile import load_snapshot
from gate.errors import ConfigError
from gate.explain.report import ExplainRequest, explain

EXIT_GRANTED = 0
EXIT_ERROR = 1
EXIT_DENIED = 3


class UsageError(ValueError):
    """An option value that ``gate explain`` cannot use."""


def parse_request(method: str, url: str, header_lines: list[str], token: str | None) -> ExplainRequest:
    """Build the request from ``--method``, ``--url``, ``--header`` and the token options.

    ``url`` is either a path such as ``/orders?id=1`` or an ``http(s)://`` URL
    whose host becomes the ``Host`` header unless ``--header 'Host: ...'`` is
    given. The path is kept exactly as typed, escapes included, because the
    normalisation under test is the one ``decide`` applies.
    """
    headers = [_parse_header(line) for line in header_lines]
    host = next((value.decode("latin-1") for name, value in headers if name.lower() == b"host"), None)
    headers = [(name, value) for name, value in headers if name.lower() != b"host"]

    if url.startswith("/"):
        target = url
    else:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise UsageError(f"--url {url!r} is neither a path starting with '/' nor an http:// or https:// URL")
        host = host or parts.netloc
        target = url[len(f"{parts.scheme}://{parts.netloc}") :] or "/"

    target = target.partition("#")[0]
    raw_path, _, query = target.partition("?")

    if token is not None:
        if any(name.lower() == b"authorization" for name, _ in headers):
            raise UsageError("give the token either with --token/--token-file or as an Authorization header, not both")
        headers.append((b"authorization", f"Bearer {token}".encode()))

    return ExplainRequest(method, host, raw_path.encode(), query.encode(), headers)


def _parse_header(line: str) -> tuple[bytes, bytes]:
    name, separator, value = line.partition(":")
    if not separator or not name.strip() or name != name.strip():
        raise UsageError(f"--header {line.split(':')[0]!r}... is not in the form 'Name: value'")
    return name.encode("latin-1"), value.strip().encode("latin-1")


def read_token(token: str | None, token_file: Path | None) -> str | None:
    """Return the token from ``--token`` or from ``--token-file`` (``-`` reads standard input)."""
    if token_file is None:
        return token

    try:
        text = sys.stdin.read() if str(token_file) == "-" else token_file.read_text()
    except OSError as error:
        raise UsageError(f"cannot read --token-file {token_file}: {error.strerror}") from None
    if not text.strip():
        raise UsageError(f"--token-file {token_file} is empty")
    return text.strip()


def run_explain(arguments: Any, out: TextIO, err: TextIO) -> int:
    """Run ``gate explain`` with parsed ``arguments``; return the exit status."""
    try:
        token = read_token(arguments.token, arguments.token_file)
        request = parse_request(arguments.method, arguments.url, arguments.header or [], token)
        snapshot = load_snapshot(arguments.config)
    except UsageError as error:
        print(f"gate explain: {error}", file=err)
        return EXIT_ERROR
    except ConfigError as error:
        print(error.render(), file=err)
        return EXIT_ERROR

    report = asyncio.run(explain(snapshot, request))
    if arguments.json:
        print(json.dumps(report, indent=2), file=out)
    else:
        print(render_text(report), file=out)
    return EXIT_GRANTED if report["decision"]["granted"] else EXIT_DENIED


def render_text(report: dict[str, Any]) -> str:
    """Format ``report`` for a terminal: request, routes tried, token, checks, decision."""
    request = report["request"]
    query = f"?{request['query']}" if request["query"] else ""
    host = next((value for name, value in request["headers"] if name == "host"), "(no Host header)")
    lines = [
        f"request:  {request['method']} {host} {request['path']}{query}",
        f"config:   {report['config']} (version {report['config_version']})",
        "",
        "routes tried, in config order:",
    ]
    width = max((len(route["id"]) for route in report["routes"]), default=0)
    for route in report["routes"]:
        verdict = "matched" if route["matched"] else "no match: " + ", ".join(route["failed"])
        lines.append(f"  {route['id']:<{width}}  {verdict:<24} {route['rule']}")
    if not report["routes"]:
        lines.append("  (none: the path was rejected before matching)")

    for source in report["key_sources"]:
        lines.append(f"key source: {json.dumps(source, default=str)}")
    lines += ["", *_token_lines(report["token"]), "", "checks:"]
    for check in report["checks"]:
        lines.append(f"  {check['result']:<11} {check['name']:<13} {_check_text(check)}".rstrip())

    lines += ["", *_decision_lines(report["decision"])]
    return "\n".join(lines)


def _token_lines(token: dict[str, Any] | None) -> list[str]:
    if token is None:
        return ["token:    none"]
    if not token["readable"]:
        return ["token:    present but not a readable JWT"]

    state = "verified" if token["verified"] else "NOT verified, shown as sent"
    return [
        f"token ({state}; the token itself is never printed):",
        f"  header: {json.dumps(token['header'], sort_keys=True)}",
        f"  claims: {json.dumps(token['claims'], sort_keys=True)}",
    ]


def _check_text(check: dict[str, Any]) -> str:
    if check["result"] != "failed":
        return check["detail"]
    part = f" [failed at: {check['failed_part']}]" if "failed_part" in check else ""
    return f"{check['reason_id']}: {check['detail']}{part}"


def _decision_lines(decision: dict[str, Any]) -> list[str]:
    verdict = "ALLOWED" if decision["granted"] else "DENIED"
    lines = [f"decision: {verdict}  status {decision['status']}  reason_id {decision['reason_id']}"]

    if decision["granted"]:
        if "upstream_url" in decision:
            lines.append(f"  upstream (not contacted): {decision['upstream_url']}")
        for name, value in decision["identity_headers"]:
            lines.append(f"  identity header: {name}: {value}")
        return lines

    if decision["www_authenticate"]:
        lines.append(f"  WWW-Authenticate: {decision['www_authenticate']}")
    lines.append(f"  body: {decision['body']}")
    if "nginx_decision_status" in decision:
        lines.append(f"  an nginx decision endpoint sends {decision['nginx_decision_status']} instead")
    return lines
