"""The errors gate raises, and what each one sends to a client.

    GateError
      ConfigError        a config file that cannot be used: each problem has a field path,
                         a line and what was expected; never reaches a client
      OAuthError         RFC 6749 section 5.2 token endpoint errors
      BearerError        RFC 6750 errors of the proxy and the middleware
        KeysUnavailableError  the issuer's keys cannot be loaded (401, or 503 per route)
      UpstreamError      502 bad gateway or 504 gateway timeout
      KeySourceError     a key source that could not be fetched or parsed

Every error that reaches a client carries a ``description`` that is safe to send
and a ``reason_id`` (for example ``token_expired``) for logs, metrics and
``gate explain``. No error message contains a credential.
"""

from __future__ import annotations

from dataclasses import dataclass


class GateError(Exception):
    """Base class of every error gate raises on purpose."""


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a config file."""

    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line is not None else "line unknown"
        return f"{self.path or '<root>'} ({where}): {self.message}"


class ConfigError(GateError):
    """A config file that failed to load, parse, validate or compile."""

    def __init__(self, source: str, problems: list[ConfigProblem]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(self.render())

    def render(self) -> str:
        count = len(self.problems)
        header = f"{self.source}: {count} error{'s' if count != 1 else ''}"
        return "\n".join([header, *(f"  {problem}" for problem in self.problems)])


class OAuthError(GateError):
    """An RFC 6749 section 5.2 error response of the token endpoint."""

    def __init__(
        self,
        error: str,
        description: str,
        *,
        reason_id: str,
        status: int = 400,
        basic_challenge: bool = False,
        retry_after: int | None = None,
    ) -> None:
        self.error = error
        self.description = description
        self.reason_id = reason_id
        self.status = status
        self.basic_challenge = basic_challenge
        self.retry_after = retry_after
        super().__init__(f"{error}: {description}")


class BearerError(GateError):
    """An RFC 6750 error of a protected resource.

    ``error`` is ``None`` for a request without any token, which gets the bare
    ``WWW-Authenticate: Bearer`` challenge of RFC 6750 section 3.1.
    """

    def __init__(
        self,
        error: str | None,
        description: str,
        *,
        reason_id: str,
        status: int = 401,
        scope: str | None = None,
    ) -> None:
        self.error = error
        self.description = description
        self.reason_id = reason_id
        self.status = status
        self.scope = scope
        super().__init__(f"{error or 'no_token'}: {description}")


class KeysUnavailableError(BearerError):
    """The keys of the token's issuer cannot be loaded, so the token can be neither accepted nor judged invalid.

    401 by default; a route may respond with 503 instead, which tells clients to
    retry later rather than fetch a new token.
    """

    def __init__(self, description: str, *, status: int = 401) -> None:
        super().__init__("temporarily_unavailable", description, reason_id="keys_unavailable", status=status)


class UpstreamError(GateError):
    """The upstream could not be reached (502) or did not respond in time (504)."""

    def __init__(self, status: int, description: str, *, reason_id: str) -> None:
        self.status = status
        self.description = description
        self.reason_id = reason_id
        super().__init__(description)


class KeySourceError(GateError):
    """A key source that could not be fetched or parsed."""
