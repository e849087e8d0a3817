"""RedisState over TLS to a real redis-server, with a CA made for the test."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gate.state import SharedStateUnavailableError
from gate.state.redis import RedisState
from gate.state.settings import RedisSettings
from tests.redis_server import RedisServer


def write_pem(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def issue_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """Write a CA certificate, and a server certificate for 127.0.0.1 that it signed with its key."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gate test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )

    server_key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    key_pem = server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return (
        write_pem(directory / "ca.pem", ca.public_bytes(serialization.Encoding.PEM)),
        write_pem(directory / "server.pem", server.public_bytes(serialization.Encoding.PEM)),
        write_pem(directory / "server-key.pem", key_pem),
    )


@pytest.fixture
def tls_server(redis_server: RedisServer, tmp_path: Path) -> tuple[RedisServer, Path]:
    ca_file, certificate, private_key = issue_certificates(tmp_path)
    redis_server.kill()
    redis_server.use_tls(certificate, private_key)
    redis_server.start()
    return redis_server, ca_file


async def test_tls_with_ca_file(tls_server: tuple[RedisServer, Path]) -> None:
    server, ca_file = tls_server
    state = RedisState(RedisSettings(url=server.url, tls_ca_file=str(ca_file)))

    assert await state.add_if_absent("jti:issuer:tls", ttl=60) is True
    assert await state.add_if_absent("jti:issuer:tls", ttl=60) is False
    await state.close()


async def test_tls_rejects_unknown_ca(tls_server: tuple[RedisServer, Path]) -> None:
    server, _ = tls_server
    state = RedisState(RedisSettings(url=server.url))

    with pytest.raises(SharedStateUnavailableError, match="certificate verify failed"):
        await state.add_if_absent("jti:issuer:tls", ttl=60)
    await state.close()


async def test_tls_without_verification(tls_server: tuple[RedisServer, Path]) -> None:
    server, _ = tls_server
    state = RedisState(RedisSettings(url=server.url, tls_verify=False))

    assert await state.add_if_absent("jti:issuer:tls", ttl=60) is True
    await state.close()


async def test_plain_client_rejected_by_tls_server(tls_server: tuple[RedisServer, Path]) -> None:
    server, _ = tls_server
    state = RedisState(RedisSettings(url=server.url.replace("rediss://", "redis://")))

    with pytest.raises(SharedStateUnavailableError):
        await state.add_if_absent("jti:issuer:tls", ttl=60)
    await state.close()
