"""Routes: which upstream a normalised path goes to, and what it requires.

Routes are evaluated in the order of the config file and the first match wins.
A prefix matches whole path segments only: ``/api`` matches ``/api`` and
``/api/x`` but not ``/apix``; a prefix ending in ``/`` matches only below it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Route:
    """One compiled route of the config."""

    id: str
    path_prefix: str
    upstream: str
    strip_prefix: bool
    mode: Literal["protected", "public"]
    audience: frozenset[str]
    forward_authorization: bool

    def matches(self, path: str) -> bool:
        prefix = self.path_prefix
        if not path.startswith(prefix):
            return False
        return prefix.endswith("/") or len(path) == len(prefix) or path[len(prefix)] == "/"

    def upstream_url(self, path: str, query_string: bytes) -> str:
        """Build the upstream URL for the normalised ``path`` and raw query."""
        if self.strip_prefix:
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

    def match(self, path: str) -> Route | None:
        """Return the first route whose prefix matches ``path``."""
        for route in self.routes:
            if route.matches(path):
                return route
        return None
