"""A small metrics registry: named counters and gauges with labels.

Modules record through ``METRICS`` and never import a metrics library, so the
exporter (Prometheus text format or another) is chosen in one place. Names
follow Prometheus conventions: ``_total`` for counters, base units in names.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

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


METRICS = MetricsRegistry()
