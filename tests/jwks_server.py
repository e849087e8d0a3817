"""A JWKS server for tests that can rotate, fail, stall and misbehave on demand."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gate.keys.signing import PrivateKey, public_jwk

Mode = Literal["ok", "error", "timeout", "garbage", "oversized", "redirect_away"]


@dataclass
class SigningIdentity:
    """A private key and the kid it is published under."""

    kid: str
    private_key: PrivateKey
    algorithm: str

    def jwk(self, **extra: Any) -> dict[str, Any]:
        return {**public_jwk(self.private_key.public_key(), self.kid, self.algorithm), **extra}

    def sign(self, claims: dict[str, Any], **headers: Any) -> str:
        header = {"kid": self.kid, **headers}
        if header["kid"] is None:
            del header["kid"]
        return jwt.encode(claims, self.private_key, algorithm=self.algorithm, headers=header)


def new_identity(kid: str, algorithm: str = "ES256") -> SigningIdentity:
    if algorithm == "RS256":
        return SigningIdentity(kid, rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256")
    return SigningIdentity(kid, ec.generate_private_key(ec.SECP256R1()), "ES256")


def claims_for(issuer: str, audience: str = "orders-api", lifetime: int = 300, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": issuer, "sub": "workload-1", "aud": audience, "iat": now, "exp": now + lifetime, **extra}


@dataclass
class JwksServer:
    """An ASGI app serving ``/jwks.json`` and ``/.well-known/openid-configuration``.

    ``mode`` chooses the response to the next fetches; ``fetches`` counts JWKS
    requests, ``discovery_fetches`` the discovery requests.
    """

    keys: list[dict[str, Any]] = field(default_factory=list)
    mode: Mode = "ok"
    max_age: int | None = None
    delay: float = 0.0
    fetches: int = 0
    discovery_fetches: int = 0
    base_url: str = ""
    paths: list[str] = field(default_factory=list)

    def reset(self) -> None:
        """Forget keys, counts and failure modes, so one server can serve many tests."""
        self.keys = []
        self.mode = "ok"
        self.max_age = None
        self.delay = 0.0
        self.fetches = 0
        self.discovery_fetches = 0
        self.paths.clear()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return

        self.paths.append(scope["path"])
        if scope["path"] == "/.well-known/openid-configuration":
            self.discovery_fetches += 1
            body = json.dumps({"issuer": self.base_url, "jwks_uri": self.base_url + "/jwks.json"}).encode()
            await _answer(send, 200, body)
            return

        if scope["path"] != "/jwks.json":
            await _answer(send, 404, b"{}")
            return

        self.fetches += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        await self._answer_jwks(send)

    async def _answer_jwks(self, send: Any) -> None:
        if self.mode == "error":
            await _answer(send, 500, b'{"error":"boom"}')
        elif self.mode == "timeout":
            await asyncio.sleep(1)
            await _answer(send, 200, b"{}")
        elif self.mode == "garbage":
            await _answer(send, 200, b"<html>not json</html>")
        elif self.mode == "oversized":
            await _answer(send, 200, b'{"keys":[' + b" " * (2 * 1024 * 1024) + b"]}")
        elif self.mode == "redirect_away":
            await _answer(send, 302, b"", [(b"location", b"http://127.0.0.2:9/jwks.json")])
        else:
            headers = [(b"cache-control", f"max-age={self.max_age}".encode())] if self.max_age is not None else []
            await _answer(send, 200, json.dumps({"keys": self.keys}).encode(), headers)


async def _answer(send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    base = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": base + (headers or [])})
    await send({"type": "http.response.body", "body": body})
