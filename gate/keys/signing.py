"""gate's own signing keys and the JWKS document that publishes them."""

from __future__ import annotations

import json
from dataclasses import dataclass
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
    """A private key gate signs with, or only publishes."""

    kid: str
    algorithm: str
    private_key: PrivateKey
    active: bool

    @property
    def public_key(self) -> PublicKey:
        return self.private_key.public_key()

    def __repr__(self) -> str:
        return f"SigningKey(kid={self.kid!r}, algorithm={self.algorithm!r}, active={self.active})"


def load_private_key(path: Path) -> PrivateKey:
    """Read an unencrypted PEM private key from ``path``."""
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        raise UnsupportedKeyError(f"key type {type(key).__name__} is not supported; use EC P-256, RSA or Ed25519")
    return key


class Keyring:
    """All of gate's signing keys: one active signer, every public half published."""

    def __init__(self, keys: list[SigningKey]) -> None:
        active = [key for key in keys if key.active]
        if len(active) != 1:
            raise ValueError(f"expected exactly one active signing key, found {len(active)}")

        self.active = active[0]
        self.keys = {key.kid: key for key in keys}
        self.jwks = {"keys": [public_jwk(key.public_key, key.kid, key.algorithm) for key in keys]}
        self.jwks_bytes = json.dumps(self.jwks, separators=(",", ":")).encode()

    def public_key(self, kid: str) -> tuple[PublicKey, str] | None:
        """Return the public key and algorithm published under ``kid``."""
        key = self.keys.get(kid)
        if key is None:
            return None
        return key.public_key, key.algorithm
