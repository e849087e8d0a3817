"""Public keys of trusted issuers, and the checks every JWK passes at ingest.

A key that fails a check is skipped with a warning that names the issuer and
the kid. The other keys of the same set are still used, so one bad key never
spoils a key set.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from gate.keys.signing import MIN_RSA_BITS, PublicKey
from gate.metrics import METRICS

logger = logging.getLogger(__name__)

RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
EC_ALGORITHM_FOR_CURVE = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
OKP_CURVES = frozenset({"Ed25519", "Ed448"})
ASYMMETRIC_ALGORITHMS = RSA_ALGORITHMS | frozenset(EC_ALGORITHM_FOR_CURVE.values()) | {"EdDSA"}
HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})

# RFC 7518 section 6: members that only a private or symmetric key has.
PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")


class TrustedKey:
    """One verification key of one issuer.

    ``trusted`` turns false when the key leaves its source's key set, or when
    that set is too stale to use. The verified-token cache reads this flag on
    every hit, so a removed key stops verifying at once.
    """

    __slots__ = ("algorithms", "fingerprint", "issuer", "key", "kid", "not_after", "source", "trusted", "trusted_until")

    def __init__(
        self,
        *,
        kid: str | None,
        algorithms: frozenset[str],
        key: PublicKey,
        issuer: str,
        source: str,
        fingerprint: str,
        not_after: float | None = None,
    ) -> None:
        self.kid = kid
        self.algorithms = algorithms
        self.key = key
        self.issuer = issuer
        self.source = source
        self.fingerprint = fingerprint
        self.not_after = not_after
        self.trusted = True
        # time.monotonic() deadline past which a remote key's set is too stale to trust; local keys never expire.
        self.trusted_until = math.inf

    def __repr__(self) -> str:
        return f"TrustedKey(issuer={self.issuer!r}, kid={self.kid!r}, algorithms={sorted(self.algorithms)})"


class KeySet:
    """The keys of one source, by kid; keys without a kid are listed apart."""

    def __init__(self, keys: Iterable[TrustedKey]) -> None:
        self.keys: tuple[TrustedKey, ...] = tuple(keys)
        self.by_kid: dict[str, TrustedKey] = {}
        for key in self.keys:
            if key.kid is not None:
                self.by_kid.setdefault(key.kid, key)
        self.without_kid = tuple(key for key in self.keys if key.kid is None)

    def __len__(self) -> int:
        return len(self.keys)

    def distrust(self) -> None:
        for key in self.keys:
            key.trusted = False

    def carry_over(self, previous: KeySet) -> KeySet:
        """Return this set with the objects of ``previous`` for unchanged keys, so their cached tokens stay valid."""
        merged = []
        for key in self.keys:
            old = previous.by_kid.get(key.kid) if key.kid is not None else None
            if old is not None and old.fingerprint == key.fingerprint and old.algorithms == key.algorithms:
                old.trusted = True
                merged.append(old)
            else:
                merged.append(key)
        return KeySet(merged)

    def distrust_missing(self, current: KeySet) -> list[TrustedKey]:
        """Distrust every key of this set that ``current`` does not carry over, and return them."""
        kept = {id(key) for key in current.keys}
        removed = [key for key in self.keys if id(key) not in kept]
        for key in removed:
            key.trusted = False
        return removed


def algorithms_for_key(kty: str, crv: str | None, allowed: frozenset[str]) -> frozenset[str]:
    """Return the algorithms of ``allowed`` that a key of this type and curve can verify."""
    if kty == "RSA":
        return allowed & RSA_ALGORITHMS
    if kty == "EC":
        algorithm = EC_ALGORITHM_FOR_CURVE.get(crv or "")
        return allowed & {algorithm} if algorithm else frozenset()
    if kty == "OKP":
        return allowed & {"EdDSA"}
    return frozenset()


class SkippedKeyError(ValueError):
    """A JWK that failed an ingest check; the message names the check."""


def ingest_jwk(jwk: Any, *, issuer: str, source: str, allowed: frozenset[str]) -> TrustedKey:
    """Check one JWK and turn it into a ``TrustedKey``, or raise ``SkippedKeyError``."""
    if not isinstance(jwk, Mapping):
        raise SkippedKeyError("the entry is not a JSON object")

    kid = jwk.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise SkippedKeyError("its kid is not a string")

    kty = jwk.get("kty")
    if kty == "oct":
        raise SkippedKeyError("it is a symmetric key, and this issuer's algorithms are asymmetric")
    if kty not in ("RSA", "EC", "OKP"):
        raise SkippedKeyError(f"key type {kty!r} is not supported (expected RSA, EC or OKP)")

    present = [member for member in PRIVATE_MEMBERS if member in jwk]
    if present:
        raise SkippedKeyError(f"it contains private key members ({', '.join(present)}); publish public keys only")

    _check_use(jwk)
    crv = jwk.get("crv")
    if kty == "EC" and crv not in EC_ALGORITHM_FOR_CURVE:
        raise SkippedKeyError(f"EC curve {crv!r} is not supported (expected P-256, P-384 or P-521)")
    if kty == "OKP" and crv not in OKP_CURVES:
        raise SkippedKeyError(f"OKP curve {crv!r} is not supported (expected Ed25519 or Ed448)")

    algorithms = _algorithms(jwk, kty, crv, allowed)
    key = _public_key(jwk, next(iter(sorted(algorithms))))
    fingerprint = json.dumps({name: jwk.get(name) for name in ("kty", "crv", "n", "e", "x", "y")}, sort_keys=True)
    return TrustedKey(kid=kid, algorithms=algorithms, key=key, issuer=issuer, source=source, fingerprint=fingerprint)


def _check_use(jwk: Mapping[str, Any]) -> None:
    use = jwk.get("use")
    if use is not None and use != "sig":
        raise SkippedKeyError(f"it is meant for {use!r}, not for signatures")

    key_ops = jwk.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        raise SkippedKeyError("its key_ops do not include 'verify'")


def _algorithms(jwk: Mapping[str, Any], kty: str, crv: str | None, allowed: frozenset[str]) -> frozenset[str]:
    usable = algorithms_for_key(kty, crv, allowed)
    declared = jwk.get("alg")
    if declared is None:
        if not usable:
            raise SkippedKeyError(f"no allowed algorithm ({', '.join(sorted(allowed))}) fits a {kty} key")
        return usable

    if declared not in usable:
        raise SkippedKeyError(f"its alg {declared!r} is not allowed for this issuer or does not fit a {kty} key")
    return frozenset({declared})


def _public_key(jwk: Mapping[str, Any], algorithm: str) -> PublicKey:
    try:
        key = jwt.PyJWK(dict(jwk), algorithm=algorithm).key
    except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError) as error:
        raise SkippedKeyError(f"its key material is invalid ({error})") from None

    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        raise SkippedKeyError(f"its RSA modulus has {key.key_size} bits, fewer than {MIN_RSA_BITS}")
    return key


def ingest_jwks(document: Any, *, issuer: str, source: str, allowed: frozenset[str]) -> KeySet:
    """Check every key of a JWKS document (RFC 7517 section 5), skipping bad ones with a warning.

    Raises ``ValueError`` if the document itself is not a key set.
    """
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise ValueError("the document is not a JWK set (expected an object with a 'keys' list)")

    keys: list[TrustedKey] = []
    seen: set[str] = set()
    for jwk in document["keys"]:
        kid = jwk.get("kid") if isinstance(jwk, Mapping) else None
        try:
            key = ingest_jwk(jwk, issuer=issuer, source=source, allowed=allowed)
        except SkippedKeyError as error:
            _warn_skipped(issuer, source, kid, str(error))
            continue

        if key.kid is not None and key.kid in seen:
            _warn_skipped(issuer, source, kid, "another key of the set has the same kid")
            continue
        if key.kid is not None:
            seen.add(key.kid)
        keys.append(key)

    return KeySet(keys)


def _warn_skipped(issuer: str, source: str, kid: object, reason: str) -> None:
    METRICS.inc("gate_key_skipped_total", {"issuer": issuer, "source": source})
    logger.warning(
        "skipped a key of a trusted issuer: %s",
        reason,
        extra={"event": "key_skipped", "issuer": issuer, "source": source, "kid": str(kid)},
    )
