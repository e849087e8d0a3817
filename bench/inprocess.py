"""What bench/run.py measures in its own process: one ES256 verify, and large bodies streamed through gate."""

from __future__ import annotations

import http.client
import time
import timeit
from typing import Any

import fixtures
import jwt
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from load import HOST
from report import MIB

STREAM_BLOCK = b"\0" * MIB


def measure_verify_us(files: fixtures.GateFiles) -> float:
    """Time one PyJWT ES256 verify with gate's key and claim checks, in µs of CPU time (best of 5 repeats).

    CPU time rather than wall time, so that other processes on the same CPU do
    not inflate it, and so that it compares with the servers' CPU time per request.
    """
    token = fixtures.sign_tokens(files, 1)[0]
    private_key: Any = load_pem_private_key(files.key_path.read_bytes(), password=None)
    public_key = private_key.public_key()

    def verify() -> None:
        jwt.decode(
            token,
            public_key,
            algorithms=["ES256"],
            issuer=files.issuer,
            audience=fixtures.AUDIENCE,
            options={"require": ["exp", "iat", "iss", "sub"]},
        )

    number = 500
    return 1e6 * min(timeit.repeat(verify, number=number, repeat=5, timer=time.process_time)) / number


def stream_upload(port: int, token: str, size: int) -> float:
    """POST ``size`` bytes through gate's protected route in 1 MiB writes; return MiB/s."""
    remaining = size

    def blocks() -> Any:
        nonlocal remaining
        while remaining > 0:
            block = STREAM_BLOCK[: min(remaining, len(STREAM_BLOCK))]
            remaining -= len(block)
            yield block

    connection = http.client.HTTPConnection(HOST, port, timeout=120)
    headers = {"Authorization": f"Bearer {token}", "Content-Length": str(size)}
    started = time.monotonic()
    try:
        connection.request("POST", fixtures.PROTECTED_PREFIX + "upload", body=blocks(), headers=headers)
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    elapsed = time.monotonic() - started
    if response.status != 200 or f'"received_bytes": {size}'.encode() not in body:
        raise RuntimeError(f"upload through gate failed: {response.status} {body[:200]!r}")
    return size / MIB / elapsed


def stream_download(port: int, token: str, size: int) -> float:
    """GET ``size`` bytes through gate's protected route, reading 1 MiB at a time; return MiB/s."""
    connection = http.client.HTTPConnection(HOST, port, timeout=120)
    received = 0
    started = time.monotonic()
    try:
        connection.request(
            "GET", f"{fixtures.PROTECTED_PREFIX}download/{size}", headers={"Authorization": f"Bearer {token}"}
        )
        response = connection.getresponse()
        while block := response.read(MIB):
            received += len(block)
    finally:
        connection.close()
    elapsed = time.monotonic() - started
    if response.status != 200 or received != size:
        raise RuntimeError(f"download through gate failed: status {response.status}, {received} of {size} bytes")
    return size / MIB / elapsed
