"""Self-signed X.509 certificates for tests."""

from __future__ import annotations

import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from gate.keys.signing import PrivateKey


def write_certificate(key: PrivateKey, path: Path, *, valid_days: int = 30, expired: bool = False) -> Path:
    """Write a self-signed PEM certificate for ``key``; ``expired`` makes one that ended yesterday."""
    now = datetime.datetime.now(datetime.UTC)
    start = now - datetime.timedelta(days=valid_days + 2) if expired else now - datetime.timedelta(minutes=5)
    end = now - datetime.timedelta(days=1) if expired else now + datetime.timedelta(days=valid_days)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "workload.test")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .sign(key, hashes.SHA256())  # type: ignore[arg-type]
    )
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return path
