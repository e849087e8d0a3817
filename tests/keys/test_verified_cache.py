"""The verified-token cache: bounded, and emptied by revocation and reload hooks."""

from __future__ import annotations

import pytest

from gate.errors import BearerError
from gate.keys.issuers import IssuerPolicy, KeyStore, TrustedIssuer
from gate.keys.jwk import ingest_jwks
from gate.tokens.verifier import TokenVerifier
from tests.jwks_server import SigningIdentity, claims_for, new_identity

ISSUER_A = "https://a.example"
ISSUER_B = "https://b.example"
ALGORITHMS = frozenset({"ES256"})


def issuer_with(name: str, signer: SigningIdentity) -> TrustedIssuer:
    keys = ingest_jwks({"keys": [signer.jwk()]}, issuer=name, source="inline", allowed=ALGORITHMS)
    return TrustedIssuer(name, IssuerPolicy(algorithms=ALGORITHMS), keys.keys, ())


def make_verifier(cache_size: int = 100) -> tuple[TokenVerifier, SigningIdentity, SigningIdentity, TrustedIssuer]:
    signer_a, signer_b = new_identity("a"), new_identity("b")
    issuer_a = issuer_with(ISSUER_A, signer_a)
    own = TrustedIssuer("https://gate.test", IssuerPolicy(algorithms=ALGORITHMS), (), ())
    store = KeyStore([issuer_a, issuer_with(ISSUER_B, signer_b)])
    return TokenVerifier(own, store, cache_size=cache_size), signer_a, signer_b, issuer_a


async def test_forget_jti_drops_only_that_token() -> None:
    verifier, signer_a, _, _ = make_verifier()
    revoked = signer_a.sign(claims_for(ISSUER_A, jti="revoked"))
    kept = signer_a.sign(claims_for(ISSUER_A, jti="kept"))
    await verifier.verify(revoked)
    await verifier.verify(kept)

    dropped = verifier.forget_jti(ISSUER_A, "revoked")

    assert dropped == 1
    assert len(verifier.cache) == 1


async def test_forget_issuer_and_clear() -> None:
    verifier, signer_a, signer_b, _ = make_verifier()
    await verifier.verify(signer_a.sign(claims_for(ISSUER_A)))
    await verifier.verify(signer_b.sign(claims_for(ISSUER_B)))

    dropped = verifier.forget_issuer(ISSUER_A)
    remaining = len(verifier.cache)
    verifier.clear()

    assert dropped == 1
    assert remaining == 1
    assert len(verifier.cache) == 0


async def test_cache_stays_within_bound() -> None:
    verifier, signer_a, _, _ = make_verifier(cache_size=50)

    for index in range(200):
        await verifier.verify(signer_a.sign(claims_for(ISSUER_A, jti=str(index))))

    assert len(verifier.cache) <= 50


async def test_distrusted_key_rejects_cached_token() -> None:
    verifier, signer_a, _, issuer_a = make_verifier()
    token = signer_a.sign(claims_for(ISSUER_A))
    await verifier.verify(token)

    issuer_a.local.distrust()
    with pytest.raises(BearerError) as caught:
        await verifier.verify(token)

    assert caught.value.reason_id == "unknown_kid"


async def test_stale_key_set_rejects_cached_token() -> None:
    import time

    verifier, signer_a, _, issuer_a = make_verifier()
    token = signer_a.sign(claims_for(ISSUER_A))
    await verifier.verify(token)
    hit_before_deadline = verifier.cache.get(token)

    for key in issuer_a.local.keys:
        key.trusted_until = time.monotonic() - 1  # the deadline a remote source sets, now passed

    assert hit_before_deadline is not None
    assert verifier.cache.get(token) is None
