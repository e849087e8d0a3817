"""Routes: which upstream a request goes to, and what it must carry.

Routes are evaluated in the order of the config file, and the first route
whose host, method and path rules all match the request wins. A route without
``hosts`` or ``methods`` takes any host or method. Paths are matched,
case-sensitively, against the normalised path (see ``gate.proxy.paths``):

- ``path_prefix`` matches whole segments only: ``/api`` matches ``/api`` and
  ``/api/x`` but not ``/apix``, and a prefix ending in ``/`` matches only below it.
- ``path_glob`` matches the whole path: ``*`` stands for any characters within
  one segment, ``**`` for any characters across segments.

Hosts are compared without port and case-insensitively; ``*.example.com``
matches any name below ``example.com`` but not ``example.com`` itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gate.proxy.authorize import Requirements


def compile_glob(glob: str) -> re.Pattern[str]:
    """Translate a path glob into a regular expression over the whole path."""
    parts: list[str] = []
    for piece in re.split(r"(\*\*|\*)", glob):
        if piece == "**":
            parts.append(".*")
        elif piece == "*":
            parts.append("[^/]*")
        else:
            parts.append(re.escape(piece))
    return re.compile("".join(parts))


def request_host(host_header: bytes | None) -> str | None:
    """Return the host name of a ``Host`` header value: lower case, without port."""
    if not host_header:
        return None

    host = host_header.decode("latin-1").strip().lower()
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    host = host.rpartition(":")[0] if ":" in host else host
    return host.rstrip(".")


@dataclass(frozen=True)
class Route:
    """One compiled route of the config."""

    id: str
    upstream: str
    requirements: Requirements
    path_prefix: str | None = None
    path_pattern: re.Pattern[str] | None = None
    hosts: tuple[str, ...] = ()
    methods: frozenset[str] = frozenset()
    strip_prefix: bool = False
    forward_authorization: bool = False
    read_timeout: float | None = None

    @property
    def mode(self) -> str:
        return self.requirements.mode

    def matches(self, method: str, host: str | None, path: str) -> bool:
        return self.matches_path(path) and self.matches_method(method) and self.matches_host(host)

    def matches_path(self, path: str) -> bool:
        if self.path_pattern is not None:
            return self.path_pattern.fullmatch(path) is not None

        prefix = self.path_prefix or "/"
        if not path.startswith(prefix):
            return False
        return prefix.endswith("/") or len(path) == len(prefix) or path[len(prefix)] == "/"

    def matches_method(self, method: str) -> bool:
        return not self.methods or method in self.methods

    def matches_host(self, host: str | None) -> bool:
        if not self.hosts:
            return True
        if host is None:
            return False
        for pattern in self.hosts:
            if pattern.startswith("*."):
                if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                    return True
            elif host == pattern:
                return True
        return False

    def upstream_url(self, path: str, query_string: bytes) -> str:
        """Build the upstream URL for the normalised ``path`` and raw query."""
        if self.strip_prefix and self.path_prefix:
            path = path[len(self.path_prefix.rstrip("/")) :] or "/"
            if not path.startswith("/"):
                path = "/" + path

        url = self.upstream + path
        if query_string:
            url += "?" + query_string.decode("latin-1")
        return url


class RouteTable:
    """The routes of one config, in evaluation order."""

    def __init__(self, routes: list[Route]) -> None:
        self.routes = tuple(routes)

    def match(self, method: str, host: str | None, path: str) -> Route | None:
        """Return the first route that takes ``method`` to ``host`` at the normalised ``path``."""
        for route in self.routes:
            if route.matches(method, host, path):
                return route
        return None
