"""Rate limiting of failed client authentication, per address and per client from an address.

gate listens on 127.0.0.1; the tests connect to it from other loopback source
addresses (127.0.0.2 and up) to act as different hosts.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.oauth.conftest import (
    ACCOUNT_CLIENT,
    POST_CLIENT,
    POST_SECRET,
    SECRET_A,
    SECRET_CLIENT,
    Decisions,
    OAuthGate,
    start_gate,
)

LIMITS = {"window": 60, "max_failures_per_address": 6, "max_failures_per_client_address": 3}


@pytest.fixture(scope="module")
def limited_gate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OAuthGate]:
    yield from start_gate(tmp_path_factory.mktemp("limited-gate"), LIMITS)


def from_address(address: str) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address))


def secret_request(client_id: str, secret: str) -> dict[str, str]:
    return {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}


def test_client_blocked_only_from_failing_address(limited_gate: OAuthGate, decisions: Decisions) -> None:
    with from_address("127.0.0.2") as attacker, from_address("127.0.0.3") as owner:
        failures = [
            attacker.post(limited_gate.token_url, data=secret_request(SECRET_CLIENT, "guess")) for _ in range(3)
        ]
        blocked = attacker.post(limited_gate.token_url, data=secret_request(SECRET_CLIENT, SECRET_A))
        other_client = attacker.post(limited_gate.token_url, data=secret_request(POST_CLIENT, POST_SECRET))
        own_address = owner.post(limited_gate.token_url, data=secret_request(SECRET_CLIENT, SECRET_A))

    assert [response.status_code for response in failures] == [401, 401, 401]
    assert blocked.status_code == 429
    assert blocked.headers["retry-after"] == "60"
    assert blocked.headers["cache-control"] == "no-store"
    assert blocked.json()["error"] == "temporarily_unavailable"
    assert other_client.status_code == 200
    assert own_address.status_code == 200
    assert [record.reason_id for record in decisions.records].count("rate_limited") == 1


def test_address_blocked_for_every_client(limited_gate: OAuthGate) -> None:
    with from_address("127.0.0.4") as attacker, from_address("127.0.0.5") as bystander:
        failures = [
            attacker.post(limited_gate.token_url, data=secret_request(f"made-up-{index}", "guess"))
            for index in range(6)
        ]
        blocked = attacker.post(limited_gate.token_url, data=secret_request(POST_CLIENT, POST_SECRET))
        elsewhere = bystander.post(limited_gate.token_url, data=secret_request(POST_CLIENT, POST_SECRET))

    assert {response.status_code for response in failures} == {401}
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) > 0
    assert elsewhere.status_code == 200


def test_successes_do_not_count(limited_gate: OAuthGate) -> None:
    with from_address("127.0.0.6") as client:
        responses = [
            client.post(limited_gate.token_url, data=secret_request(POST_CLIENT, POST_SECRET)) for _ in range(8)
        ]

    assert {response.status_code for response in responses} == {200}


def test_introspection_failures_count_too(limited_gate: OAuthGate) -> None:
    with from_address("127.0.0.7") as attacker:
        data = {"token": "x", "client_id": SECRET_CLIENT, "client_secret": "guess"}
        failures = [attacker.post(limited_gate.introspection_url, data=data) for _ in range(3)]
        blocked = attacker.post(limited_gate.token_url, data=secret_request(SECRET_CLIENT, SECRET_A))

    assert {response.status_code for response in failures} == {401}
    assert blocked.status_code == 429


def test_probing_client_forms_is_limited(limited_gate: OAuthGate) -> None:
    with from_address("127.0.0.8") as prober:
        form = {"grant_type": "client_credentials"}
        probes = [prober.post(limited_gate.token_url, data=form, auth=(ACCOUNT_CLIENT, "x")) for _ in range(3)]
        blocked = prober.post(limited_gate.token_url, data=form, auth=(ACCOUNT_CLIENT, "x"))

    assert [response.json()["error"] for response in probes] == ["unauthorized_client"] * 3
    assert "it accepts" not in probes[0].json()["error_description"]
    assert blocked.status_code == 429
