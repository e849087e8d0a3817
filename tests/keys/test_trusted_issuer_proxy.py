"""gate under uvicorn accepting a trusted issuer's tokens, and its key server failing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from gate.app import create_app
from gate.config.compile import load_snapshot
from gate.keys.generate import generate_private_key, write_private_key
from gate.oauth.app_tokens import generate_app_token
from tests.conftest import AUDIENCE, base_config
from tests.jwks_server import JwksServer, SigningIdentity, claims_for, new_identity
from tests.servers import RecordingUpstream, free_port, running


@dataclass
class Setup:
    url: str
    jwks: JwksServer
    upstream: RecordingUpstream
    signer: SigningIdentity


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    directory: Path = tmp_path_factory.mktemp("trusted")
    write_private_key(generate_private_key("ES256"), directory / "signing-key.pem")
    signer = new_identity("ci-1")
    jwks = JwksServer(keys=[signer.jwk()], max_age=0)
    upstream = RecordingUpstream()

    with running(jwks) as jwks_url, running(upstream) as upstream_url:
        jwks.base_url = jwks_url
        port = free_port()
        config = base_config(f"http://127.0.0.1:{port}", upstream_url, generate_app_token())
        config["trusted_issuers"] = [
            {
                "issuer": jwks_url,
                "algorithms": ["ES256"],
                "keys": [{"jwks_uri": jwks_url + "/jwks.json"}],
                "key_cache": {
                    "ttl": 0.2,
                    "min_ttl": 0.2,
                    "retry_interval": 0.05,
                    "max_staleness": 1.0,
                    "timeout": 0.5,
                    "wait_for_first_fetch": True,
                },
            }
        ]
        orders = next(route for route in config["routes"] if route["id"] == "orders")
        orders["auth"]["issuers"] = [f"http://127.0.0.1:{port}", jwks_url]  # gate's own and the trusted issuer
        (directory / "gate.yaml").write_text(yaml.safe_dump(config))

        with running(create_app(load_snapshot(directory / "gate.yaml")), port) as url:
            yield Setup(url, jwks, upstream, signer)


def wait_for_state(setup: Setup, state: str) -> dict:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        sources = httpx.get(setup.url + "/readyz").json()["key_sources"]
        if sources[0]["state"] == state:
            return sources[0]
        time.sleep(0.05)
    raise AssertionError(f"key source never reached state {state!r}")


def test_trusted_token_passes_then_keys_unavailable(setup: Setup) -> None:
    token = setup.signer.sign(claims_for(setup.jwks.base_url, audience=AUDIENCE))
    readiness = wait_for_state(setup, "fresh")
    before = len(setup.upstream.received)

    accepted = httpx.get(setup.url + "/orders/1", headers={"Authorization": f"Bearer {token}"})

    assert readiness["keys"] == 1
    assert readiness["consecutive_failures"] == 0
    assert accepted.status_code == 200
    assert len(setup.upstream.received) == before + 1
    assert setup.upstream.received[-1].header("x-gate-subject") == ["workload-1"]

    setup.jwks.mode = "error"
    stale = wait_for_state(setup, "stale")
    during_outage = httpx.get(setup.url + "/orders/1", headers={"Authorization": f"Bearer {token}"})
    assert stale["consecutive_failures"] >= 1
    assert during_outage.status_code == 200

    unavailable = wait_for_state(setup, "unavailable")
    after_window = httpx.get(setup.url + "/orders/1", headers={"Authorization": f"Bearer {token}"})
    ready = httpx.get(setup.url + "/readyz")

    assert unavailable["keys"] == 1
    assert after_window.status_code == 401
    assert after_window.json()["reason"] == "keys_unavailable"
    assert 'error="temporarily_unavailable"' in after_window.headers["www-authenticate"]
    assert len(setup.upstream.received) == before + 2
    assert ready.status_code == 200

    setup.jwks.mode = "ok"
    wait_for_state(setup, "fresh")
    recovered = httpx.get(setup.url + "/orders/1", headers={"Authorization": f"Bearer {token}"})
    assert recovered.status_code == 200
