"""gate's own signing keys and the JWKS document that publishes them."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey

MIN_RSA_BITS = 2048


class UnsupportedKeyError(ValueError):
    """A PEM key of a type or size gate does not sign with."""


def algorithm_for(key: PrivateKey | PublicKey) -> str:
    """Return the JWS algorithm gate uses with ``key``: ES256, RS256 or EdDSA."""
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise UnsupportedKeyError(f"EC curve {key.curve.name} is not supported; use P-256 (ES256)")
        return "ES256"

    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise UnsupportedKeyError(f"RSA key of {key.key_size} bits is too short; use at least {MIN_RSA_BITS}")
        return "RS256"

    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "EdDSA"

    raise UnsupportedKeyError(f"key type {type(key).__name__} is not supported; use EC P-256, RSA or Ed25519")


def public_jwk(key: PublicKey, kid: str, alg: str) -> dict[str, Any]:
    """Return the public JWK of ``key`` with ``kid``, ``alg`` and ``use: sig``."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        jwk = json.loads(ECAlgorithm.to_jwk(key))
    elif isinstance(key, rsa.RSAPublicKey):
        jwk = json.loads(RSAAlgorithm.to_jwk(key))
    else:
        jwk = json.loads(OKPAlgorithm.to_jwk(key))

    jwk.update({"kid": kid, "alg": alg, "use": "sig"})
    return jwk


@dataclass(frozen=True, repr=False)
class SigningKey:
    """A private key gate signs with, or only publishes.

    ``retired_until`` is the Unix time after which a retired key is neither
    published nor trusted: the moment it stopped signing plus the longest
    lifetime of a token it could have signed.
    """

    kid: str
    algorithm: str
    private_key: PrivateKey
    active: bool
    retired_until: float | None = None

    @cached_property
    def public_key(self) -> PublicKey:
        """The public half, derived once: deriving it costs about 9 µs per call."""
        return self.private_key.public_key()

    def published_at(self, now: float) -> bool:
        return self.retired_until is None or now < self.retired_until

    def __repr__(self) -> str:
        return f"SigningKey(kid={self.kid!r}, algorithm={self.algorithm!r}, active={self.active})"


def load_private_key(path: Path) -> PrivateKey:
    """Read an unencrypted PEM private key from ``path``."""
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        raise UnsupportedKeyError(f"key type {type(key).__name__} is not supported; use EC P-256, RSA or Ed25519")
    return key


class Keyring:
    """All of gate's signing keys: one active signer; every key not past retirement is published."""

    def __init__(self, keys: list[SigningKey], *, jwks_max_age: int = 300) -> None:
        active = [key for key in keys if key.active]
        if len(active) != 1:
            raise ValueError(f"expected exactly one active signing key, found {len(active)}")

        self.active = active[0]
        self.keys = {key.kid: key for key in keys}
        self.jwks_max_age = jwks_max_age
        self._documents: dict[tuple[str, ...], bytes] = {}

    @property
    def jwks(self) -> dict[str, Any]:
        return json.loads(self.jwks_document(time.time()))

    @property
    def jwks_bytes(self) -> bytes:
        return self.jwks_document(time.time())

    def published(self, now: float) -> list[SigningKey]:
        return [key for key in self.keys.values() if key.published_at(now)]

    def jwks_document(self, now: float) -> bytes:
        """Return the JWKS of the keys published at ``now``, serialised once per key set."""
        keys = self.published(now)
        kids = tuple(key.kid for key in keys)
        document = self._documents.get(kids)
        if document is None:
            body = {"keys": [public_jwk(key.public_key, key.kid, key.algorithm) for key in keys]}
            document = json.dumps(body, separators=(",", ":")).encode()
            self._documents[kids] = document
        return document

    def jwks_cache_seconds(self, now: float) -> int:
        """Return the JWKS ``max-age``: the configured value, cut short when a retired key drops sooner.

        Verifiers then stop trusting a retired key soon after gate stops
        publishing it. A key in state ``next`` must stay published at least
        this long before it becomes active, so every verifier's cache has it.
        """
        drops = [key.retired_until - now for key in self.keys.values() if key.retired_until and key.published_at(now)]
        return max(0, int(min([self.jwks_max_age, *drops])))

    def public_key(self, kid: str) -> tuple[PublicKey, str] | None:
        """Return the public key and algorithm published under ``kid``."""
        key = self.keys.get(kid)
        if key is None or not key.published_at(time.time()):
            return None
        return key.public_key, key.algorithm
