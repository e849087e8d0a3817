"""The schema of gate's YAML config file, with its defaults.

Every model forbids unknown keys, so a typo is an error and not a silently
ignored setting. Values that are secrets are never stored here in clear: app
tokens are stored as hashes, and private keys come from files.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from gate.state import settings as state_defaults

DEFAULT_TOKEN_PATH = "/application/o/token/"
DEFAULT_TOKEN_LIFETIME = 300
MAX_TOKEN_LIFETIME = 86_400
TOKEN_HASH_PATTERN = re.compile(r"^sha256:[0-9a-f]{64}$")

Seconds = Annotated[int, Field(gt=0)]
NonEmptyStr = Annotated[str, Field(min_length=1)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ListenConfig(StrictModel):
    """Where ``gate serve`` listens unless the command line says otherwise."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)


class SigningKeyConfig(StrictModel):
    """One of gate's own signing keys, a PEM private key in a file."""

    kid: NonEmptyStr
    private_key_file: NonEmptyStr
    status: Literal["active", "published"] = "active"


class ServiceAccountConfig(StrictModel):
    """A machine user that authenticates with an app token."""

    username: NonEmptyStr
    token_hashes: list[str] = Field(min_length=1)

    @field_validator("token_hashes")
    @classmethod
    def _check_hash_format(cls, hashes: list[str]) -> list[str]:
        for value in hashes:
            if not TOKEN_HASH_PATTERN.match(value):
                raise ValueError("expected 'sha256:' followed by 64 hex digits, as printed by 'gate hash-token'")
        return hashes


class ClientConfig(StrictModel):
    """An OAuth client that may request tokens at the token endpoint."""

    client_id: NonEmptyStr
    service_accounts: list[NonEmptyStr] = Field(min_length=1)
    audience: list[NonEmptyStr] = Field(min_length=1)
    scopes: list[NonEmptyStr] = Field(default_factory=list)
    token_lifetime: Seconds = Field(default=DEFAULT_TOKEN_LIFETIME, le=MAX_TOKEN_LIFETIME)


class RouteAuthConfig(StrictModel):
    """What a request must carry to pass a route."""

    mode: Literal["protected", "public"] = "protected"
    audience: list[NonEmptyStr] = Field(default_factory=list)

    @model_validator(mode="after")
    def _protected_needs_audience(self) -> RouteAuthConfig:
        if self.mode == "protected" and not self.audience:
            raise ValueError("a protected route needs at least one 'audience' value to accept")
        return self


class RouteConfig(StrictModel):
    """A path prefix mapped to an upstream base URL."""

    id: NonEmptyStr
    path_prefix: NonEmptyStr
    upstream: NonEmptyStr
    strip_prefix: bool = False
    forward_authorization: bool = False
    auth: RouteAuthConfig = Field(default_factory=RouteAuthConfig)

    @field_validator("path_prefix")
    @classmethod
    def _check_prefix(cls, prefix: str) -> str:
        if not prefix.startswith("/"):
            raise ValueError("expected a path starting with '/'")
        return prefix

    @field_validator("upstream")
    @classmethod
    def _check_upstream(cls, upstream: str) -> str:
        if not re.match(r"^https?://[^/?#]+(/[^?#]*)?$", upstream):
            raise ValueError("expected an http:// or https:// URL without query or fragment")
        return upstream.rstrip("/")


class UpstreamClientConfig(StrictModel):
    """The pooled HTTP client that forwards requests to upstreams."""

    connect_timeout: float = Field(default=5.0, gt=0)
    read_timeout: float = Field(default=60.0, gt=0)
    max_connections: int = Field(default=200, ge=1)


class TokenPolicyConfig(StrictModel):
    """How gate checks the registered claims of bearer tokens."""

    leeway: int = Field(default=60, ge=0, le=600)
    verified_cache_size: int = Field(default=10_000, ge=0)


class IdentityHeadersConfig(StrictModel):
    """The headers gate sets to tell an upstream who the caller is.

    Client-sent headers with these names, or starting with ``strip_prefix``, are
    removed on every route before gate adds its own.
    """

    subject: str = "X-Gate-Subject"
    client_id: str = "X-Gate-Client-Id"
    scope: str = "X-Gate-Scope"
    strip_prefix: str = "X-Gate-"


class RedisTlsConfig(StrictModel):
    """TLS options for a ``rediss://`` URL."""

    ca_file: NonEmptyStr | None = None
    cert_file: NonEmptyStr | None = None
    key_file: NonEmptyStr | None = None
    verify: bool = True

    @model_validator(mode="after")
    def _client_certificate_pair(self) -> RedisTlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("'cert_file' and 'key_file' go together: give both for a client certificate, or neither")
        return self


class SharedStateFailureConfig(StrictModel):
    """What each operation does while Redis cannot be reached."""

    single_use: Literal["reject", "local"] = "reject"
    rate_limit: Literal["local", "reject"] = "local"
    revocation: Literal["serve_known", "reject"] = "serve_known"
    max_revocation_staleness: float = Field(default=state_defaults.DEFAULT_MAX_REVOCATION_STALENESS, gt=0)


class SharedStateConfig(StrictModel):
    """Where replicas keep used assertion ids, revocations and rate-limit counters."""

    backend: Literal["memory", "redis"] = "memory"
    url: NonEmptyStr | None = None
    username: NonEmptyStr | None = None
    password: SecretStr | None = None
    password_file: NonEmptyStr | None = None
    tls: RedisTlsConfig | None = None
    key_prefix: str = state_defaults.DEFAULT_KEY_PREFIX
    connect_timeout: float = Field(default=state_defaults.DEFAULT_CONNECT_TIMEOUT, gt=0, le=60)
    socket_timeout: float = Field(default=state_defaults.DEFAULT_SOCKET_TIMEOUT, gt=0, le=60)
    max_connections: int = Field(default=state_defaults.DEFAULT_MAX_CONNECTIONS, ge=1)
    revocation_sync_interval: float = Field(default=state_defaults.DEFAULT_REVOCATION_SYNC_INTERVAL, gt=0, le=3600)
    on_unavailable: SharedStateFailureConfig = Field(default_factory=SharedStateFailureConfig)

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss") or not parts.hostname:
            raise ValueError("expected redis://HOST:PORT/DB, or rediss:// for TLS")
        if parts.password is not None:
            raise ValueError("the URL must not contain a password; use 'password: ${ENV_VAR}' or 'password_file'")
        return url

    @model_validator(mode="after")
    def _check_backend(self) -> SharedStateConfig:
        if self.backend == "redis" and self.url is None:
            raise ValueError("backend 'redis' needs 'url'")
        if self.backend == "memory" and self.url is not None:
            raise ValueError("'url' is used only with backend 'redis'")
        if self.password is not None and self.password_file is not None:
            raise ValueError("give 'password' or 'password_file', not both")
        if self.tls is not None and self.url is not None and not self.url.startswith("rediss://"):
            raise ValueError("'tls' needs a rediss:// URL")
        return self


class GateConfig(StrictModel):
    """The whole config file."""

    issuer: NonEmptyStr
    listen: ListenConfig = Field(default_factory=ListenConfig)
    token_path: NonEmptyStr = DEFAULT_TOKEN_PATH
    signing_keys: list[SigningKeyConfig] = Field(min_length=1)
    service_accounts: list[ServiceAccountConfig] = Field(default_factory=list)
    clients: list[ClientConfig] = Field(default_factory=list)
    routes: list[RouteConfig] = Field(default_factory=list)
    upstream_client: UpstreamClientConfig = Field(default_factory=UpstreamClientConfig)
    tokens: TokenPolicyConfig = Field(default_factory=TokenPolicyConfig)
    identity_headers: IdentityHeadersConfig = Field(default_factory=IdentityHeadersConfig)
    shared_state: SharedStateConfig = Field(default_factory=SharedStateConfig)
