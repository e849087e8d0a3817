"""Measurements that bench/run.py makes in its own process: one ES256 verify, gate's cold path, streamed bodies."""

from __future__ import annotations

import asyncio
import base64
import http.client
import time
import timeit
from typing import Any

import fixtures
import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from load import HOST
from report import MIB, InProcessCold

from gate.app import GateApp, create_app
from gate.config.compile import load_snapshot

STREAM_BLOCK = b"\0" * MIB
# NOTE: all repeats' tokens (7,500 plus the warm-up) fit in gate's default verified-token cache
# of 10,000 entries, so no measured request pays for evicting old entries.
COLD_TOKENS = 1500
COLD_REPEATS = 5
COLD_WARMUP_TOKENS = 50
UPSTREAM_BODY = b'{"ok": true}'


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


def measure_cold_path(files: fixtures.GateFiles) -> InProcessCold:
    """Time gate's protected route in this process: never-seen tokens, one cached token, a raw ES256 verify.

    gate's app is built from the benchmark's config and called with ASGI
    scopes. Its forwarder is replaced by a stub that returns 200, so no socket,
    upstream or other process shares the measurement. Each figure is CPU time
    per request (time.process_time), the best of COLD_REPEATS repeats, and each
    repeat sends COLD_TOKENS tokens that gate has not seen before.
    """
    return asyncio.run(_measure_cold_path(files))


async def _measure_cold_path(files: fixtures.GateFiles) -> InProcessCold:
    tokens = fixtures.sign_tokens(files, 1 + COLD_WARMUP_TOKENS + COLD_TOKENS * COLD_REPEATS)
    warm_token = tokens[0]
    warmup_tokens = tokens[1 : 1 + COLD_WARMUP_TOKENS]
    cold_tokens = tokens[1 + COLD_WARMUP_TOKENS :]
    private_key: Any = load_pem_private_key(files.key_path.read_bytes(), password=None)
    public_key = private_key.public_key()
    app = build_app_with_stub_upstream(files)
    host = files.issuer.split("://", 1)[1].encode()

    await app.holder.current.start()
    try:
        await call_protected_route(app, host, [warm_token, *warmup_tokens])

        cold, warm, raw_verify = [], [], []
        for repeat in range(COLD_REPEATS):
            batch = cold_tokens[repeat * COLD_TOKENS : (repeat + 1) * COLD_TOKENS]
            warm.append(await call_protected_route(app, host, [warm_token] * COLD_TOKENS))
            cold.append(await call_protected_route(app, host, batch))
            raw_verify.append(time_raw_verify(public_key, raw_signatures(batch)))
    finally:
        await app.holder.current.close()

    return InProcessCold(1e6 * min(cold), 1e6 * min(warm), 1e6 * min(raw_verify), COLD_TOKENS, COLD_REPEATS)


def build_app_with_stub_upstream(files: fixtures.GateFiles) -> GateApp:
    """Build gate's app from the benchmark's config, with a forwarder that sends a 200 response without any network."""
    app = create_app(load_snapshot(files.config_path))

    async def send_200_response(scope: Any, receive: Any, send: Any, url: str, headers: Any, read_timeout: Any) -> int:
        content_length = str(len(UPSTREAM_BODY)).encode()
        response_headers = [(b"content-type", b"application/json"), (b"content-length", content_length)]
        await send({"type": "http.response.start", "status": 200, "headers": response_headers})
        await send({"type": "http.response.body", "body": UPSTREAM_BODY})
        return 200

    app.forwarder.forward = send_200_response  # type: ignore[method-assign]
    return app


class StatusRecorder:
    """An ASGI ``send`` callable that counts the responses sent through it, by status."""

    def __init__(self) -> None:
        self.statuses: dict[int, int] = {}

    async def send(self, message: Any) -> None:
        if message["type"] == "http.response.start":
            status = message["status"]
            self.statuses[status] = self.statuses.get(status, 0) + 1


async def receive_empty_body() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


def protected_scope(host: bytes, token: str) -> dict[str, Any]:
    """Return the ASGI http scope of ``GET`` on the protected route with ``token`` as bearer token."""
    path = fixtures.PROTECTED_PREFIX + "small"
    headers = [(b"host", host), (b"user-agent", b"bench"), (b"authorization", b"Bearer " + token.encode())]
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": (HOST, 50000),
        "server": (HOST, 80),
    }


async def call_protected_route(app: GateApp, host: bytes, tokens: list[str]) -> float:
    """Call ``app`` once per token and return the CPU seconds per request.

    Raise RuntimeError unless every response is 200, so a rejected request never passes for a fast one.
    """
    scopes = [protected_scope(host, token) for token in tokens]
    recorder = StatusRecorder()

    started = time.process_time()
    for scope in scopes:
        await app(scope, receive_empty_body, recorder.send)
    elapsed = time.process_time() - started

    if recorder.statuses != {200: len(scopes)}:
        counts = recorder.statuses
        raise RuntimeError(f"in-process gate sent statuses {counts} to {len(scopes)} requests, expected 200 for each")
    return elapsed / len(scopes)


def raw_signatures(tokens: list[str]) -> list[tuple[bytes, bytes]]:
    """Split ES256 tokens into a DER signature and the signing input ``header.payload`` each.

    A JWS ES256 signature is R and S as 32-octet big-endian integers, back to
    back (RFC 7518 section 3.4). cryptography's ``verify`` takes the DER form.
    """
    signatures = []
    for token in tokens:
        header, payload, signature = token.split(".")
        raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
        der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
        signatures.append((der, f"{header}.{payload}".encode("ascii")))
    return signatures


def time_raw_verify(public_key: Any, signatures: list[tuple[bytes, bytes]]) -> float:
    """Verify each signature with cryptography alone; return the CPU seconds per verification."""
    algorithm = ec.ECDSA(hashes.SHA256())

    started = time.process_time()
    for signature, signing_input in signatures:
        public_key.verify(signature, signing_input, algorithm)
    return (time.process_time() - started) / len(signatures)


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
