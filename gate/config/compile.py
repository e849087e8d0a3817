"""Turn a config file into a ``Snapshot``: load, validate, cross-check, compile."""

from __future__ import annotations

import hashlib
import importlib.util
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

from pydantic import ValidationError

from gate.config.compile_keys import compile_client_assertions, compile_key_store, own_issuer, retired_until
from gate.config.hints import describe_error
from gate.config.loader import LoadedYaml, format_path, load_yaml
from gate.config.model import ClientConfig, GateConfig, RouteAuthConfig, SharedStateConfig
from gate.config.snapshot import Client, Snapshot
from gate.errors import ConfigError, ConfigProblem
from gate.keys.signing import Keyring, SigningKey, UnsupportedKeyError, algorithm_for, load_private_key
from gate.oauth.secret_hashes import decoy_hash
from gate.policy import PolicySyntaxError, compile_policy
from gate.proxy.authorize import Requirements
from gate.proxy.routes import Route, RouteTable, compile_glob
from gate.state.settings import FailurePolicy, RedisSettings
from gate.tokens.issuer import TokenIssuer
from gate.tokens.verifier import TokenVerifier

MAX_CONFIG_BYTES = 1024 * 1024
_ACCOUNT_METHODS = ("service_account", "encoded_pair")
_SECRET_METHODS = ("client_secret_basic", "client_secret_post")


class _Problems:
    """Collects problems with their lines, so every one is reported at once."""

    def __init__(self, loaded: LoadedYaml) -> None:
        self.loaded = loaded
        self.items: list[ConfigProblem] = []

    def add(self, path: Sequence[str | int], message: str) -> None:
        self.items.append(ConfigProblem(format_path(path), self.loaded.line_of(path), message))


def load_snapshot(path: Path, environ: Mapping[str, str] | None = None) -> Snapshot:
    """Read, validate and compile the config file at ``path``.

    Raises ``ConfigError`` listing every problem found.
    """
    return load_snapshot_with_lines(path, environ)[0]


def load_snapshot_with_lines(path: Path, environ: Mapping[str, str] | None = None) -> tuple[Snapshot, LoadedYaml]:
    """Do what ``load_snapshot`` does, and also return the loaded document with its field lines."""
    source = str(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ConfigError(source, [ConfigProblem("", None, f"cannot read the file: {error.strerror}")]) from None

    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(source, [ConfigProblem("", None, f"the file is larger than {MAX_CONFIG_BYTES} bytes")])

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(source, [ConfigProblem("", None, f"the file is not valid UTF-8 ({error.reason})")]) from None

    loaded = load_yaml(text, source, environ)
    config = validate(loaded, source)
    version = hashlib.sha256(raw).hexdigest()[:16]
    return compile_config(config, loaded, source=source, base_dir=path.parent, version=version), loaded


def validate(loaded: LoadedYaml, source: str) -> GateConfig:
    """Check ``loaded`` against the schema, reporting every error with its line."""
    try:
        return GateConfig.model_validate(loaded.data)
    except ValidationError as error:
        problems = _Problems(loaded)
        for detail in error.errors(include_url=False):
            location = [part for part in detail["loc"] if isinstance(part, str | int)]
            problems.add(location, describe_error(detail["type"], detail["msg"], location, detail.get("input")))
        raise ConfigError(source, problems.items) from None


def compile_config(config: GateConfig, loaded: LoadedYaml, *, source: str, base_dir: Path, version: str) -> Snapshot:
    """Cross-check ``config`` and build the snapshot it describes."""
    problems = _Problems(loaded)

    keyring = _compile_keyring(config, base_dir, problems)
    service_accounts = _compile_service_accounts(config, problems)
    clients = _compile_clients(config, service_accounts, problems)
    routes = _compile_routes(config, problems)
    key_store = compile_key_store(config, base_dir, problems.add)
    client_assertions = compile_client_assertions(config, key_store, problems.add)
    shared_state = _compile_shared_state(config.shared_state, base_dir, problems)
    _check_decision_endpoints(config, problems)

    if problems.items or keyring is None:
        raise ConfigError(source, problems.items)

    verifier = TokenVerifier(own_issuer(config, keyring), key_store, cache_size=config.tokens.verified_cache_size)
    return Snapshot(
        config=config,
        source=source,
        version=version,
        loaded_at=time.time(),
        keyring=keyring,
        issuer=TokenIssuer(config.issuer, keyring),
        verifier=verifier,
        clients=clients,
        service_accounts=service_accounts,
        routes=routes,
        decoy_secret_hash=decoy_hash([stored for client in clients.values() for stored in client.secret_hashes]),
        key_store=key_store,
        client_assertions=client_assertions,
        shared_state=shared_state,
    )


def _compile_keyring(config: GateConfig, base_dir: Path, problems: _Problems) -> Keyring | None:
    keys: list[SigningKey] = []
    seen: set[str] = set()

    for index, entry in enumerate(config.signing_keys):
        path = ("signing_keys", index)
        if entry.kid in seen:
            problems.add((*path, "kid"), f"duplicate kid {entry.kid!r}")
        seen.add(entry.kid)

        key_path = base_dir / entry.private_key_file
        try:
            private_key = load_private_key(key_path)
            algorithm = algorithm_for(private_key)
        except OSError as error:
            problems.add((*path, "private_key_file"), f"cannot read {key_path}: {error.strerror}")
            continue
        except (ValueError, TypeError, UnsupportedKeyError) as error:
            problems.add(
                (*path, "private_key_file"), f"{key_path} is not a usable unencrypted PEM private key: {error}"
            )
            continue

        until = retired_until(config, entry)
        keys.append(SigningKey(entry.kid, algorithm, private_key, entry.status == "active", until))

    active = [entry for entry in config.signing_keys if entry.status == "active"]
    if len(active) != 1:
        problems.add(("signing_keys",), f"expected exactly one key with status 'active', found {len(active)}")
        return None

    if len(keys) != len(config.signing_keys):
        return None
    return Keyring(keys, jwks_max_age=config.jwks_max_age)


def _compile_service_accounts(config: GateConfig, problems: _Problems) -> dict[str, tuple[str, ...]]:
    accounts: dict[str, tuple[str, ...]] = {}

    for index, account in enumerate(config.service_accounts):
        if account.username in accounts:
            problems.add(("service_accounts", index, "username"), f"duplicate username {account.username!r}")
        accounts[account.username] = tuple(account.token_hashes)

    return accounts


def _compile_clients(
    config: GateConfig, service_accounts: Mapping[str, tuple[str, ...]], problems: _Problems
) -> dict[str, Client]:
    clients: dict[str, Client] = {}

    for index, entry in enumerate(config.clients):
        path = ("clients", index)
        if entry.client_id in clients:
            problems.add((*path, "client_id"), f"duplicate client_id {entry.client_id!r}")

        for account_index, username in enumerate(entry.service_accounts):
            if username not in service_accounts:
                problems.add((*path, "service_accounts", account_index), f"no service account named {username!r}")

        auth_methods = _client_auth_methods(entry, path, problems)
        clients[entry.client_id] = Client(
            client_id=entry.client_id,
            service_accounts=frozenset(entry.service_accounts),
            audience=tuple(entry.audience),
            scopes=frozenset(entry.scopes),
            token_lifetime=entry.token_lifetime,
            secret_hashes=tuple(entry.secret_hashes),
            subject=entry.subject or entry.client_id,
            auth_methods=auth_methods,
            grant_types=frozenset(entry.grant_types),
            introspection=entry.introspection,
            revocation=entry.revocation,
        )

    return clients


def _client_auth_methods(entry: ClientConfig, path: tuple[str | int, ...], problems: _Problems) -> tuple[str, ...]:
    """Return the credential forms ``entry`` accepts, checking that each has what it needs."""
    if entry.auth_methods is not None:
        methods = tuple(dict.fromkeys(entry.auth_methods))
    else:
        methods = (
            *(_ACCOUNT_METHODS if entry.service_accounts else ()),
            *(_SECRET_METHODS if entry.secret_hashes else ()),
        )

    if not methods and entry.jwt_assertion is None:
        problems.add(path, "the client has no credential: give it service_accounts, secret_hashes or jwt_assertion")
        return methods

    if set(_ACCOUNT_METHODS) & set(methods) and not entry.service_accounts:
        problems.add((*path, "service_accounts"), "required by auth_methods service_account and encoded_pair")
    if set(_SECRET_METHODS) & set(methods) and not entry.secret_hashes:
        problems.add((*path, "secret_hashes"), "required by auth_methods client_secret_basic and client_secret_post")

    if {"encoded_pair", "client_secret_post"} <= set(methods):
        problems.add(
            (*path, "auth_methods"),
            "encoded_pair and client_secret_post both read client_secret from the form body, so a request"
            " could not say which it means; list only one of them in auth_methods",
        )
    return methods


def _compile_routes(config: GateConfig, problems: _Problems) -> RouteTable:
    routes: list[Route] = []
    seen: set[str] = set()
    known_issuers = _known_issuers(config)

    for index, entry in enumerate(config.routes):
        path = ("routes", index)
        if entry.id in seen:
            problems.add((*path, "id"), f"duplicate route id {entry.id!r}")
        seen.add(entry.id)

        requirements = _compile_requirements(entry.auth, config.issuer, known_issuers, (*path, "auth"), problems)
        routes.append(
            Route(
                id=entry.id,
                upstream=entry.upstream,
                requirements=requirements,
                path_prefix=entry.path_prefix,
                path_pattern=compile_glob(entry.path_glob) if entry.path_glob else None,
                hosts=tuple(entry.hosts),
                methods=frozenset(entry.methods),
                strip_prefix=entry.strip_prefix,
                forward_authorization=entry.forward_authorization,
                read_timeout=entry.read_timeout,
            )
        )

    return RouteTable(routes)


def _check_decision_endpoints(config: GateConfig, problems: _Problems) -> None:
    """Report decision endpoint paths that another decision endpoint or a token endpoint already takes."""
    own_paths = {
        config.token_path.rstrip("/"),
        config.token_endpoint.introspection_path.rstrip("/"),
        config.token_endpoint.revocation_path.rstrip("/"),
    }
    seen_paths: set[str] = set()

    for index, endpoint in enumerate(config.decision_endpoints):
        if endpoint.path in own_paths:
            problems.add(("decision_endpoints", index, "path"), f"{endpoint.path!r} is a token endpoint path")
        if endpoint.path in seen_paths:
            problems.add(("decision_endpoints", index, "path"), f"duplicate decision endpoint path {endpoint.path!r}")
        seen_paths.add(endpoint.path)


def _known_issuers(config: GateConfig) -> frozenset[str]:
    """Return gate's own issuer and the ``iss`` of every configured trusted issuer."""
    return frozenset({config.issuer, *(entry.issuer for entry in config.trusted_issuers)})


def _compile_requirements(
    auth: RouteAuthConfig,
    own_issuer: str,
    known_issuers: frozenset[str],
    path: tuple[str | int, ...],
    problems: _Problems,
) -> Requirements:
    for index, issuer in enumerate(auth.issuers):
        if issuer not in known_issuers:
            problems.add((*path, "issuers", index), f"{issuer!r} is neither gate's issuer nor a trusted issuer")

    policy = None
    if auth.policy is not None:
        try:
            policy = compile_policy(auth.policy)
        except PolicySyntaxError as error:
            problems.add((*path, "policy"), str(error))

    claims = {name: tuple(value) if isinstance(value, list) else (value,) for name, value in auth.claims.items()}
    return Requirements(
        mode=auth.mode,
        issuers=frozenset(auth.issuers or [own_issuer]),
        audiences=frozenset(auth.audience),
        audience_match=auth.audience_match,
        scopes=frozenset(auth.scopes),
        claims=MappingProxyType(claims),
        policy=policy,
    )


def _compile_shared_state(entry: SharedStateConfig, base_dir: Path, problems: _Problems) -> RedisSettings | None:
    """Read the Redis password file and check the TLS files, so ``gate check`` reports them."""
    if entry.backend == "memory" or entry.url is None:
        return None

    path = ("shared_state",)
    if importlib.util.find_spec("redis") is None:
        problems.add((*path, "backend"), "backend 'redis' needs the redis package: pip install 'gate[redis]'")

    password = entry.password.get_secret_value() if entry.password is not None else None
    if entry.password_file is not None:
        password_path = base_dir / entry.password_file
        try:
            password = password_path.read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as error:
            problems.add((*path, "password_file"), f"cannot read {password_path}: {getattr(error, 'strerror', error)}")

    tls = entry.tls
    tls_files: dict[str, str | None] = {"ca_file": None, "cert_file": None, "key_file": None}
    for name in tls_files:
        value = getattr(tls, name) if tls is not None else None
        if value is None:
            continue
        file_path = base_dir / value
        if not file_path.is_file():
            problems.add((*path, "tls", name), f"no such file: {file_path}")
        tls_files[name] = str(file_path)

    failure = entry.on_unavailable
    return RedisSettings(
        url=entry.url,
        username=entry.username,
        password=password,
        tls_ca_file=tls_files["ca_file"],
        tls_cert_file=tls_files["cert_file"],
        tls_key_file=tls_files["key_file"],
        tls_verify=tls.verify if tls is not None else True,
        key_prefix=entry.key_prefix,
        connect_timeout=entry.connect_timeout,
        socket_timeout=entry.socket_timeout,
        max_connections=entry.max_connections,
        revocation_sync_interval=entry.revocation_sync_interval,
        on_unavailable=FailurePolicy(
            single_use=failure.single_use,
            rate_limit=failure.rate_limit,
            revocation=failure.revocation,
            max_revocation_staleness=failure.max_revocation_staleness,
        ),
    )
