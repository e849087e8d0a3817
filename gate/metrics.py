"""Prometheus metrics: one registry and the named metrics other modules update.

Call sites use the module-level objects, for example::

    metrics.proxy_requests.labels(route_id, "denied", reason_id).inc()

``labels()`` here returns a cached child, so a request after the first with the
same label values costs one dict lookup instead of prometheus_client's label
validation under a lock. Label values must come from a bounded set (route ids,
client ids and issuers from the config, reason ids from the code), never from
request input such as an unknown ``client_id``, or the number of series grows
without limit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    gc_collector,
    generate_latest,
    platform_collector,
    process_collector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.metrics import MetricWrapperBase
from starlette.requests import Request
from starlette.responses import Response

from gate.request_metrics import LoopCounter, LoopHistogram

__all__ = [
    "METRICS",
    "REGISTRY",
    "CachedLabels",
    "MetricsRegistry",
    "config_last_reload_successful",
    "config_reloads",
    "metrics_endpoint",
    "observe_proxy_request",
    "observe_token_request",
    "observe_upstream",
    "proxy_gate_seconds",
    "proxy_requests",
    "token_requests",
    "token_seconds",
    "upstream_seconds",
    "verified_token_cache",
]

MAX_CACHED_CHILDREN = 10_000
"""Label-value tuples cached per metric; past this, ``labels()`` stops caching."""

# Buckets in seconds. gate's own buckets reach down to 50 microseconds so that
# checks served from the verified-token cache still fall into distinct buckets.
# Upstream buckets span 1 millisecond to 60 seconds, the default read timeout.
GATE_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
UPSTREAM_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

UPSTREAM_SECONDS_SCOPE_KEY = "gate.upstream_seconds"
"""ASGI scope key where the forwarder leaves the time the upstream exchange took."""

REGISTRY = CollectorRegistry(auto_describe=True)
process_collector.ProcessCollector(registry=REGISTRY)
platform_collector.PlatformCollector(registry=REGISTRY)
gc_collector.GCCollector(registry=REGISTRY)

MetricT = TypeVar("MetricT", bound=MetricWrapperBase)


class CachedLabels(Generic[MetricT]):
    """A labelled metric whose ``labels()`` children are cached by label values."""

    def __init__(self, metric: MetricT) -> None:
        self.metric = metric
        self._children: dict[tuple[str, ...], MetricT] = {}
        self._lock = threading.Lock()

    def labels(self, *values: str) -> MetricT:
        child = self._children.get(values)
        if child is not None:
            return child

        child = self.metric.labels(*values)
        with self._lock:
            if len(self._children) < MAX_CACHED_CHILDREN:
                self._children[values] = child
        return child


# The request path's metrics: updated from the event loop's thread only (see gate.request_metrics).
proxy_requests = LoopCounter(
    "gate_proxy_requests",
    "Proxied requests by route, decision (granted or denied) and reason id.",
    ["route", "decision", "reason"],
    REGISTRY,
)
proxy_gate_seconds = LoopHistogram(
    "gate_proxy_gate_seconds",
    "Time gate spent on a proxied request, not counting the upstream exchange.",
    ["route"],
    GATE_BUCKETS,
    REGISTRY,
)
upstream_seconds = LoopHistogram(
    "gate_upstream_seconds",
    "Time from sending a request upstream to the last byte of its response.",
    ["upstream"],
    UPSTREAM_BUCKETS,
    REGISTRY,
)
token_requests = LoopCounter(
    "gate_token_requests",
    "Token endpoint requests by client id, credential form, outcome (granted or denied) and reason id.",
    ["client", "form", "outcome", "reason"],
    REGISTRY,
)
token_seconds = LoopHistogram(
    "gate_token_seconds", "Time gate spent on a token endpoint request.", [], GATE_BUCKETS, REGISTRY
)
verified_token_cache = LoopCounter(
    "gate_verified_token_cache", "Lookups in the verified-token cache by result (hit or miss).", ["result"], REGISTRY
)
config_reloads = CachedLabels(
    Counter(
        "gate_config_reloads",
        "Config reload attempts by result (success or failure).",
        ["result"],
        registry=REGISTRY,
    )
)
config_last_reload_successful = Gauge(
    "gate_config_last_reload_successful",
    "1 if the last config reload succeeded (or none has run yet), 0 if it failed.",
    registry=REGISTRY,
)
config_last_reload_successful.set(1)

for _result in ("hit", "miss"):
    verified_token_cache.labels(_result)
for _result in ("success", "failure"):
    config_reloads.labels(_result)


LabelSet = tuple[tuple[str, str], ...]


def _label_set(labels: Mapping[str, str]) -> LabelSet:
    return tuple(sorted(labels.items()))


class MetricsRegistry:
    """Counters and gauges in memory, keyed by name and label set."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, dict[LabelSet, float]] = {}
        self._gauges: dict[str, dict[LabelSet, float]] = {}
        self.help: dict[str, str] = {}

    def describe(self, name: str, help_text: str) -> None:
        self.help[name] = help_text

    def inc(self, name: str, labels: Mapping[str, str], amount: float = 1.0) -> None:
        """Add ``amount`` to the counter ``name`` with ``labels``."""
        key = _label_set(labels)
        with self._lock:
            series = self._counters.setdefault(name, {})
            series[key] = series.get(key, 0.0) + amount

    def set(self, name: str, labels: Mapping[str, str], value: float) -> None:
        """Set the gauge ``name`` with ``labels`` to ``value``."""
        with self._lock:
            self._gauges.setdefault(name, {})[_label_set(labels)] = value

    def remove(self, name: str, labels: Mapping[str, str]) -> None:
        """Drop one gauge series, for example of a key source that a reload removed."""
        with self._lock:
            self._gauges.get(name, {}).pop(_label_set(labels), None)

    def value(self, name: str, labels: Mapping[str, str]) -> float | None:
        """Return the current value of one series, or ``None`` if it was never recorded."""
        key = _label_set(labels)
        with self._lock:
            for family in (self._counters, self._gauges):
                if key in family.get(name, {}):
                    return family[name][key]
        return None

    def collect(self) -> dict[str, dict[LabelSet, float]]:
        """Return a copy of every series, counters and gauges together."""
        with self._lock:
            merged = {name: dict(series) for name, series in self._counters.items()}
            merged.update({name: dict(series) for name, series in self._gauges.items()})
        return merged


# Key sources record into this in-memory registry, which tests can read back
# with ``value()``; ``_RegistryCollector`` exports it at ``/metrics``.
KEY_METRICS_HELP = {
    "gate_key_fetches_total": "Fetches of remote key sets by issuer, source and outcome (success or failure).",
    "gate_key_stale_served_total": "Times a key set past its TTL kept serving because a refresh failed.",
    "gate_key_set_expired_total": "Times a key set passed its maximum staleness and stopped serving.",
    "gate_key_skipped_total": "Keys skipped at ingest (weak, private, unknown type or meant for encryption).",
    "gate_key_set_keys": "Keys in the last good key set of a source.",
    "gate_key_set_age_seconds": "Age of the key set a source serves, in seconds.",
}


class _RegistryCollector:
    """Export ``METRICS`` through prometheus_client, counters and gauges by name suffix."""

    def __init__(self, registry: MetricsRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        series_by_name = self.registry.collect()
        for name in sorted(set(series_by_name) | set(self.registry.help)):
            series = series_by_name.get(name, {})
            label_names = [label for label, _ in next(iter(series))] if series else []
            help_text = self.registry.help.get(name, name)
            family: Metric
            if name.endswith("_total"):
                family = CounterMetricFamily(name.removesuffix("_total"), help_text, labels=label_names)
            else:
                family = GaugeMetricFamily(name, help_text, labels=label_names)
            for label_set, value in series.items():
                family.add_metric([value for _, value in label_set], value)
            yield family


METRICS = MetricsRegistry()
for _name, _help in KEY_METRICS_HELP.items():
    METRICS.describe(_name, _help)
REGISTRY.register(_RegistryCollector(METRICS))  # type: ignore[arg-type]


def observe_upstream(scope: dict, url: str, started: float) -> None:
    """Record an upstream exchange that began at ``perf_counter()`` time ``started``.

    The series is labelled with the origin of ``url`` (scheme, host and port),
    which comes from the config. The elapsed time is also left in ``scope`` so
    that ``observe_proxy_request`` can subtract it from the request's total.
    """
    seconds = time.perf_counter() - started
    upstream_seconds.labels(_origin(url)).observe(seconds)
    scope[UPSTREAM_SECONDS_SCOPE_KEY] = seconds


def observe_proxy_request(scope: dict, route_id: str | None, granted: bool, reason_id: str, started: float) -> None:
    """Record a proxied request's decision and the time gate itself spent on it."""
    route = route_id or "none"
    proxy_requests.labels(route, "granted" if granted else "denied", reason_id).inc()

    # A request whose upstream failed has no measured upstream time to subtract,
    # so its total, which includes the wait for a timeout, is left out.
    if reason_id.startswith("upstream_"):
        return

    own_seconds = time.perf_counter() - started - scope.get(UPSTREAM_SECONDS_SCOPE_KEY, 0.0)
    proxy_gate_seconds.labels(route).observe(max(own_seconds, 0.0))


def observe_token_request(client_id: str | None, form: str, granted: bool, reason_id: str, started: float) -> None:
    """Record a token endpoint request; ``client_id`` is None unless the client is configured."""
    token_requests.labels(client_id or "unknown", form, "granted" if granted else "denied", reason_id).inc()
    token_seconds.observe(time.perf_counter() - started)


def _origin(url: str) -> str:
    path_start = url.find("/", url.find("//") + 2)
    return url if path_start == -1 else url[:path_start]


async def metrics_endpoint(request: Request) -> Response:
    """Starlette endpoint with the Prometheus text exposition of ``REGISTRY``."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
