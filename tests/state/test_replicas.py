"""Two ``gate serve`` processes sharing one real, password-protected redis-server.

One pair of replicas and one Redis serve every test of the module, so each
test uses its own assertion ids, tokens and source addresses. The outage test
kills Redis and starts it again on the same port before it ends.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cryptography.hazmat.primitives import serialization

from gate.keys.generate import generate_private_key, write_private_key
from gate.oauth.app_tokens import generate_app_token
from tests.conftest import AUDIENCE, CLIENT_ID, USERNAME, base_config
from tests.jwks_server import SigningIdentity, new_identity
from tests.redis_server import RedisServer, require_redis_server
from tests.servers import RecordingUpstream, free_port, running

WAIT_LIMIT = 20.0
REDIS_PASSWORD = "redis-password-used-only-in-tests"
ISSUER = "http://gate.test"
TOKEN_PATH = "/application/o/token/"
REVOCATION_PATH = "/application/o/revoke/"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
PKJWT_CLIENT = "billing-service"
MAX_FAILURES_PER_CLIENT_ADDRESS = 4
RATE_LIMIT_WINDOW = 60


def wait_for(url: str, condition: Any, limit: float = WAIT_LIMIT) -> dict[str, Any]:
    """Poll ``url`` until ``condition(status, body)`` is true; return the body, or fail after ``limit`` seconds."""
    deadline = time.monotonic() + limit
    last: tuple[int, Any] | None = None
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=2)
            last = (response.status_code, response.json())
            if condition(*last):
                return last[1]
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    pytest.fail(f"{url} did not reach the expected state within {limit} seconds; last response: {last}")


class GateProcess:
    """One ``gate serve`` in its own process, logging JSON lines to a file."""

    def __init__(self, config_path: Path, port: int, log_path: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        environment = os.environ | {"GATE_TEST_REDIS_PASSWORD": REDIS_PASSWORD}
        command = [sys.executable, "-m", "gate", "serve", "--config", str(config_path), "--port", str(port)]
        command += ["--log-format", "json"]
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment)

    def log_records(self) -> list[dict[str, Any]]:
        records = []
        for line in self.log_path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return records

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


@dataclass
class Cluster:
    """Two replicas, the Redis they share, their upstream and the credentials of the test clients."""

    a: GateProcess
    b: GateProcess
    redis: RedisServer
    upstream: RecordingUpstream
    app_token: str
    client_key: SigningIdentity

    @property
    def replicas(self) -> tuple[GateProcess, GateProcess]:
        return self.a, self.b


@pytest.fixture(scope="module")
def shared_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(require_redis_server(), tmp_path_factory.mktemp("redis"))
    server.extra_arguments = ["--requirepass", REDIS_PASSWORD]
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="module")
def cluster(shared_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    directory = tmp_path_factory.mktemp("replicas")
    write_private_key(generate_private_key("ES256"), directory / "signing-key.pem")
    client_key = new_identity("billing-1")
    public_pem = client_key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (directory / "billing.pub").write_bytes(public_pem)
    app_token = generate_app_token()
    upstream = RecordingUpstream()

    with running(upstream) as upstream_url:
        config = base_config(ISSUER, upstream_url, app_token)
        config["clients"].append(
            {
                "client_id": PKJWT_CLIENT,
                "audience": [AUDIENCE],
                "jwt_assertion": {
                    "private_key_jwt": {"keys": [{"public_key_file": "billing.pub"}], "algorithms": ["ES256"]},
                },
            }
        )
        config["token_endpoint"] = {
            "rate_limit": {
                "window": RATE_LIMIT_WINDOW,
                "max_failures_per_address": 50,
                "max_failures_per_client_address": MAX_FAILURES_PER_CLIENT_ADDRESS,
            }
        }
        config["shared_state"] = {
            "backend": "redis",
            "url": shared_redis.url,
            "password": "${GATE_TEST_REDIS_PASSWORD}",
            "revocation_sync_interval": 0.5,
        }
        config_path = directory / "gate.yaml"
        config_path.write_text(yaml.safe_dump(config))

        processes = [GateProcess(config_path, free_port(), directory / f"gate-{name}.log") for name in "ab"]
        try:
            for process in processes:
                wait_for(process.url + "/readyz", lambda status, _body: status == 200)
            yield Cluster(processes[0], processes[1], shared_redis, upstream, app_token, client_key)
        finally:
            for process in processes:
                process.stop()


def shared_state_of(body: dict[str, Any]) -> dict[str, Any]:
    return body.get("shared_state") or {}


def new_request_id() -> str:
    return f"replica-test-{uuid.uuid4()}"


def new_assertion(cluster: Cluster) -> str:
    """Sign a ``private_key_jwt`` assertion with a fresh ``jti``, valid for one minute."""
    now = int(time.time())
    claims = {
        "iss": PKJWT_CLIENT,
        "sub": PKJWT_CLIENT,
        "aud": ISSUER + TOKEN_PATH,
        "iat": now,
        "exp": now + 60,
        "jti": str(uuid.uuid4()),
    }
    return cluster.client_key.sign(claims)


def post_assertion(replica: GateProcess, assertion: str, request_id: str | None = None) -> httpx.Response:
    form = {
        "grant_type": "client_credentials",
        "client_id": PKJWT_CLIENT,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
    }
    return httpx.post(replica.url + TOKEN_PATH, data=form, headers={"x-request-id": request_id or new_request_id()})


def robot_form(app_token: str) -> dict[str, str]:
    return {"grant_type": "client_credentials", "client_id": CLIENT_ID, "username": USERNAME, "password": app_token}


def robot_token(cluster: Cluster, replica: GateProcess) -> str:
    response = httpx.post(replica.url + TOKEN_PATH, data=robot_form(cluster.app_token))
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def revoke(cluster: Cluster, replica: GateProcess, token: str) -> httpx.Response:
    return httpx.post(replica.url + REVOCATION_PATH, data={"token": token, **robot_form(cluster.app_token)})


def call_orders(replica: GateProcess, token: str) -> tuple[httpx.Response, bytes]:
    """Send one proxied request under a path of its own; return the response and that path."""
    path = f"/orders/{uuid.uuid4()}"
    response = httpx.get(replica.url + path, headers={"Authorization": f"Bearer {token}"})
    return response, path.encode()


def upstream_paths(cluster: Cluster) -> list[bytes]:
    return [received.raw_path for received in cluster.upstream.received]


def decision_reasons(replica: GateProcess, request_id: str) -> list[str]:
    return [record["reason_id"] for record in replica.log_records() if record.get("request_id") == request_id]


def wait_until_rejected(replica: GateProcess, token: str) -> tuple[httpx.Response, bytes]:
    """Call the proxy of ``replica`` with ``token`` until it returns 401; return that response and its path."""
    deadline = time.monotonic() + WAIT_LIMIT
    while True:
        response, path = call_orders(replica, token)
        if response.status_code == 401 or time.monotonic() > deadline:
            return response, path
        time.sleep(0.05)


def test_replicas_report_redis_backend(cluster: Cluster) -> None:
    for replica in cluster.replicas:
        body = wait_for(replica.url + "/readyz", lambda status, _body: status == 200)

        assert body["status"] == "ready"
        assert shared_state_of(body)["backend"] == "redis"
        assert shared_state_of(body)["ready"] is True
        assert shared_state_of(body)["available"] is True


def test_assertion_replayed_at_other_replica(cluster: Cluster) -> None:
    assertion = new_assertion(cluster)
    replay_id = new_request_id()

    first = post_assertion(cluster.a, assertion)
    replay = post_assertion(cluster.b, assertion, replay_id)

    assert first.status_code == 200, first.text
    assert "access_token" in first.json()
    assert replay.status_code == 401
    assert replay.json()["error"] == "invalid_client"
    assert "access_token" not in replay.json()
    assert decision_reasons(cluster.b, replay_id) == ["assertion_replayed"]


def test_revocation_reaches_other_replica(cluster: Cluster) -> None:
    token = robot_token(cluster, cluster.a)
    accepted, _ = call_orders(cluster.b, token)  # B has now verified and cached the token
    assert accepted.status_code == 200

    revoked = revoke(cluster, cluster.a, token)
    rejected, rejected_path = wait_until_rejected(cluster.b, token)

    assert revoked.status_code == 200
    assert rejected.status_code == 401
    assert rejected.json()["reason"] == "token_revoked"
    assert 'error="invalid_token"' in rejected.headers["www-authenticate"]
    assert rejected_path not in upstream_paths(cluster)


def test_failure_limit_counts_across_replicas(cluster: Cluster) -> None:
    wrong = robot_form("wrong-app-token-used-only-in-tests")
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(transport=transport) as attacker, httpx.Client() as bystander:
        failures = [
            attacker.post(cluster.replicas[index % 2].url + TOKEN_PATH, data=wrong)
            for index in range(MAX_FAILURES_PER_CLIENT_ADDRESS)
        ]
        blocked = [
            attacker.post(replica.url + TOKEN_PATH, data=robot_form(cluster.app_token)) for replica in cluster.replicas
        ]
        elsewhere = bystander.post(cluster.b.url + TOKEN_PATH, data=robot_form(cluster.app_token))

    assert [response.json()["error"] for response in failures] == ["invalid_grant"] * MAX_FAILURES_PER_CLIENT_ADDRESS
    for response in blocked:
        assert response.status_code == 429
        assert response.json()["error"] == "temporarily_unavailable"
        assert 0 < int(response.headers["retry-after"]) <= RATE_LIMIT_WINDOW
        assert "access_token" not in response.json()
    assert elsewhere.status_code == 200


def test_redis_outage_and_recovery(cluster: Cluster) -> None:
    valid = robot_token(cluster, cluster.a)
    revoked = robot_token(cluster, cluster.a)
    assert revoke(cluster, cluster.a, revoked).status_code == 200
    for replica in cluster.replicas:
        assert wait_until_rejected(replica, revoked)[0].status_code == 401
    outages_before = [
        shared_state_of(httpx.get(replica.url + "/readyz").json())["outages"] for replica in cluster.replicas
    ]

    cluster.redis.kill()
    for replica, outages in zip(cluster.replicas, outages_before, strict=True):
        body = wait_for(replica.url + "/readyz", lambda _status, body: shared_state_of(body).get("available") is False)
        assert body["status"] == "ready"
        assert shared_state_of(body)["outages"] == outages + 1

    for replica in cluster.replicas:
        request_id = new_request_id()
        unavailable = post_assertion(replica, new_assertion(cluster), request_id)
        assert unavailable.status_code == 503
        assert unavailable.json()["error"] == "temporarily_unavailable"
        assert decision_reasons(replica, request_id) == ["replay_store_unavailable"]

        still_revoked, revoked_path = call_orders(replica, revoked)
        assert still_revoked.status_code == 401
        assert still_revoked.json()["reason"] == "token_revoked"
        assert revoked_path not in upstream_paths(cluster)

        passing, passing_path = call_orders(replica, valid)
        assert passing.status_code == 200
        assert passing_path in upstream_paths(cluster)

    # rate_limit: local counts in each replica's memory, so the limit applies per replica.
    wrong = robot_form("wrong-app-token-used-only-in-tests")
    with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.3")) as attacker:
        failures = [
            attacker.post(cluster.a.url + TOKEN_PATH, data=wrong) for _ in range(MAX_FAILURES_PER_CLIENT_ADDRESS)
        ]
        blocked_at_a = attacker.post(cluster.a.url + TOKEN_PATH, data=robot_form(cluster.app_token))
        counted_apart_at_b = attacker.post(cluster.b.url + TOKEN_PATH, data=robot_form(cluster.app_token))
    assert [response.status_code for response in failures] == [400] * MAX_FAILURES_PER_CLIENT_ADDRESS
    assert blocked_at_a.status_code == 429
    assert int(blocked_at_a.headers["retry-after"]) > 0
    assert counted_apart_at_b.status_code == 200

    cluster.redis.start()
    for replica in cluster.replicas:
        body = wait_for(replica.url + "/readyz", lambda _status, body: shared_state_of(body).get("available") is True)
        assert body["status"] == "ready"

    assertion = new_assertion(cluster)
    replay_id = new_request_id()
    recovered = post_assertion(cluster.a, assertion)
    replay = post_assertion(cluster.b, assertion, replay_id)
    assert recovered.status_code == 200, recovered.text
    assert replay.status_code == 401
    assert decision_reasons(cluster.b, replay_id) == ["assertion_replayed"]
    for replica in cluster.replicas:
        after_restart, _ = call_orders(replica, revoked)
        assert after_restart.status_code == 401  # the restarted Redis is empty; the local lists still hold it

    for replica in cluster.replicas:
        log = replica.log_path.read_text()
        assert replica.process.poll() is None
        assert "Redis is unreachable" in log
        assert "Redis is reachable again" in log
        assert REDIS_PASSWORD not in log
