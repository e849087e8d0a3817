"""Risky but valid settings, which ``gate check`` prints as warnings.

Each finding names the field path, so the caller can add the line from the
loaded document. None of these stops gate from loading the file.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from gate.config.model import GateConfig, RouteConfig
from gate.config.snapshot import Snapshot

LONG_TOKEN_LIFETIME = 3600
"""Token lifetime in seconds above which ``gate check`` warns. The schema rejects more than a day."""

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


@dataclass(frozen=True)
class Risk:
    """One risky setting: where it is and why it is risky."""

    path: tuple[str | int, ...]
    message: str


def find_risks(snapshot: Snapshot) -> list[Risk]:
    """Return every risky setting of ``snapshot``'s config, in file order."""
    config = snapshot.config
    return [*_route_risks(config), *_client_risks(config), *_listener_risks(config)]


def _route_risks(config: GateConfig) -> Iterator[Risk]:
    for index, route in enumerate(config.routes):
        path = ("routes", index)
        if route.auth.mode == "public":
            yield Risk(
                (*path, "auth", "mode"),
                f"route {route.id!r} is public: every request reaches {route.upstream} without a token",
            )

        if route.forward_authorization:
            yield Risk(
                (*path, "forward_authorization"),
                f"route {route.id!r} sends the bearer token upstream, which could replay it on other routes",
            )

        upstream = urlsplit(route.upstream)
        if upstream.scheme == "http" and not _is_loopback(upstream.hostname or ""):
            yield Risk(
                (*path, "upstream"),
                f"route {route.id!r} forwards over plain HTTP to {upstream.hostname}, which is not a loopback "
                "address, so identity headers and bodies cross the network unencrypted. Use https://.",
            )

        for earlier in config.routes[:index]:
            if _route_covers(earlier, route):
                yield Risk(
                    (*path, "path_prefix"),
                    f"route {route.id!r} never matches: the earlier route {earlier.id!r} with path_prefix "
                    f"{earlier.path_prefix!r} matches every path it would. Move it above {earlier.id!r}.",
                )
                break


def _client_risks(config: GateConfig) -> Iterator[Risk]:
    for index, client in enumerate(config.clients):
        if client.token_lifetime > LONG_TOKEN_LIFETIME:
            yield Risk(
                ("clients", index, "token_lifetime"),
                f"client {client.client_id!r} gets tokens valid for {client.token_lifetime} seconds, over an hour; "
                "a leaked bearer token stays usable that long",
            )


def _listener_risks(config: GateConfig) -> Iterator[Risk]:
    if config.admin_listen is None and not _is_loopback(config.listen.host):
        yield Risk(
            ("listen", "host"),
            f"/metrics is served on {config.listen.host}, next to the proxy. Set admin_listen to serve it elsewhere.",
        )


def _route_covers(earlier: RouteConfig, later: RouteConfig) -> bool:
    """Return True when ``earlier`` matches every request ``later`` could match, so ``later`` never runs.

    Only prefix routes are compared; a glob route is never reported as
    shadowing or shadowed, because comparing globs needs more than a prefix test.
    """
    if earlier.path_prefix is None or later.path_prefix is None:
        return False
    return (
        _prefix_covers(earlier.path_prefix, later.path_prefix)
        and _values_cover(earlier.hosts, later.hosts)
        and _values_cover([method.upper() for method in earlier.methods], [method.upper() for method in later.methods])
    )


def _values_cover(earlier: list[str], later: list[str]) -> bool:
    """An empty list means any value; otherwise ``earlier`` must list every value ``later`` lists."""
    if not earlier:
        return True
    return bool(later) and set(later) <= set(earlier)


def _prefix_covers(earlier: str, later: str) -> bool:
    """Return True when every path under ``later`` also matches ``earlier``, as ``Route.matches`` does."""
    if not later.startswith(earlier):
        return False
    return earlier.endswith("/") or len(later) == len(earlier) or later[len(earlier)] == "/"


def _is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
