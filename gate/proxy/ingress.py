"""The original request that an ingress sends to the decision endpoint for a verdict.

Each ingress describes the request it holds in its own way, and only that
way is read, so a header that one ingress passes through from the client
cannot stand in for one that another ingress sets:

- nginx ``auth_request`` sends a subrequest with ``X-Original-Method`` and
  ``X-Original-URI`` (set with ``proxy_set_header``) and the original ``Host``;
- Traefik ForwardAuth sends a GET with ``X-Forwarded-Method``,
  ``X-Forwarded-Uri`` and ``X-Forwarded-Host``, which it overwrites;
- Envoy's HTTP ``ext_authz`` filter repeats the request's method, ``Host`` and
  headers, and puts its ``path_prefix`` in front of the original path.

The decision endpoint trusts these headers only from ``trusted_ingresses``.
"""

from __future__ import annotations

from typing import Any

from gate.config.model import DecisionEndpointConfig
from gate.proxy.headers import Headers
from gate.proxy.pipeline import ProxyRequest

_HEADER_CONVENTIONS: dict[str, tuple[bytes, bytes, bytes]] = {
    # ingress: (method header, URI header, host header)
    "nginx": (b"x-original-method", b"x-original-uri", b"host"),
    "traefik": (b"x-forwarded-method", b"x-forwarded-uri", b"x-forwarded-host"),
}


class IngressRequestError(ValueError):
    """The ingress did not describe the original request in the form its convention requires."""


def original_request(endpoint: DecisionEndpointConfig, scope: dict[str, Any]) -> ProxyRequest:
    """Return the original request described by the ingress request in ``scope``.

    Raises ``IngressRequestError`` when a header the convention needs is
    missing or repeated, or when an Envoy check request is not below ``path``.
    """
    if endpoint.ingress == "envoy":
        return _envoy_request(endpoint.path, scope)

    method_header, uri_header, host_header = _HEADER_CONVENTIONS[endpoint.ingress]
    headers: Headers = scope["headers"]
    method = _required(headers, method_header)
    uri = _required(headers, uri_header)
    host = _optional(headers, host_header)

    raw_path, _, query_string = uri.partition(b"?")
    request_headers = [(name, value) for name, value in headers if name != b"host"]
    if host is not None:
        request_headers.insert(0, (b"host", host))
    return ProxyRequest(method.decode("latin-1").upper(), raw_path, query_string, request_headers)


def _envoy_request(prefix: str, scope: dict[str, Any]) -> ProxyRequest:
    """Strip the configured ``path_prefix`` from an Envoy check request; the rest is the original."""
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
    prefix_bytes = prefix.encode()
    if not raw_path.startswith(prefix_bytes + b"/"):
        raise IngressRequestError(f"an Envoy check request must have a path below {prefix}/")

    return ProxyRequest(
        scope["method"], raw_path[len(prefix_bytes) :], scope.get("query_string", b""), scope["headers"]
    )


def _required(headers: Headers, name: bytes) -> bytes:
    value = _optional(headers, name)
    if value is None:
        raise IngressRequestError(f"the {name.decode()} header is missing; the ingress must set it")
    return value


def _optional(headers: Headers, name: bytes) -> bytes | None:
    values = [value.strip() for key, value in headers if key == name]
    if len(values) > 1:
        raise IngressRequestError(f"the {name.decode()} header is repeated")
    return values[0] if values and values[0] else None


def serves(endpoint: DecisionEndpointConfig, path: str) -> bool:
    """Tell whether ``path`` is a request to ``endpoint``: its exact path, or below it for Envoy."""
    if endpoint.ingress == "envoy":
        return path.startswith(endpoint.path + "/")
    return path == endpoint.path
