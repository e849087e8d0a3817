"""The scenarios of bench/run.py: which servers each starts, what wrk sends, what is read from /proc."""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import math
import resource
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import fixtures
import inprocess
import profiling
from load import (
    HOST,
    ProcessGroup,
    Server,
    busy_cpu_seconds,
    cpu_seconds,
    free_port,
    memory_kib,
    run_wrk,
    wait_until_serving,
)
from report import MIB, Memory, Results, Row

BENCH_DIR = Path(__file__).resolve().parent
PACKAGES = ("gate", "uvicorn", "uvloop", "httptools", "starlette", "aiohttp", "PyJWT", "cryptography")
# The cold run's token count assumes this rate when no warm rate was measured before it.
# gate served 3,000 to 4,000 req/s on the machine of bench/README.md.
COLD_RATE_GUESS = 6000.0
PROFILED = frozenset({"protected", "cold", "token"})
GATE_SCENARIOS = frozenset({"public", "protected", "token", "cold", "latency", "memory", "rss"})


def package_versions() -> str:
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{name} not installed")
    return ", ".join(versions)


def tool_versions() -> str:
    # wrk 4.1 prints its version and exits 1; nginx -v prints to stderr.
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False).stdout.splitlines()[0]
    nginx = "nginx not installed"
    if shutil.which("nginx"):
        nginx = subprocess.run(["nginx", "-v"], capture_output=True, text=True, check=False).stderr.strip()
    return f"{wrk.split(' [')[0].strip()}; {nginx}"


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Bench:
    """Start the servers a scenario needs, run it, and store what it measured in ``results``."""

    def __init__(self, arguments: argparse.Namespace, directory: Path, results: Results) -> None:
        self.arguments = arguments
        self.directory = directory
        self.results = results
        self.group = ProcessGroup(directory, arguments.server_cpu)
        self.upstream: Server | None = None
        self.gate: Server | None = None
        self.files: fixtures.GateFiles | None = None
        self.token = ""
        self.failures: list[str] = []
        self.profile_summaries: dict[str, str] = {}

    def run(self, names: list[str]) -> None:
        """Run each scenario; a failing one is reported and the next one still runs."""
        for name in names:
            print(f"running {name} ...", flush=True)
            try:
                if name in GATE_SCENARIOS:
                    self.ensure_gate()
                getattr(self, "run_" + name)()
            except (RuntimeError, ValueError, OSError, subprocess.SubprocessError, AssertionError) as error:
                traceback.print_exc()
                self.failures.append(name)
                self.results.skipped[name] = f"failed: {error!r}"

    def stop(self) -> None:
        self.group.stop_all()

    # Servers ---------------------------------------------------------------

    def uvicorn(self, name: str, app: str, env: dict[str, str] | None = None, factory: bool = False) -> Server:
        loop = self.arguments.loop
        if loop == "auto":
            loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
        http = self.arguments.http
        if http == "auto":
            http = "httptools" if importlib.util.find_spec("httptools") else "h11"
        port = free_port()
        command = [
            sys.executable, "-m", "uvicorn", app, "--app-dir", str(BENCH_DIR), "--host", HOST, "--port", str(port),
            "--loop", loop, "--http", http, "--lifespan", "on", "--no-access-log", "--log-level", "warning",
            "--no-server-header", "--no-date-header", *(["--factory"] if factory else []),
        ]  # fmt: skip
        server = self.group.start(name, command, port, env)
        wait_until_serving(server, "/small")
        return server

    def ensure_upstream(self) -> Server:
        if self.upstream is None:
            if self.arguments.upstream == "demo":
                self.upstream = self.uvicorn("upstream", "gate.demo:demo_upstream_app", factory=True)
            else:
                self.upstream = self.uvicorn("upstream", "apps:upstream_app")
        return self.upstream

    def ensure_gate(self) -> None:
        """Start gate with ``gate serve --config`` and fetch one token from its token endpoint."""
        if self.gate is not None:
            return
        upstream = self.ensure_upstream()
        port = free_port()
        self.files = fixtures.write_gate_files(self.directory, port, upstream.url, self.arguments.engine)
        command = fixtures.gate_command(
            "serve", "--config", str(self.files.config_path), "--log-level", self.arguments.gate_log_level,
            "--log-format", "json",
        )  # fmt: skip
        self.gate = self.group.start("gate", command, port)
        wait_until_serving(self.gate, "/readyz")
        self.token = fixtures.fetch_token(self.gate.url, self.files)

    @property
    def auth_header(self) -> tuple[str, ...]:
        return (f"Authorization: Bearer {self.token}",)

    # Measuring -------------------------------------------------------------

    def measure(
        self,
        key: str,
        label: str,
        url: str,
        server: Server,
        *,
        connections: int | None = None,
        script: Path | None = None,
        headers: tuple[str, ...] = (),
        warmup: bool = True,
        repeat: int | None = None,
    ) -> Row:
        """Warm up, run wrk ``--repeat`` times and keep the run with the highest rate (the least disturbed)."""
        connections = connections or self.arguments.connections
        options: dict[str, Any] = {"script": script, "headers": headers}
        if warmup and self.arguments.warmup > 0:
            run_wrk(url, self.arguments.warmup, connections, self.arguments.wrk_cpu, **options)

        rows = []
        for attempt in range(repeat or self.arguments.repeat):
            profiler = self.start_profiler(key) if attempt == 0 else None
            row = self.measure_once(label, url, server, connections, options)
            if profiler is not None:
                self.finish_profiler(profiler)
                row.label += " [profiled]"
            rows.append(row)

        best = max(rows, key=lambda row: row.wrk.requests_per_second)
        self.results.rows[key] = best
        return best

    def measure_once(self, label: str, url: str, server: Server, connections: int, options: dict[str, Any]) -> Row:
        """Run wrk once and read the CPU time of the servers and of the whole machine around it."""
        upstream = self.upstream if self.upstream is not server else None
        server_before = cpu_seconds(server.pid)
        upstream_before = cpu_seconds(upstream.pid) if upstream else 0.0
        own_before, busy_before, started = children_cpu_seconds(), busy_cpu_seconds(), time.monotonic()

        result = run_wrk(url, self.arguments.duration, connections, self.arguments.wrk_cpu, **options)

        elapsed = time.monotonic() - started
        server_used = cpu_seconds(server.pid) - server_before
        upstream_used = cpu_seconds(upstream.pid) - upstream_before if upstream else 0.0
        own_used = server_used + upstream_used + children_cpu_seconds() - own_before
        requests = max(result.requests, 1)
        return Row(
            label=label,
            wrk=result,
            connections=connections,
            server_cpu_us=1e6 * server_used / requests,
            upstream_cpu_us=1e6 * upstream_used / requests if upstream else None,
            other_cpu_cores=max(0.0, busy_cpu_seconds() - busy_before - own_used) / elapsed,
        )

    def start_profiler(self, key: str) -> tuple[str, Path, subprocess.Popen[bytes]] | None:
        """Start py-spy on gate for the first measured run of a profiled scenario, if ``--profile`` was given."""
        if key not in PROFILED or self.arguments.profile is None or self.gate is None:
            return None
        if profiling.py_spy_path() is None:
            self.profile_summaries[key] = "py-spy not found on PATH; install it with pip install py-spy"
            return None
        self.arguments.profile.mkdir(parents=True, exist_ok=True)
        output = self.arguments.profile / f"{key}.txt"
        process = profiling.start_profiler(self.gate.pid, output, self.arguments.duration, self.arguments.wrk_cpu)
        return key, output, process

    def finish_profiler(self, profiler: tuple[str, Path, subprocess.Popen[bytes]] | None) -> None:
        if profiler is None:
            return
        key, output, process = profiler
        _, errors = process.communicate(timeout=self.arguments.duration + 30)
        if process.returncode != 0:
            self.profile_summaries[key] = f"py-spy failed: {errors.decode(errors='replace').strip()}"
        else:
            self.profile_summaries[key] = f"{output}\n{profiling.summarise(output)}"

    # Scenarios -------------------------------------------------------------

    def run_direct(self) -> None:
        upstream = self.ensure_upstream()
        self.measure("direct", "direct upstream", upstream.url + "/small", upstream)

    def run_bare(self) -> None:
        upstream = self.ensure_upstream()
        env = {"BENCH_UPSTREAM": upstream.url, "BENCH_ENGINE": self.arguments.engine}
        proxy = self.uvicorn("bare-proxy", "apps:build_bare_proxy", env, factory=True)
        try:
            self.measure("bare", f"bare proxy ({self.arguments.engine}, no auth)", proxy.url + "/small", proxy)
        finally:
            self.group.stop(proxy)

    def run_public(self) -> None:
        assert self.gate is not None
        self.measure("public", "gate, public route", self.gate.url + fixtures.PUBLIC_PREFIX + "small", self.gate)

    def run_protected(self) -> None:
        assert self.gate is not None
        url = self.gate.url + fixtures.PROTECTED_PREFIX + "small"
        self.measure("protected", "gate, protected route, warm", url, self.gate, headers=self.auth_header)

    def run_nginx(self) -> None:
        if shutil.which("nginx") is None:
            self.results.skipped["nginx"] = "nginx not found on PATH (apt-get install nginx); no nginx ratio"
            return
        upstream = self.ensure_upstream()
        port = free_port()
        nginx_dir = self.directory / "nginx"
        nginx_dir.mkdir(exist_ok=True)
        config = fixtures.write_nginx_config(nginx_dir, port, upstream.port)
        nginx = self.group.start("nginx", ["nginx", "-p", str(nginx_dir), "-c", str(config), "-g", "daemon off;"], port)
        try:
            wait_until_serving(nginx, "/small")
            self.measure("nginx", "nginx proxy_pass", nginx.url + "/small", nginx)
        finally:
            self.group.stop(nginx)

    def run_token(self) -> None:
        assert self.gate is not None and self.files is not None
        script = fixtures.write_post_script(self.directory, self.files.token_form())
        self.measure("token", "gate token endpoint", self.gate.url + fixtures.TOKEN_PATH, self.gate, script=script)

        settings = fixtures.write_signer_settings(self.files)
        signer = self.uvicorn_signer(settings)
        try:
            self.measure(
                "signer", "minimal Starlette ES256 signer", signer.url + fixtures.TOKEN_PATH, signer, script=script
            )
        finally:
            self.group.stop(signer)

    def uvicorn_signer(self, settings: Path) -> Server:
        env = {"BENCH_SIGNER_SETTINGS": str(settings)}
        return self.uvicorn("signer", "apps:build_minimal_signer", env, factory=True)

    def run_cold(self) -> None:
        assert self.gate is not None and self.files is not None
        self.results.verify_us = inprocess.measure_verify_us(self.files)

        warm_rate = self.results.rate("protected") or COLD_RATE_GUESS
        count = math.ceil(warm_rate * 1.3 * self.arguments.duration) + 1000
        tokens = fixtures.sign_tokens(self.files, count)
        script = fixtures.write_rotating_tokens_script(self.directory, tokens)
        url = self.gate.url + fixtures.PROTECTED_PREFIX + "small"
        # One run only: a second would send the same tokens again, and they would hit the cache.
        row = self.measure("cold", "gate, protected route, cold", url, self.gate, script=script, warmup=False, repeat=1)
        if row.wrk.requests > count:
            print(f"warning: the cold run sent {row.wrk.requests} requests with {count} tokens, so some hit the cache")

    def run_latency(self) -> None:
        assert self.gate is not None and self.upstream is not None
        self.measure(
            "latency-direct", "direct upstream, c=1", self.upstream.url + "/small", self.upstream, connections=1
        )
        url = self.gate.url + fixtures.PROTECTED_PREFIX + "small"
        self.measure(
            "latency-gate", "gate, protected route, c=1", url, self.gate, connections=1, headers=self.auth_header
        )

    def run_memory(self) -> None:
        assert self.gate is not None
        if self.arguments.upstream != "raw":
            print("memory: skipped, because it needs the raw upstream's streaming endpoints (--upstream raw)")
            return
        size = self.arguments.memory_mib * MIB
        start_hwm = memory_kib(self.gate.pid, "VmHWM")
        upload_rate = inprocess.stream_upload(self.gate.port, self.token, size)
        upload_hwm = memory_kib(self.gate.pid, "VmHWM")
        download_rate = inprocess.stream_download(self.gate.port, self.token, size)
        download_hwm = memory_kib(self.gate.pid, "VmHWM")
        self.results.memory = Memory(size, start_hwm, upload_hwm, download_hwm, upload_rate, download_rate)

    def run_rss(self) -> None:
        assert self.gate is not None
        seconds = self.arguments.rss_seconds
        url = self.gate.url + fixtures.PROTECTED_PREFIX + "small"
        start = memory_kib(self.gate.pid, "VmRSS")
        run_wrk(url, seconds, self.arguments.connections, self.arguments.wrk_cpu, headers=self.auth_header)
        end = memory_kib(self.gate.pid, "VmRSS")
        self.results.rss_run_kib = (start, end, seconds)
