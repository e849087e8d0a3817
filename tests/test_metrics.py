"""Prometheus metrics scraped from a running gate, and the admin listener."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from gate.app import create_app
from gate.config.compile import load_snapshot
from gate.keys.generate import generate_private_key, write_private_key
from gate.oauth.app_tokens import generate_app_token
from gate.request_metrics import LoopCounter, LoopHistogram
from tests.conftest import CLIENT_ID, USERNAME, GateSetup, base_config
from tests.servers import RecordingUpstream, free_port, running

FAMILIES = (
    "gate_proxy_requests",
    "gate_proxy_gate_seconds",
    "gate_upstream_seconds",
    "gate_token_requests",
    "gate_token_seconds",
    "gate_key_fetches",
    "gate_key_set_keys",
    "gate_verified_token_cache",
    "gate_config_reloads",
    "gate_config_last_reload_successful",
    "process_cpu_seconds",
)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> tuple[set[str], Samples]:
    response = httpx.get(url + "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")

    families = list(text_string_to_metric_families(response.text))
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in families
        for sample in family.samples
    }
    return {family.name for family in families}, samples


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def token_form(app_token: str) -> dict[str, str]:
    return {"grant_type": "client_credentials", "client_id": CLIENT_ID, "username": USERNAME, "password": app_token}


def test_metrics_after_traffic(gate: GateSetup) -> None:
    _, before = scrape(gate.url)

    token = httpx.post(gate.token_url, data=token_form(gate.app_token)).json()["access_token"]
    httpx.post(gate.token_url, data=token_form("wrong-app-token"))
    httpx.post(gate.token_url, data={**token_form(gate.app_token), "client_id": "no-such-client"})
    assert httpx.get(gate.url + "/orders/1", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert httpx.get(gate.url + "/orders/1").status_code == 401
    assert httpx.get(gate.url + "/public/a").status_code == 200
    assert httpx.get(gate.url + "/nowhere").status_code == 404
    families, after = scrape(gate.url)

    assert set(FAMILIES) <= families
    assert moved(before, after, "gate_token_requests_total", client=CLIENT_ID, form="service_account",
                 outcome="granted", reason="granted_client_credentials") == 1  # fmt: skip
    assert moved(before, after, "gate_token_requests_total", client=CLIENT_ID, form="service_account",
                 outcome="denied", reason="bad_app_token") == 1  # fmt: skip
    assert moved(before, after, "gate_token_requests_total", client="unknown", form="service_account",
                 outcome="denied", reason="unknown_client") == 1  # fmt: skip
    assert moved(before, after, "gate_token_seconds_count") == 3
    assert moved(before, after, "gate_proxy_requests_total", route="orders", decision="granted",
                 reason="token_accepted") == 1  # fmt: skip
    assert moved(before, after, "gate_proxy_requests_total", route="orders", decision="denied",
                 reason="missing_token") == 1  # fmt: skip
    assert moved(before, after, "gate_proxy_requests_total", route="public", decision="granted",
                 reason="public_route") == 1  # fmt: skip
    assert moved(before, after, "gate_proxy_requests_total", route="none", decision="denied", reason="no_route") == 1
    assert moved(before, after, "gate_proxy_gate_seconds_count", route="orders") == 2
    assert moved(before, after, "gate_upstream_seconds_count", upstream=gate.upstream_url) == 2


def test_verified_token_cache_counts(gate: GateSetup) -> None:
    token = httpx.post(gate.token_url, data=token_form(gate.app_token)).json()["access_token"]
    _, before = scrape(gate.url)

    for _ in range(3):
        assert httpx.get(gate.url + "/orders/1", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    _, after = scrape(gate.url)

    assert moved(before, after, "gate_verified_token_cache_total", result="miss") == 1
    assert moved(before, after, "gate_verified_token_cache_total", result="hit") == 2


def test_metrics_label_children_are_cached() -> None:
    from gate import metrics

    first = metrics.proxy_requests.labels("cache-test", "denied", "no_route")
    second = metrics.proxy_requests.labels("cache-test", "denied", "no_route")

    assert first is second


@pytest.fixture
def admin_gate(tmp_path: Path):
    write_private_key(generate_private_key("ES256"), tmp_path / "signing-key.pem")
    port, admin_port = free_port(), free_port()
    with running(RecordingUpstream()) as upstream_url:
        config = base_config(f"http://127.0.0.1:{port}", upstream_url, generate_app_token())
        config["admin_listen"] = {"host": "127.0.0.1", "port": admin_port}
        config["routes"].append({"id": "all", "path_prefix": "/", "upstream": upstream_url, "auth": {"mode": "public"}})
        (tmp_path / "gate.yaml").write_text(yaml.safe_dump(config))
        with running(create_app(load_snapshot(tmp_path / "gate.yaml")), port) as url:
            yield url, f"http://127.0.0.1:{admin_port}"


def test_admin_listener_serves_metrics(admin_gate: tuple[str, str]) -> None:
    url, admin_url = admin_gate

    families, _ = scrape(admin_url)
    on_main = httpx.get(url + "/metrics")

    assert "gate_proxy_requests" in families
    assert on_main.status_code == 200
    assert on_main.json() == {"upstream": "ok", "path": "/metrics"}


def test_histogram_buckets_are_cumulative_and_inclusive() -> None:
    registry = CollectorRegistry()
    histogram = LoopHistogram("demo_seconds", "A test histogram.", ["route"], (0.001, 0.01), registry)

    for value in (0.0005, 0.001, 0.002, 5.0):
        histogram.labels("a").observe(value)

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"route": "a", **labels})

    assert sample("demo_seconds_bucket", le="0.001") == 2  # 0.001 itself is in the "le 0.001" bucket
    assert sample("demo_seconds_bucket", le="0.01") == 3
    assert sample("demo_seconds_bucket", le="+Inf") == 4
    assert sample("demo_seconds_count") == 4
    assert sample("demo_seconds_sum") == pytest.approx(5.0035)


def test_unlabelled_histogram_exported_before_use() -> None:
    registry = CollectorRegistry()
    LoopHistogram("idle_seconds", "A test histogram.", [], (0.1,), registry)

    assert registry.get_sample_value("idle_seconds_count") == 0


def test_counter_series_by_label_values() -> None:
    registry = CollectorRegistry()
    counter = LoopCounter("demo_requests", "A test counter.", ["route", "decision"], registry)

    counter.labels("a", "granted").inc()
    counter.labels("a", "granted").inc(2)
    counter.labels("b", "denied").inc()

    assert registry.get_sample_value("demo_requests_total", {"route": "a", "decision": "granted"}) == 3
    assert registry.get_sample_value("demo_requests_total", {"route": "b", "decision": "denied"}) == 1
    with pytest.raises(ValueError, match="takes labels"):
        counter.labels("only-one")
