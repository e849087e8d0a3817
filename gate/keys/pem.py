"""Verification keys from PEM files: X.509 certificates and bare public keys.

Only public material is read. A certificate is used for its public key, and
its validity period is checked when the config loads. An expired certificate
is a config error, because a verifier that keeps trusting it would accept
tokens its owner no longer vouches for. A certificate that expires while gate
runs stops verifying at its ``notAfter`` time.
"""

from __future__ import annotations

import base64
import hashlib
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from gate.keys.jwk import EC_ALGORITHM_FOR_CURVE, TrustedKey, algorithms_for_key
from gate.keys.signing import MIN_RSA_BITS, PublicKey

_EC_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


class PemKeyError(ValueError):
    """A PEM file that cannot serve as a verification key; the message gives the cause and the fix."""


def load_certificate_key(
    path: Path, *, kid: str | None, issuer: str, allowed: frozenset[str], now: float | None = None
) -> TrustedKey:
    """Read the first certificate of a PEM file and return its public key.

    Raises ``PemKeyError`` for an unreadable, expired or not yet valid certificate.
    """
    data = _read(path)
    if b"PRIVATE KEY" in data:
        raise PemKeyError(f"{path} contains a private key; configure the certificate alone")

    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError as error:
        raise PemKeyError(f"{path} is not a PEM X.509 certificate ({error})") from None

    certificate = certificates[0]
    current = time.time() if now is None else now
    not_after = certificate.not_valid_after_utc.timestamp()
    if not_after <= current:
        expired = certificate.not_valid_after_utc.isoformat()
        raise PemKeyError(f"the certificate in {path} expired on {expired}; replace it with a valid certificate")
    if certificate.not_valid_before_utc.timestamp() > current:
        starts = certificate.not_valid_before_utc.isoformat()
        raise PemKeyError(f"the certificate in {path} is not valid before {starts}; check the file or the clock")

    thumbprint = base64.urlsafe_b64encode(hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).digest())
    key = _trusted(certificate.public_key(), path, kid=kid, issuer=issuer, allowed=allowed)
    key.not_after = not_after
    key.fingerprint = "x5t#S256:" + thumbprint.rstrip(b"=").decode()
    return key


def load_public_key(path: Path, *, kid: str | None, issuer: str, allowed: frozenset[str]) -> TrustedKey:
    """Read a PEM public key (``BEGIN PUBLIC KEY``)."""
    data = _read(path)
    if b"PRIVATE KEY" in data:
        raise PemKeyError(f"{path} contains a private key; configure the public key alone")

    try:
        public_key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as error:
        raise PemKeyError(f"{path} is not a PEM public key ({error})") from None
    return _trusted(public_key, path, kid=kid, issuer=issuer, allowed=allowed)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise PemKeyError(f"cannot read {path}: {error.strerror}") from None


def _trusted(public_key: object, path: Path, *, kid: str | None, issuer: str, allowed: frozenset[str]) -> TrustedKey:
    kty, crv = _key_type(public_key, path)
    algorithms = algorithms_for_key(kty, crv, allowed)
    if not algorithms:
        raise PemKeyError(
            f"the {kty} key in {path} fits none of the issuer's algorithms ({', '.join(sorted(allowed))})"
        )

    der = public_key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return TrustedKey(
        kid=kid,
        algorithms=algorithms,
        key=public_key,  # type: ignore[arg-type]
        issuer=issuer,
        source=f"file:{path.name}",
        fingerprint="spki:" + hashlib.sha256(der).hexdigest(),
    )


def _key_type(public_key: object, path: Path) -> tuple[str, str | None]:
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < MIN_RSA_BITS:
            raise PemKeyError(f"the RSA key in {path} has {public_key.key_size} bits; use at least {MIN_RSA_BITS}")
        return "RSA", None

    if isinstance(public_key, ec.EllipticCurvePublicKey):
        curve = _EC_CURVES.get(public_key.curve.name)
        if curve not in EC_ALGORITHM_FOR_CURVE:
            raise PemKeyError(f"the EC curve {public_key.curve.name} in {path} is not supported")
        return "EC", curve

    if isinstance(public_key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return "OKP", None

    raise PemKeyError(f"the key type {type(public_key).__name__} in {path} is not supported")


__all__ = ["PemKeyError", "PublicKey", "load_certificate_key", "load_public_key"]
