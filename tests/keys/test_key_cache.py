"""The remote key set cache against a real JWKS server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from gate.config.model import KeyCacheConfig
from gate.errors import BearerError
from gate.keys.issuers import IssuerPolicy, KeyStore, TrustedIssuer
from gate.keys.remote import RemoteKeySource
from gate.metrics import METRICS
from gate.tokens.verifier import TokenVerifier
from tests.jwks_server import JwksServer, SigningIdentity, claims_for, new_identity
from tests.servers import running

OWN_ISSUER = "https://gate.test"


@pytest.fixture(scope="module")
def jwks_server() -> Iterator[JwksServer]:
    server = JwksServer()
    with running(server) as url:
        server.base_url = url
        yield server


@pytest.fixture
def jwks(jwks_server: JwksServer) -> JwksServer:
    jwks_server.reset()
    return jwks_server


def cache_settings(**overrides: Any) -> KeyCacheConfig:
    values: dict[str, Any] = {
        "ttl": 60.0,
        "min_ttl": 0.05,
        "max_ttl": 120.0,
        "retry_interval": 0.05,
        "unknown_kid_interval": 60.0,
        "max_staleness": 60.0,
        "timeout": 0.3,
        "max_bytes": 64 * 1024,
    }
    values.update(overrides)
    return KeyCacheConfig.model_validate(values)


def make_verifier(
    server: JwksServer,
    *,
    discovery: bool = False,
    algorithms: frozenset[str] = frozenset({"ES256", "RS256"}),
    **cache: Any,
) -> tuple[TokenVerifier, RemoteKeySource, KeyStore]:
    url = server.base_url if discovery else server.base_url + "/jwks.json"
    source = RemoteKeySource(
        issuer=server.base_url, url=url, discovery=discovery, allowed=algorithms, settings=cache_settings(**cache)
    )
    issuer = TrustedIssuer(server.base_url, IssuerPolicy(algorithms=algorithms), (), (source,))
    own = TrustedIssuer(OWN_ISSUER, IssuerPolicy(algorithms=frozenset({"ES256"})), (), ())
    store = KeyStore([issuer])
    return TokenVerifier(own, store, cache_size=1000), source, store


async def wait_until(condition: Any) -> None:
    async with asyncio.timeout(5):
        while not condition():  # noqa: ASYNC110 - polls state a background task changes
            await asyncio.sleep(0.02)


async def rejection_reason(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(BearerError) as caught:
        await verifier.verify(token)
    return caught.value.reason_id


async def test_rotation_picked_up_on_first_token(jwks: JwksServer) -> None:
    old, new = new_identity("key-2026-11"), new_identity("key-2026-12")
    jwks.keys = [old.jwk()]
    verifier, source, _ = make_verifier(jwks)

    assert (await verifier.verify(old.sign(claims_for(jwks.base_url)))).kid == "key-2026-11"
    assert jwks.fetches == 1

    jwks.keys = [old.jwk(), new.jwk()]
    successes_before = METRICS.value("gate_key_fetches_total", {**source.labels, "outcome": "success"}) or 0
    verified = await verifier.verify(new.sign(claims_for(jwks.base_url)))

    assert verified.kid == "key-2026-12"
    assert jwks.fetches == 2
    assert METRICS.value("gate_key_fetches_total", {**source.labels, "outcome": "success"}) == successes_before + 1
    assert METRICS.value("gate_key_set_keys", source.labels) == 2
    assert source.status()["age_seconds"] is not None
    assert METRICS.value("gate_key_set_age_seconds", source.labels) is not None


async def test_random_kid_flood_costs_one_fetch(jwks: JwksServer) -> None:
    signer = new_identity("real")
    jwks.keys = [signer.jwk()]
    verifier, _, _ = make_verifier(jwks, unknown_kid_interval=60.0)
    await verifier.verify(signer.sign(claims_for(jwks.base_url)))
    before = jwks.fetches

    forged = [
        SigningIdentity(secrets.token_hex(8), signer.private_key, "ES256").sign(claims_for(jwks.base_url))
        for _ in range(1000)
    ]
    reasons = await asyncio.gather(*(rejection_reason(verifier, token) for token in forged))

    assert set(reasons) == {"unknown_kid"}
    assert jwks.fetches - before == 1


async def test_unknown_kid_refetch_waits_for_interval(jwks: JwksServer) -> None:
    signer = new_identity("real")
    jwks.keys = [signer.jwk()]
    verifier, _, _ = make_verifier(jwks, unknown_kid_interval=0.2)
    forged = SigningIdentity("forged", signer.private_key, "ES256")
    await verifier.verify(signer.sign(claims_for(jwks.base_url)))

    assert await rejection_reason(verifier, forged.sign(claims_for(jwks.base_url))) == "unknown_kid"
    assert await rejection_reason(verifier, forged.sign(claims_for(jwks.base_url))) == "unknown_kid"
    assert jwks.fetches == 2

    await asyncio.sleep(0.3)
    assert await rejection_reason(verifier, forged.sign(claims_for(jwks.base_url))) == "unknown_kid"
    assert jwks.fetches == 3


async def test_outage_within_staleness_window_serves(jwks: JwksServer) -> None:
    signer = new_identity("k1")
    jwks.keys = [signer.jwk()]
    jwks.max_age = 0
    verifier, source, store = make_verifier(jwks, ttl=0.1, min_ttl=0.1, max_staleness=60.0)
    token = signer.sign(claims_for(jwks.base_url))
    await store.start()
    try:
        await wait_until(lambda: source.key_set is not None)
        jwks.mode = "error"
        await wait_until(lambda: source.consecutive_failures >= 2)

        verified = await verifier.verify(token)
        fresh_token = await verifier.verify(signer.sign(claims_for(jwks.base_url, jti="other")))
    finally:
        await store.close()

    assert verified.kid == "k1"
    assert fresh_token.claims["jti"] == "other"
    assert source.status()["state"] == "stale"
    assert "HTTP status 500" in (source.last_error or "")
    assert (METRICS.value("gate_key_fetches_total", {**source.labels, "outcome": "failure"}) or 0) >= 2


async def test_after_staleness_window_keys_unavailable(jwks: JwksServer) -> None:
    signer = new_identity("k1")
    jwks.keys = [signer.jwk()]
    jwks.max_age = 0
    verifier, source, store = make_verifier(jwks, ttl=0.1, min_ttl=0.1, max_staleness=0.2)
    token = signer.sign(claims_for(jwks.base_url))
    await store.start()
    try:
        await wait_until(lambda: source.key_set is not None)
        await verifier.verify(token)
        jwks.mode = "error"
        await wait_until(lambda: not source.usable())

        cached_reason = await rejection_reason(verifier, token)
        new_reason = await rejection_reason(verifier, signer.sign(claims_for(jwks.base_url, jti="new")))
    finally:
        await store.close()

    assert cached_reason == "keys_unavailable"
    assert new_reason == "keys_unavailable"
    assert source.status()["state"] == "unavailable"


async def test_keys_unavailable_error_is_distinct(jwks: JwksServer) -> None:
    jwks.mode = "error"
    verifier, _, _ = make_verifier(jwks)
    token = new_identity("k1").sign(claims_for(jwks.base_url))

    with pytest.raises(BearerError) as caught:
        await verifier.verify(token)

    assert caught.value.reason_id == "keys_unavailable"
    assert caught.value.error == "temporarily_unavailable"
    assert caught.value.status == 401


async def test_removed_key_rejected_after_refresh(jwks: JwksServer) -> None:
    kept, removed = new_identity("kept"), new_identity("removed")
    jwks.keys = [kept.jwk(), removed.jwk()]
    verifier, source, _ = make_verifier(jwks)
    removed_token = removed.sign(claims_for(jwks.base_url))
    kept_token = kept.sign(claims_for(jwks.base_url))
    await verifier.verify(removed_token)
    await verifier.verify(kept_token)

    jwks.keys = [kept.jwk()]
    await source.refresh("test")

    assert await rejection_reason(verifier, removed_token) == "unknown_kid"
    assert (await verifier.verify(kept_token)).kid == "kept"


def weak_rsa_jwk(kid: str) -> dict[str, Any]:
    weak = SigningIdentity(kid, rsa.generate_private_key(public_exponent=65537, key_size=1024), "RS256")
    return weak.jwk()


BAD_KEYS = {
    "rsa 1024 bits": lambda: weak_rsa_jwk("weak"),
    "private members": lambda: new_identity("private").jwk(d="AAAA"),
    "symmetric key": lambda: {"kty": "oct", "kid": "symmetric", "k": base64.urlsafe_b64encode(b"x" * 32).decode()},
    "encryption key": lambda: new_identity("encryption").jwk(use="enc"),
    "unknown key type": lambda: {"kty": "XYZ", "kid": "unknown-type"},
    "unknown curve": lambda: {**new_identity("odd-curve").jwk(), "crv": "P-192"},
    "not an object": lambda: "just a string",
}


@pytest.mark.parametrize("make_bad", BAD_KEYS.values(), ids=BAD_KEYS.keys())
async def test_bad_key_skipped_rest_works(jwks: JwksServer, make_bad: Any, caplog: pytest.LogCaptureFixture) -> None:
    good = new_identity("good")
    bad = make_bad()
    jwks.keys = [bad, good.jwk()]
    verifier, source, _ = make_verifier(jwks)

    with caplog.at_level(logging.WARNING, logger="gate.keys.jwk"):
        verified = await verifier.verify(good.sign(claims_for(jwks.base_url)))

    skipped = [record for record in caplog.records if getattr(record, "event", None) == "key_skipped"]
    assert verified.kid == "good"
    assert source.key_set is not None
    assert len(source.key_set) == 1
    assert len(skipped) == 1
    assert skipped[0].issuer == jwks.base_url
    if isinstance(bad, dict):
        assert skipped[0].kid == str(bad.get("kid"))


async def test_key_without_alg_gets_it_from_allow_list(jwks: JwksServer) -> None:
    signer = new_identity("no-alg", "RS256")
    jwk = signer.jwk()
    del jwk["alg"]
    jwks.keys = [jwk]
    verifier, source, _ = make_verifier(jwks, algorithms=frozenset({"RS256", "PS256", "ES256"}))

    verified = await verifier.verify(signer.sign(claims_for(jwks.base_url)))

    assert verified.kid == "no-alg"
    assert source.key_set is not None
    assert source.key_set.by_kid["no-alg"].algorithms == frozenset({"RS256", "PS256"})


FAILURES = {
    "http 500": ("error", "HTTP status 500"),
    "timeout": ("timeout", "timed out"),
    "garbage body": ("garbage", "valid JSON"),
    "oversized body": ("oversized", "limit"),
    "redirect to other host": ("redirect_away", "another host"),
}


@pytest.mark.parametrize("mode, message", FAILURES.values(), ids=FAILURES.keys())
async def test_failed_fetch_keeps_last_good_set(jwks: JwksServer, mode: str, message: str) -> None:
    signer = new_identity("k1")
    jwks.keys = [signer.jwk()]
    verifier, source, _ = make_verifier(jwks)
    await source.refresh("test")

    jwks.mode = mode  # type: ignore[assignment]
    await source.refresh("test")
    verified = await verifier.verify(signer.sign(claims_for(jwks.base_url)))

    assert source.consecutive_failures == 1
    assert message in (source.last_error or "")
    assert verified.kid == "k1"


MAX_AGE_CASES = {
    "within bounds": (2, 2.0),
    "above max_ttl": (100_000, 120.0),
    "below min_ttl": (0, 0.05),
    "absent uses ttl": (None, 60.0),
}


@pytest.mark.parametrize("max_age, expected_ttl", MAX_AGE_CASES.values(), ids=MAX_AGE_CASES.keys())
async def test_max_age_refines_ttl(jwks: JwksServer, max_age: int | None, expected_ttl: float) -> None:
    jwks.keys = [new_identity("k1").jwk()]
    jwks.max_age = max_age
    _, source, _ = make_verifier(jwks)

    await source.refresh("test")

    assert source.last_success is not None
    assert source.expires_at - source.last_success == pytest.approx(expected_ttl)


async def test_discovery_finds_jwks_uri(jwks: JwksServer) -> None:
    signer = new_identity("k1")
    jwks.keys = [signer.jwk()]
    verifier, _, _ = make_verifier(jwks, discovery=True)

    verified = await verifier.verify(signer.sign(claims_for(jwks.base_url)))

    assert verified.kid == "k1"
    assert jwks.discovery_fetches == 1
    assert jwks.fetches == 1


async def test_token_without_kid_tries_issuer_keys(jwks: JwksServer) -> None:
    signers = [new_identity(f"k{index}") for index in range(3)]
    jwks.keys = [signer.jwk() for signer in signers]
    verifier, _, _ = make_verifier(jwks)

    verified = await verifier.verify(signers[2].sign(claims_for(jwks.base_url), kid=None))

    assert verified.kid is None
    assert verified.issuer == jwks.base_url


async def test_header_key_material_never_used(jwks: JwksServer) -> None:
    attacker = new_identity("attacker")
    jwks.keys = [new_identity("real").jwk()]
    verifier, _, _ = make_verifier(jwks)
    headers = {
        "kid": None,
        "jwk": attacker.jwk(),
        "jku": jwks.base_url + "/attacker-jwks.json",
        "x5u": jwks.base_url + "/attacker-cert.pem",
    }

    reason = await rejection_reason(verifier, attacker.sign(claims_for(jwks.base_url), **headers))

    assert reason == "bad_signature"
    assert "/attacker-jwks.json" not in jwks.paths
    assert "/attacker-cert.pem" not in jwks.paths


async def test_readiness_waits_for_first_fetch(jwks: JwksServer) -> None:
    jwks.keys = [new_identity("k1").jwk()]
    _, source, store = make_verifier(jwks, wait_for_first_fetch=True)

    ready_before, _ = store.status()
    await source.refresh("test")
    ready_after, described = store.status()

    assert ready_before is False
    assert ready_after is True
    assert described[0]["keys"] == 1
    assert described[0]["consecutive_failures"] == 0
    assert described[0]["last_success"] is not None
