"""Discovery documents (RFC 8414, OpenID Connect Discovery) and the JWKS."""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gate.config.snapshot import Snapshot, SnapshotHolder
from gate.oauth.client_auth import METHODS

JWKS_PATH = "/.well-known/jwks.json"
OPENID_CONFIGURATION_PATH = "/.well-known/openid-configuration"
AUTHORIZATION_SERVER_PATH = "/.well-known/oauth-authorization-server"


def server_metadata(snapshot: Snapshot) -> dict[str, Any]:
    """Return the authorization server metadata of ``snapshot``'s issuer."""
    base = snapshot.config.issuer.rstrip("/")
    endpoints = snapshot.config.token_endpoint
    auth_methods = _auth_methods_supported(snapshot)
    return {
        "issuer": snapshot.config.issuer,
        "token_endpoint": base + snapshot.config.token_path,
        "introspection_endpoint": base + endpoints.introspection_path,
        "revocation_endpoint": base + endpoints.revocation_path,
        "jwks_uri": base + JWKS_PATH,
        "grant_types_supported": ["client_credentials", "password"],
        "token_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "response_types_supported": ["token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": sorted({key.algorithm for key in snapshot.keyring.keys.values()}),
        "scopes_supported": sorted({scope for client in snapshot.clients.values() for scope in client.scopes}),
    }


def _auth_methods_supported(snapshot: Snapshot) -> list[str]:
    """Return the RFC 8414 names of the credential forms some client accepts.

    A client library knows the service account form as ``none`` (no client
    secret, username and password in the body) and the encoded pair as
    ``client_secret_post``.
    """
    names = {
        METHODS[name].metadata_name
        for client in snapshot.clients.values()
        for name in client.auth_methods
        if name in METHODS
    }
    return sorted(names)


class MetadataEndpoints:
    """Starlette endpoints for the discovery documents and the JWKS."""

    def __init__(self, holder: SnapshotHolder) -> None:
        self.holder = holder

    async def metadata(self, request: Request) -> Response:
        body = json.dumps(server_metadata(self.holder.current), separators=(",", ":"))
        return Response(body, media_type="application/json", headers={"Cache-Control": "max-age=300"})

    async def jwks(self, request: Request) -> Response:
        keyring = self.holder.current.keyring
        now = time.time()
        return Response(
            keyring.jwks_document(now),
            media_type="application/jwk-set+json",
            headers={"Cache-Control": f"max-age={keyring.jwks_cache_seconds(now)}"},
        )
