"""Compile the key parts of the config: trusted issuers, client assertion keys, gate's own issuer."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from gate.config.model import DEFAULT_TOKEN_LIFETIME, GateConfig, SigningKeyConfig
from gate.keys.issuers import IssuerPolicy, KeyStore, TrustedIssuer
from gate.keys.jwk import TrustedKey
from gate.keys.signing import Keyring
from gate.keys.sources import build_issuer
from gate.oauth.client_auth.assertion_rules import ClientAssertionRules, FederatedRule
from gate.policy import PolicySyntaxError, compile_policy
from gate.tokens.issuer import ACCESS_TOKEN_TYPE

Report = Callable[[Sequence[str | int], str], None]

OWN_REQUIRED_CLAIMS = ("exp", "iat", "iss", "sub")
# RFC 7523 section 3 requires iss, sub, aud and exp; gate also requires jti, for replay protection.
PRIVATE_KEY_JWT_REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "jti")


def retired_until(config: GateConfig, entry: SigningKeyConfig) -> float | None:
    """Return when a retired key stops being published: retirement plus the longest token lifetime and leeway."""
    if entry.status != "retired" or entry.retired_at is None:
        return None

    longest = max((client.token_lifetime for client in config.clients), default=DEFAULT_TOKEN_LIFETIME)
    return entry.retired_at.timestamp() + longest + config.tokens.leeway


def own_issuer(config: GateConfig, keyring: Keyring) -> TrustedIssuer:
    """Return gate's own issuer: its published signing keys, RFC 9068 ``at+jwt`` tokens only."""
    keys = [
        TrustedKey(
            kid=key.kid,
            algorithms=frozenset({key.algorithm}),
            key=key.public_key,
            issuer=config.issuer,
            source="signing_keys",
            fingerprint=key.kid,
            not_after=key.retired_until,
        )
        for key in keyring.keys.values()
    ]
    policy = IssuerPolicy(
        algorithms=frozenset(key.algorithm for key in keyring.keys.values()),
        leeway=config.tokens.leeway,
        required_claims=OWN_REQUIRED_CLAIMS,
        token_type=ACCESS_TOKEN_TYPE,
    )
    return TrustedIssuer(config.issuer, policy, keys, ())


def compile_key_store(config: GateConfig, base_dir: Path, report: Report) -> KeyStore:
    """Build every trusted issuer and every ``private_key_jwt`` client's key set."""
    issuers: list[TrustedIssuer] = []
    seen: set[str] = {config.issuer}

    for index, entry in enumerate(config.trusted_issuers):
        path = ("trusted_issuers", index)
        if entry.issuer in seen:
            report((*path, "issuer"), f"issuer {entry.issuer!r} is listed twice or is gate's own issuer")
        seen.add(entry.issuer)

        policy = IssuerPolicy(
            algorithms=frozenset(entry.algorithms),
            audiences=tuple(entry.audience),
            audience_match=entry.audience_match,
            leeway=entry.leeway,
            required_claims=tuple(entry.required_claims),
            max_token_lifetime=entry.max_token_lifetime,
            token_type=entry.token_type,
            single_use_assertions=entry.single_use_assertions,
        )
        issuers.append(
            build_issuer(
                entry.issuer,
                policy,
                entry.keys,
                entry.key_cache,
                base_dir=base_dir,
                path=(*path, "keys"),
                report=report,
            )
        )

    return KeyStore(issuers, client_keys=_client_keys(config, base_dir, report))


def _client_keys(config: GateConfig, base_dir: Path, report: Report) -> dict[str, TrustedIssuer]:
    keys: dict[str, TrustedIssuer] = {}
    for index, client in enumerate(config.clients):
        settings = client.jwt_assertion
        if settings is None or settings.private_key_jwt is None:
            continue

        private_key_jwt = settings.private_key_jwt
        policy = IssuerPolicy(
            algorithms=frozenset(private_key_jwt.algorithms),
            leeway=settings.leeway,
            required_claims=PRIVATE_KEY_JWT_REQUIRED_CLAIMS,
            max_token_lifetime=settings.max_lifetime,
        )
        path = ("clients", index, "jwt_assertion", "private_key_jwt", "keys")
        keys[client.client_id] = build_issuer(
            client.client_id,
            policy,
            private_key_jwt.keys,
            private_key_jwt.key_cache,
            base_dir=base_dir,
            path=path,
            report=report,
        )
    return keys


def compile_client_assertions(
    config: GateConfig, key_store: KeyStore, report: Report
) -> dict[str, ClientAssertionRules]:
    """Compile each client's ``jwt_assertion`` section; a federated issuer must be a trusted issuer."""
    rules: dict[str, ClientAssertionRules] = {}

    for index, client in enumerate(config.clients):
        settings = client.jwt_assertion
        if settings is None:
            continue

        federated: dict[str, FederatedRule] = {}
        for rule_index, entry in enumerate(settings.federated):
            path = ("clients", index, "jwt_assertion", "federated", rule_index, "issuer")
            if key_store.get(entry.issuer) is None:
                report(path, f"no trusted issuer named {entry.issuer!r}; add it under trusted_issuers")
            if entry.issuer in federated:
                report(path, f"issuer {entry.issuer!r} is listed twice for this client")
            federated[entry.issuer] = FederatedRule(
                issuer=entry.issuer,
                audience=entry.audience,
                subjects=frozenset(entry.subjects),
                subject_template=entry.subject_template,
            )

        policy = None
        if settings.policy is not None:
            try:
                policy = compile_policy(settings.policy)
            except PolicySyntaxError as error:
                report(("clients", index, "jwt_assertion", "policy"), str(error))

        rules[client.client_id] = ClientAssertionRules(
            client_id=client.client_id,
            private_key_jwt=key_store.client_keys.get(client.client_id),
            federated=federated,
            max_lifetime=settings.max_lifetime,
            leeway=settings.leeway,
            policy=policy,
        )
    return rules
