"""The public API of the gate package is exactly what ``__all__`` lists."""

from __future__ import annotations

import gate

EXPECTED = {
    "BearerAuthMiddleware",
    "BearerError",
    "ConfigError",
    "ConfigProblem",
    "GateApp",
    "GateError",
    "KeySourceError",
    "OAuthError",
    "Requirements",
    "TokenAuth",
    "TokenUser",
    "UpstreamError",
    "__version__",
    "create_app",
}


def test_all_lists_public_api() -> None:
    assert set(gate.__all__) == EXPECTED


def test_all_names_resolve() -> None:
    missing = [name for name in gate.__all__ if not hasattr(gate, name)]

    assert missing == []


def test_all_is_sorted_without_duplicates() -> None:
    assert list(gate.__all__) == sorted(set(gate.__all__))
