"""The schema of gate's YAML config file, with its defaults.

Every model forbids unknown keys, so a typo is an error and not a silently
ignored setting. Values that are secrets are never stored here in clear: app
tokens are stored as hashes, and private keys come from files.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from gate.oauth.secret_hashes import SECRET_HASH_PATTERN
from gate.state import settings as state_defaults

DEFAULT_TOKEN_PATH = "/application/o/token/"
DEFAULT_TOKEN_LIFETIME = 300
MAX_TOKEN_LIFETIME = 86_400
TOKEN_HASH_PATTERN = re.compile(r"^sha256:[0-9a-f]{64}$")
DEFAULT_INTROSPECTION_PATH = "/application/o/introspect/"
DEFAULT_REVOCATION_PATH = "/application/o/revoke/"

# The credential forms of the token endpoint, one module each in gate/oauth/client_auth/.
AuthMethodName = Literal["service_account", "encoded_pair", "client_secret_post", "client_secret_basic"]
GrantTypeName = Literal["client_credentials", "password"]
SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")
HOST_PATTERN = re.compile(r"^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$")
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
DEFAULT_JWKS_MAX_AGE = 300
ASYMMETRIC_ALGORITHM_NAMES = (
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
)  # fmt: skip

Seconds = Annotated[int, Field(gt=0)]
NonEmptyStr = Annotated[str, Field(min_length=1)]


def _check_network(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address or CIDR network such as '10.0.0.0/8'") from None
    return value


Network = Annotated[NonEmptyStr, AfterValidator(_check_network)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ListenConfig(StrictModel):
    """The address ``gate serve`` listens on unless the command line sets another."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    shutdown_timeout: float = Field(default=30.0, gt=0)


class AdminListenConfig(StrictModel):
    """A separate listener for ``/metrics``, so it need not be reachable where the proxy is."""

    host: str = "127.0.0.1"
    port: int = Field(ge=1, le=65535)


class SigningKeyConfig(StrictModel):
    """One of gate's own signing keys, a PEM private key in a file.

    ``next`` (or its older name ``published``) is published but does not sign
    yet; ``active`` signs; ``retired`` no longer signs and stays published
    until every token it signed has expired, counted from ``retired_at``.
    """

    kid: NonEmptyStr
    private_key_file: NonEmptyStr
    status: Literal["active", "next", "published", "retired"] = "active"
    retired_at: datetime | None = Field(default=None, strict=False)

    @model_validator(mode="after")
    def _retired_needs_time(self) -> SigningKeyConfig:
        if self.status == "retired" and self.retired_at is None:
            raise ValueError("a retired key needs 'retired_at', the time it stopped signing (ISO 8601 with zone)")
        if self.retired_at is not None and self.retired_at.tzinfo is None:
            raise ValueError("'retired_at' needs a time zone, for example 2026-12-01T12:00:00Z")
        return self


class KeyCacheConfig(StrictModel):
    """The caching of a remote source's key set (JWKS URL or discovery), in seconds."""

    ttl: float = Field(default=300.0, gt=0)
    min_ttl: float = Field(default=60.0, gt=0)
    max_ttl: float = Field(default=86_400.0, gt=0)
    refresh_ahead: float = Field(default=0.2, ge=0, lt=1)
    retry_interval: float = Field(default=10.0, gt=0)
    unknown_kid_interval: float = Field(default=30.0, gt=0)
    max_staleness: float = Field(default=21_600.0, ge=0)
    timeout: float = Field(default=5.0, gt=0)
    max_bytes: int = Field(default=512 * 1024, ge=1024)
    remembered_unknown_kids: int = Field(default=1000, ge=1)
    wait_for_first_fetch: bool = False

    @model_validator(mode="after")
    def _check_ttl_bounds(self) -> KeyCacheConfig:
        if not self.min_ttl <= self.ttl <= self.max_ttl:
            raise ValueError("expected min_ttl <= ttl <= max_ttl")
        return self


class KeySourceConfig(StrictModel):
    """One source of verification keys; exactly one of its fields is set.

    ``kid`` names the key of a PEM certificate or public key; without it the
    key is tried for tokens whose kid no other key of the issuer has.
    """

    certificate_file: NonEmptyStr | None = None
    public_key_file: NonEmptyStr | None = None
    jwks: dict[str, Any] | None = None
    jwks_file: NonEmptyStr | None = None
    jwks_uri: NonEmptyStr | None = None
    discovery: bool = False
    kid: NonEmptyStr | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> KeySourceConfig:
        kinds = [self.certificate_file, self.public_key_file, self.jwks, self.jwks_file, self.jwks_uri]
        chosen = sum(value is not None for value in kinds) + int(self.discovery)
        if chosen != 1:
            raise ValueError(
                "expected exactly one of certificate_file, public_key_file, jwks, jwks_file, jwks_uri, discovery: true"
            )
        if self.kid is not None and self.certificate_file is None and self.public_key_file is None:
            raise ValueError("'kid' applies to certificate_file and public_key_file only")
        if self.jwks_uri is not None and not re.match(r"^https?://[^/?#]+", self.jwks_uri):
            raise ValueError("expected an http:// or https:// URL in 'jwks_uri'")
        return self


def _check_algorithms(algorithms: list[str]) -> list[str]:
    for algorithm in algorithms:
        if algorithm.lower() == "none":
            raise ValueError("'none' is never accepted: unsigned tokens prove nothing")
        if algorithm.upper().startswith("HS"):
            raise ValueError(
                f"{algorithm} is not supported: HMAC needs the signing secret to verify, so use an asymmetric algorithm"
            )
        if algorithm not in ASYMMETRIC_ALGORITHM_NAMES:
            raise ValueError(
                f"unknown algorithm {algorithm!r}; expected some of {', '.join(ASYMMETRIC_ALGORITHM_NAMES)}"
            )
    return algorithms


class TrustedIssuerConfig(StrictModel):
    """An external issuer whose tokens gate accepts, with its keys and claim rules."""

    issuer: NonEmptyStr
    keys: list[KeySourceConfig] = Field(min_length=1)
    algorithms: list[NonEmptyStr] = Field(min_length=1)
    audience: list[NonEmptyStr] = Field(default_factory=list)
    audience_match: Literal["any", "all"] = "any"
    leeway: int = Field(default=60, ge=0, le=600)
    required_claims: list[NonEmptyStr] = Field(default_factory=list)
    max_token_lifetime: Seconds | None = None
    token_type: NonEmptyStr | None = None
    single_use_assertions: bool = True
    key_cache: KeyCacheConfig = Field(default_factory=KeyCacheConfig)

    @field_validator("issuer")
    @classmethod
    def _check_issuer(cls, issuer: str) -> str:
        if "#" in issuer:
            raise ValueError("an issuer identifier has no fragment ('#'), as OpenID Connect Discovery requires")
        return issuer

    _algorithms = field_validator("algorithms")(_check_algorithms)


class PrivateKeyJwtConfig(StrictModel):
    """``private_key_jwt`` client authentication (RFC 7523 section 3): the client's own public keys."""

    keys: list[KeySourceConfig] = Field(min_length=1)
    algorithms: list[NonEmptyStr] = Field(min_length=1)
    key_cache: KeyCacheConfig = Field(default_factory=KeyCacheConfig)

    _algorithms = field_validator("algorithms")(_check_algorithms)


class FederatedIdentityConfig(StrictModel):
    """Tokens of a trusted issuer accepted as this client's credential (workload identity).

    ``subjects`` lists the accepted ``sub`` values; ``"*"`` accepts any.
    The issued token's subject comes from ``subject_template`` with the fields
    ``{issuer}``, ``{sub}`` and ``{client_id}``.
    """

    issuer: NonEmptyStr
    audience: NonEmptyStr
    subjects: list[NonEmptyStr] = Field(min_length=1)
    subject_template: NonEmptyStr = "{issuer}#{sub}"

    @field_validator("subject_template")
    @classmethod
    def _check_template(cls, template: str) -> str:
        try:
            template.format(issuer="i", sub="s", client_id="c")
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(f"invalid template ({error}); the fields are {{issuer}}, {{sub}}, {{client_id}}") from None
        if "{sub}" not in template:
            raise ValueError("the template must contain {sub}, or every workload would get the same subject")
        return template


class ClientAssertionConfig(StrictModel):
    """JWT assertions (RFC 7523) that authenticate this client at the token endpoint."""

    private_key_jwt: PrivateKeyJwtConfig | None = None
    federated: list[FederatedIdentityConfig] = Field(default_factory=list)
    max_lifetime: Seconds = 3600
    leeway: int = Field(default=60, ge=0, le=600)
    policy: NonEmptyStr | None = None

    @model_validator(mode="after")
    def _needs_a_kind(self) -> ClientAssertionConfig:
        if self.private_key_jwt is None and not self.federated:
            raise ValueError("expected 'private_key_jwt', 'federated' or both")
        return self


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
    """An OAuth client that may request tokens at the token endpoint.

    ``auth_methods`` lists the credential forms the client accepts. Without
    it, a client with ``service_accounts`` accepts ``service_account`` and
    ``encoded_pair``, and a client with ``secret_hashes`` accepts
    ``client_secret_basic`` and ``client_secret_post``.
    """

    client_id: NonEmptyStr
    service_accounts: list[NonEmptyStr] = Field(default_factory=list)
    secret_hashes: list[str] = Field(default_factory=list)
    subject: NonEmptyStr | None = None
    auth_methods: list[AuthMethodName] | None = Field(default=None, min_length=1)
    grant_types: list[GrantTypeName] = Field(default_factory=lambda: ["client_credentials", "password"], min_length=1)
    audience: list[NonEmptyStr] = Field(min_length=1)
    scopes: list[NonEmptyStr] = Field(default_factory=list)
    token_lifetime: Seconds = Field(default=DEFAULT_TOKEN_LIFETIME, le=MAX_TOKEN_LIFETIME)
    jwt_assertion: ClientAssertionConfig | None = None
    introspection: bool = False
    revocation: Literal["none", "own", "any"] = "own"

    @field_validator("secret_hashes")
    @classmethod
    def _check_secret_hash_format(cls, hashes: list[str]) -> list[str]:
        for value in hashes:
            if not SECRET_HASH_PATTERN.match(value):
                raise ValueError(
                    "expected a hash printed by 'gate hash-token': 'sha256:' and 64 hex digits,"
                    " 'pbkdf2:sha256:...' or 'argon2:$argon2id$...'"
                )
        return hashes


HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})
ClaimValue = str | int | bool


class RouteAuthConfig(StrictModel):
    """The token checks of a route.

    ``public`` routes never look at a token. ``optional`` routes check a token
    when one is sent (a bad one is rejected) and pass requests without one.
    ``protected`` routes require a token that meets every requirement below.
    """

    mode: Literal["protected", "optional", "public"] = "protected"
    issuers: list[NonEmptyStr] = Field(default_factory=list)
    audience: list[NonEmptyStr] = Field(default_factory=list)
    audience_match: Literal["any", "all"] = "any"
    scopes: list[NonEmptyStr] = Field(default_factory=list)
    claims: dict[NonEmptyStr, ClaimValue | list[ClaimValue]] = Field(default_factory=dict)
    policy: NonEmptyStr | None = None

    @model_validator(mode="after")
    def _token_routes_need_audience(self) -> RouteAuthConfig:
        if self.mode != "public" and not self.audience:
            raise ValueError(f"a {self.mode} route needs at least one 'audience' value to accept")
        return self

    @field_validator("scopes")
    @classmethod
    def _check_scopes(cls, scopes: list[str]) -> list[str]:
        for scope in scopes:
            if not SCOPE_TOKEN.match(scope):
                raise ValueError(f"{scope!r} is not a valid scope (RFC 6749 section 3.3 allows no spaces or quotes)")
        return scopes


class RouteConfig(StrictModel):
    """A route: the requests it takes, the upstream it sends them to, and its checks."""

    id: NonEmptyStr
    path_prefix: NonEmptyStr | None = None
    path_glob: NonEmptyStr | None = None
    hosts: list[NonEmptyStr] = Field(default_factory=list)
    methods: list[NonEmptyStr] = Field(default_factory=list)
    upstream: NonEmptyStr
    strip_prefix: bool = False
    forward_authorization: bool = False
    read_timeout: float | None = Field(default=None, gt=0)
    auth: RouteAuthConfig

    @field_validator("path_prefix", "path_glob")
    @classmethod
    def _check_path(cls, path: str | None) -> str | None:
        if path is not None and not path.startswith("/"):
            raise ValueError("expected a path starting with '/'")
        return path

    @field_validator("hosts")
    @classmethod
    def _check_hosts(cls, hosts: list[str]) -> list[str]:
        for host in hosts:
            if not HOST_PATTERN.match(host):
                raise ValueError(
                    f"{host!r} is not a host name; expected a name such as 'api.example.com' or '*.example.com'"
                )
        return [host.lower() for host in hosts]

    @field_validator("methods")
    @classmethod
    def _check_methods(cls, methods: list[str]) -> list[str]:
        for method in methods:
            if method.upper() not in HTTP_METHODS:
                raise ValueError(f"{method!r} is not an HTTP method; expected one of {', '.join(sorted(HTTP_METHODS))}")
        return [method.upper() for method in methods]

    @field_validator("upstream")
    @classmethod
    def _check_upstream(cls, upstream: str) -> str:
        if not re.match(r"^https?://[^/?#]+(/[^?#]*)?$", upstream):
            raise ValueError("expected an http:// or https:// URL without query or fragment")
        return upstream.rstrip("/")

    @model_validator(mode="after")
    def _one_path_rule(self) -> RouteConfig:
        if (self.path_prefix is None) == (self.path_glob is None):
            raise ValueError("expected exactly one of 'path_prefix' and 'path_glob'")
        if self.strip_prefix and self.path_prefix is None:
            raise ValueError("'strip_prefix' needs 'path_prefix'; a glob has no prefix to strip")
        return self


class UpstreamClientConfig(StrictModel):
    """The pooled HTTP client that forwards requests to upstreams."""

    connect_timeout: float = Field(default=5.0, gt=0)
    read_timeout: float = Field(default=60.0, gt=0)
    max_connections: int = Field(default=200, ge=1)
    engine: Literal["aiohttp", "native"] = "native"
    """``native`` (the default) forwards plain-HTTP requests with gate's own HTTP/1.1 client, which
    costs about half the CPU of aiohttp per request (bench/README.md); HTTPS upstreams and
    WebSockets always use aiohttp."""


class TokenPolicyConfig(StrictModel):
    """The checks gate applies to the registered claims of bearer tokens."""

    leeway: int = Field(default=60, ge=0, le=600)
    verified_cache_size: int = Field(default=10_000, ge=0)


class IdentityHeadersConfig(StrictModel):
    """The headers gate sets to tell an upstream who the caller is.

    Client-sent headers with these names, or starting with ``strip_prefix``, are
    removed on every route before gate adds its own. ``claims`` maps further
    header names to claim names; string claims are written as they are, other
    values as compact JSON.
    """

    subject: str = "X-Gate-Subject"
    client_id: str = "X-Gate-Client-Id"
    scope: str = "X-Gate-Scope"
    claims: dict[str, NonEmptyStr] = Field(default_factory=dict)
    strip_prefix: str = "X-Gate-"

    @field_validator("subject", "client_id", "scope", "strip_prefix")
    @classmethod
    def _check_name(cls, name: str) -> str:
        if name and not HEADER_NAME.match(name):
            raise ValueError(f"{name!r} is not a valid header name (RFC 9110 token characters)")
        return name

    @field_validator("claims")
    @classmethod
    def _check_claim_headers(cls, claims: dict[str, str]) -> dict[str, str]:
        for name in claims:
            if not HEADER_NAME.match(name):
                raise ValueError(f"{name!r} is not a valid header name (RFC 9110 token characters)")
        return claims


class ForwardingConfig(StrictModel):
    """The X-Forwarded-* and X-Request-Id headers gate sends upstream."""

    trusted_proxies: list[Network] = Field(default_factory=list)
    keep_request_id: bool = False


class DecisionEndpointConfig(StrictModel):
    """An auth service endpoint that an ingress queries before it forwards a request.

    ``ingress`` names where the original request is read from, and no other
    header is trusted for it:

    - ``nginx`` (``auth_request``): ``X-Original-Method``, ``X-Original-URI``
      and the ``Host`` header, at exactly ``path``;
    - ``traefik`` (ForwardAuth): ``X-Forwarded-Method``, ``X-Forwarded-Uri`` and
      ``X-Forwarded-Host``, at exactly ``path``;
    - ``envoy`` (HTTP ``ext_authz`` with ``path_prefix`` set to ``path``): the
      request's own method, ``Host`` and path below ``path``.

    Requests from a peer outside ``trusted_ingresses`` are rejected with 403.
    """

    path: NonEmptyStr
    ingress: Literal["nginx", "traefik", "envoy"]
    trusted_ingresses: list[Network] = Field(min_length=1)

    @field_validator("path")
    @classmethod
    def _check_path(cls, path: str) -> str:
        if not re.match(r"^(/[A-Za-z0-9\-._~]+)+/?$", path):
            raise ValueError("expected a path such as '/auth/decision' made of letters, digits and '-._~'")
        return path.rstrip("/")


class RateLimitConfig(StrictModel):
    """Limits on failed client authentication, counted per source address."""

    enabled: bool = True
    window: Seconds = 300
    max_failures_per_address: int = Field(default=50, ge=1)
    max_failures_per_client_address: int = Field(default=10, ge=1)


class TokenEndpointConfig(StrictModel):
    """The introspection and revocation endpoints, and rate limiting of all three OAuth endpoints."""

    introspection_path: NonEmptyStr = DEFAULT_INTROSPECTION_PATH
    revocation_path: NonEmptyStr = DEFAULT_REVOCATION_PATH
    rate_limit: RateLimitConfig = Field(default_factory=RateLimitConfig)


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
    """The behaviour of each operation while Redis cannot be reached."""

    single_use: Literal["reject", "local"] = "reject"
    rate_limit: Literal["local", "reject"] = "local"
    revocation: Literal["serve_known", "reject"] = "serve_known"
    max_revocation_staleness: float = Field(default=state_defaults.DEFAULT_MAX_REVOCATION_STALENESS, gt=0)


class SharedStateConfig(StrictModel):
    """The store replicas share for used assertion ids, revocations and rate-limit counters."""

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
    admin_listen: AdminListenConfig | None = None
    token_path: NonEmptyStr = DEFAULT_TOKEN_PATH
    signing_keys: list[SigningKeyConfig] = Field(min_length=1)
    service_accounts: list[ServiceAccountConfig] = Field(default_factory=list)
    clients: list[ClientConfig] = Field(default_factory=list)
    routes: list[RouteConfig] = Field(default_factory=list)
    upstream_client: UpstreamClientConfig = Field(default_factory=UpstreamClientConfig)
    tokens: TokenPolicyConfig = Field(default_factory=TokenPolicyConfig)
    identity_headers: IdentityHeadersConfig = Field(default_factory=IdentityHeadersConfig)
    token_endpoint: TokenEndpointConfig = Field(default_factory=TokenEndpointConfig)
    forwarding: ForwardingConfig = Field(default_factory=ForwardingConfig)
    trusted_issuers: list[TrustedIssuerConfig] = Field(default_factory=list)
    jwks_max_age: Seconds = DEFAULT_JWKS_MAX_AGE
    shared_state: SharedStateConfig = Field(default_factory=SharedStateConfig)
    decision_endpoints: list[DecisionEndpointConfig] = Field(default_factory=list)
