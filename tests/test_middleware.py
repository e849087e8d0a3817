"""BearerAuthMiddleware inside a small FastAPI app, served by uvicorn on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import aiohttp
import httpx
import jwt
import pytest
from fastapi import FastAPI, Request, WebSocket
from starlette.authentication import requires

from gate import BearerAuthMiddleware, Requirements
from gate.keys.generate import generate_private_key
from gate.keys.issuers import IssuerPolicy, TrustedIssuer
from gate.keys.jwk import TrustedKey
from gate.tokens.verifier import TokenVerifier
from tests.servers import running

ISSUER = "https://gate.test"
KID = "middleware-key"


@dataclass
class MiddlewareApp:
    url: str
    private_key: object
    calls: list[str]

    def token(self, **overrides: object) -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": "orders-robot",
            "aud": "orders-api",
            "iat": now,
            "exp": now + 60,
            "scope": "orders:read",
            "tenant": "acme",
            **overrides,
        }
        return jwt.encode(claims, self.private_key, algorithm="ES256", headers={"typ": "at+jwt", "kid": KID})


def build_app(verifier: TokenVerifier, calls: list[str]) -> FastAPI:
    app = FastAPI()
    requirements = Requirements.build(
        issuers=[ISSUER],
        audience=["orders-api"],
        scopes=["orders:read"],
        claims={"tenant": "acme"},
        policy='request.method != "DELETE" || claims.sub == "admin-robot"',
    )
    app.add_middleware(BearerAuthMiddleware, verifier=verifier, requirements=requirements, exclude_paths=["/healthz"])

    @app.get("/orders/{order_id}")
    async def read_order(order_id: int, request: Request) -> dict:
        calls.append(f"read {order_id}")
        return {"order": order_id, "subject": request.user.identity, "scopes": request.auth.scopes}

    @app.delete("/orders/{order_id}")
    async def delete_order(order_id: int) -> dict:
        calls.append(f"delete {order_id}")
        return {"deleted": order_id}

    @app.get("/admin")
    @requires("orders:admin")
    async def admin(request: Request) -> dict:
        calls.append("admin")
        return {}

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.websocket("/feed")
    async def feed(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(f"hello {websocket.user.identity}")
        await websocket.close()

    return app


@pytest.fixture(scope="module")
def middleware_app() -> Iterator[MiddlewareApp]:
    private_key = generate_private_key("ES256")
    key = TrustedKey(
        kid=KID,
        algorithms=frozenset({"ES256"}),
        key=private_key.public_key(),
        issuer=ISSUER,
        source="test",
        fingerprint=KID,
    )
    policy = IssuerPolicy(algorithms=frozenset({"ES256"}), leeway=0, token_type="at+jwt")
    verifier = TokenVerifier(TrustedIssuer(ISSUER, policy, [key], ()), cache_size=100)
    calls: list[str] = []

    with running(build_app(verifier, calls)) as url:
        yield MiddlewareApp(url, private_key, calls)


def test_valid_token_reaches_handler(middleware_app: MiddlewareApp) -> None:
    response = httpx.get(
        middleware_app.url + "/orders/7", headers={"Authorization": f"Bearer {middleware_app.token()}"}
    )

    assert response.status_code == 200
    assert response.json() == {"order": 7, "subject": "orders-robot", "scopes": ["orders:read"]}
    assert middleware_app.calls[-1] == "read 7"


REJECTIONS = {
    "no token": ("GET", None, 401, "missing_token"),
    "wrong audience": ("GET", {"aud": "billing-api"}, 401, "audience_mismatch"),
    "expired": ("GET", {"exp": int(time.time()) - 600, "iat": int(time.time()) - 900}, 401, "token_expired"),
    "missing scope": ("GET", {"scope": "orders:write"}, 403, "insufficient_scope"),
    "wrong tenant": ("GET", {"tenant": "zeta"}, 403, "claim_mismatch"),
    "policy denies delete": ("DELETE", {}, 403, "policy_denied"),
}


@pytest.mark.parametrize("method, claims, status, reason", REJECTIONS.values(), ids=REJECTIONS.keys())
def test_rejected_request_never_reaches_handler(
    middleware_app: MiddlewareApp, method: str, claims: dict | None, status: int, reason: str
) -> None:
    headers = {} if claims is None else {"Authorization": f"Bearer {middleware_app.token(**claims)}"}
    before = len(middleware_app.calls)

    response = httpx.request(method, middleware_app.url + "/orders/7", headers=headers)

    assert response.status_code == status
    assert response.json()["reason"] == reason
    assert response.headers["www-authenticate"].startswith('Bearer realm="gate"')
    assert len(middleware_app.calls) == before


def test_policy_allows_admin_delete(middleware_app: MiddlewareApp) -> None:
    token = middleware_app.token(sub="admin-robot")

    response = httpx.delete(middleware_app.url + "/orders/9", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 200
    assert middleware_app.calls[-1] == "delete 9"


def test_starlette_requires_reads_scopes(middleware_app: MiddlewareApp) -> None:
    response = httpx.get(middleware_app.url + "/admin", headers={"Authorization": f"Bearer {middleware_app.token()}"})

    assert response.status_code == 403
    assert "admin" not in middleware_app.calls


def test_excluded_path_needs_no_token(middleware_app: MiddlewareApp) -> None:
    response = httpx.get(middleware_app.url + "/healthz")

    assert response.status_code == 200


async def test_websocket_gets_user(middleware_app: MiddlewareApp) -> None:
    headers = {"Authorization": f"Bearer {middleware_app.token()}"}

    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(middleware_app.url + "/feed", headers=headers) as ws,
    ):
        greeting = await ws.receive_str(timeout=5)

    assert greeting == "hello orders-robot"


async def test_websocket_without_token_rejected(middleware_app: MiddlewareApp) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            await session.ws_connect(middleware_app.url + "/feed")

    assert caught.value.status == 401


def test_requirements_need_issuer_and_audience() -> None:
    with pytest.raises(ValueError, match="issuer and one audience"):
        Requirements.build(issuers=[], audience=["orders-api"])
