"""'Did you mean' hints for unknown keys, computed from the schema."""

from __future__ import annotations

import pytest

from gate.config.hints import known_keys, unknown_key_message


@pytest.mark.parametrize(
    "location, expected",
    [
        (("rotues",), "unknown key. Did you mean 'routes'?"),
        (("routes", 0, "upstreem"), "unknown key. Did you mean 'upstream'?"),
        (("routes", 2, "auth", "audiance"), "unknown key. Did you mean 'audience'?"),
        (("clients", 0, "token_lifetim"), "unknown key. Did you mean 'token_lifetime'?"),
        (("admin_listen", "prot"), "unknown key. Did you mean 'port'?"),
        (("listen", "zzz"), "unknown key. Expected one of: host, port, shutdown_timeout"),
        (("routes", 0, "auth", "mode", "x"), "unknown key"),
    ],
    ids=["top-level", "route-field", "nested-auth", "client-field", "optional-section", "no-close-key", "not-a-model"],
)
def test_unknown_key_message(location: tuple[str | int, ...], expected: str) -> None:
    assert unknown_key_message(location) == expected


def test_known_keys_follow_lists() -> None:
    assert "path_prefix" in known_keys(("routes", 3))
