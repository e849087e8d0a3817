"""wrk runs in rounds: each round measures every target once, back to back, so their ratios share a moment.

On a shared machine the same scenario measured a minute apart can differ by
10 to 20 %. Measuring the targets of a ratio in alternation, and taking the
median of the per-round ratios, keeps that drift out of the ratio.
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import subprocess
import time
from pathlib import Path

import profiling
from load import Server, WrkResult, busy_cpu_seconds, cpu_seconds, run_wrk
from report import Results, Row

PROFILED = frozenset({"protected", "cold", "token"})


@dataclasses.dataclass
class Target:
    """A wrk target: the URL, headers and script of one run, and the server whose CPU time it reads."""

    key: str
    label: str
    url: str
    server: Server
    headers: tuple[str, ...] = ()
    script: Path | None = None
    connections: int | None = None  # None: --connections


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class RoundRunner:
    """Run wrk against targets in rounds and store each round and each target's fastest run in ``results``."""

    def __init__(self, arguments: argparse.Namespace, results: Results) -> None:
        self.arguments = arguments
        self.results = results
        self.profile_summaries: dict[str, str] = {}

    def measure(
        self,
        targets: list[Target],
        upstream: Server | None,
        gate: Server | None,
        *,
        warmup: bool = True,
        repeat: int | None = None,
    ) -> list[Row]:
        """Warm up each target, then run wrk on each in turn, one run per target and round.

        ``upstream`` is the server behind the proxies, whose CPU time each row
        also reads. ``gate`` is the process that ``--profile`` samples. Every
        round goes to ``results.rounds``, and each target's run with the highest
        rate (the least disturbed) to ``results.rows``. Return those fastest runs.
        """
        if warmup and self.arguments.warmup > 0:
            for target in targets:
                self.run_wrk(target, self.arguments.warmup)

        runs: dict[str, list[Row]] = {target.key: [] for target in targets}
        for round_index in range(repeat or self.arguments.repeat):
            measured: dict[str, Row] = {}
            for target in targets:
                profiler = self.start_profiler(target.key, gate) if round_index == 0 else None
                row = self.measure_once(target, upstream)
                if profiler is not None:
                    self.finish_profiler(profiler)
                    row.label += " [profiled]"
                    row.profiled = True
                runs[target.key].append(row)
                measured[target.key] = row
            self.results.rounds.append(measured)

        for key, rows in runs.items():
            self.results.rows[key] = max(rows, key=lambda row: row.wrk.requests_per_second)
        return [self.results.rows[target.key] for target in targets]

    def run_wrk(self, target: Target, seconds: float) -> WrkResult:
        connections = target.connections or self.arguments.connections
        return run_wrk(
            target.url, seconds, connections, self.arguments.wrk_cpu, script=target.script, headers=target.headers
        )

    def measure_once(self, target: Target, upstream: Server | None) -> Row:
        """Run wrk once and read the CPU time of the servers and of the whole machine around it."""
        server = target.server
        if upstream is server:
            upstream = None
        server_before = cpu_seconds(server.pid)
        upstream_before = cpu_seconds(upstream.pid) if upstream else 0.0
        own_before, busy_before, started = children_cpu_seconds(), busy_cpu_seconds(), time.monotonic()

        result = self.run_wrk(target, self.arguments.duration)

        elapsed = time.monotonic() - started
        server_used = cpu_seconds(server.pid) - server_before
        upstream_used = cpu_seconds(upstream.pid) - upstream_before if upstream else 0.0
        own_used = server_used + upstream_used + children_cpu_seconds() - own_before
        requests = max(result.requests, 1)
        return Row(
            label=target.label,
            wrk=result,
            connections=target.connections or self.arguments.connections,
            server_cpu_us=1e6 * server_used / requests,
            upstream_cpu_us=1e6 * upstream_used / requests if upstream else None,
            other_cpu_cores=max(0.0, busy_cpu_seconds() - busy_before - own_used) / elapsed,
        )

    def start_profiler(self, key: str, gate: Server | None) -> tuple[str, Path, subprocess.Popen[bytes]] | None:
        """Start py-spy on gate for the first measured run of a profiled scenario, if ``--profile`` was given."""
        if key not in PROFILED or self.arguments.profile is None or gate is None:
            return None
        if profiling.py_spy_path() is None:
            self.profile_summaries[key] = "py-spy not found on PATH; install it with pip install py-spy"
            return None
        self.arguments.profile.mkdir(parents=True, exist_ok=True)
        output = self.arguments.profile / f"{key}.txt"
        process = profiling.start_profiler(gate.pid, output, self.arguments.duration, self.arguments.wrk_cpu)
        return key, output, process

    def finish_profiler(self, profiler: tuple[str, Path, subprocess.Popen[bytes]]) -> None:
        key, output, process = profiler
        _, errors = process.communicate(timeout=self.arguments.duration + 30)
        if process.returncode != 0:
            self.profile_summaries[key] = f"py-spy failed: {errors.decode(errors='replace').strip()}"
        else:
            self.profile_summaries[key] = f"{output}\n{profiling.summarise(output)}"
