"""The scenarios of bench/run.py: which servers each starts, what wrk sends, what is read from /proc."""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import math
import shutil
import subprocess
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import fixtures
import inprocess
from load import (
    HOST,
    ProcessGroup,
    Server,
    free_port,
    memory_kib,
    run_wrk,
    wait_until_serving,
)
from report import MIB, Memory, Results, Row
from rounds import RoundRunner, Target

BENCH_DIR = Path(__file__).resolve().parent
PACKAGES = ("gate", "uvicorn", "uvloop", "httptools", "starlette", "aiohttp", "PyJWT", "cryptography")
# The cold run's token count assumes this rate when no warm rate was measured before it.
# gate served 3,000 to 4,000 req/s on the machine of bench/README.md.
COLD_RATE_GUESS = 6000.0
RSS_WARMUP_SECONDS = 5.0
"""Load before the RSS run's first reading."""
GATE_SCENARIOS = frozenset({"public", "protected", "token", "cold", "latency", "memory", "rss"})
# Measured in alternation, one run of each per round, so that their ratios compare runs made moments apart.
ROTATION = ("direct", "bare", "public", "protected", "nginx")

T = TypeVar("T")


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
        self.rotation_servers: list[Server] = []  # bare proxy and nginx, stopped when the rotation ends
        self.rounds = RoundRunner(arguments, results)

    def run(self, names: list[str]) -> None:
        """Run the scenarios of ``names``, reporting a failing one and going on with the next.

        The scenarios of ROTATION run first, measured in alternation, so the
        ratios between them compare runs made moments apart.
        """
        rotation = [name for name in names if name in ROTATION]
        if rotation:
            self.run_rotation(rotation)
        for name in names:
            if name not in ROTATION:
                print(f"running {name} ...", flush=True)
                self.attempt([name], getattr(self, "run_" + name))

    def run_rotation(self, names: list[str]) -> None:
        """Start the servers of ``names``, then measure one run of each per round, ``--repeat`` rounds."""
        print(f"running {', '.join(names)} in alternation ...", flush=True)
        targets = []
        try:
            for name in names:
                target = self.attempt([name], getattr(self, "target_" + name))
                if target is not None:
                    targets.append(target)
            if targets:
                self.attempt([target.key for target in targets], lambda: self.measure(targets))
        finally:
            for server in self.rotation_servers:
                self.group.stop(server)
            self.rotation_servers.clear()

    def attempt(self, names: list[str], action: Callable[[], T]) -> T | None:
        """Call ``action``; when it fails, print the traceback and record ``names`` as failed."""
        try:
            if GATE_SCENARIOS.intersection(names):
                self.ensure_gate()
            return action()
        except (RuntimeError, ValueError, OSError, subprocess.SubprocessError, AssertionError) as error:
            traceback.print_exc()
            for name in names:
                self.failures.append(name)
                self.results.skipped[name] = f"failed: {error!r}"
            return None

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

    def measure(self, targets: list[Target], *, warmup: bool = True, repeat: int | None = None) -> list[Row]:
        return self.rounds.measure(targets, self.upstream, self.gate, warmup=warmup, repeat=repeat)

    # Scenarios -------------------------------------------------------------

    def target_direct(self) -> Target:
        upstream = self.ensure_upstream()
        return Target("direct", "direct upstream", upstream.url + "/small", upstream)

    def target_bare(self) -> Target:
        upstream = self.ensure_upstream()
        env = {"BENCH_UPSTREAM": upstream.url, "BENCH_ENGINE": self.arguments.engine}
        proxy = self.uvicorn("bare-proxy", "apps:build_bare_proxy", env, factory=True)
        self.rotation_servers.append(proxy)
        return Target("bare", f"bare proxy ({self.arguments.engine}, no auth)", proxy.url + "/small", proxy)

    def target_public(self) -> Target:
        assert self.gate is not None
        return Target("public", "gate, public route", self.gate.url + fixtures.PUBLIC_PREFIX + "small", self.gate)

    def target_protected(self) -> Target:
        assert self.gate is not None
        url = self.gate.url + fixtures.PROTECTED_PREFIX + "small"
        return Target("protected", "gate, protected route, warm", url, self.gate, headers=self.auth_header)

    def target_nginx(self) -> Target | None:
        if shutil.which("nginx") is None:
            self.results.skipped["nginx"] = "nginx not found on PATH (apt-get install nginx); no nginx ratio"
            return None
        upstream = self.ensure_upstream()
        port = free_port()
        nginx_dir = self.directory / "nginx"
        nginx_dir.mkdir(exist_ok=True)
        config = fixtures.write_nginx_config(nginx_dir, port, upstream.port)
        nginx = self.group.start("nginx", ["nginx", "-p", str(nginx_dir), "-c", str(config), "-g", "daemon off;"], port)
        self.rotation_servers.append(nginx)
        wait_until_serving(nginx, "/small")
        return Target("nginx", "nginx proxy_pass", nginx.url + "/small", nginx)

    def run_token(self) -> None:
        """Measure gate's token endpoint and the minimal signer in alternation, with the same form."""
        assert self.gate is not None and self.files is not None
        script = fixtures.write_post_script(self.directory, self.files.token_form())
        token = Target("token", "gate token endpoint", self.gate.url + fixtures.TOKEN_PATH, self.gate, script=script)

        settings = fixtures.write_signer_settings(self.files)
        signer = self.uvicorn_signer(settings)
        try:
            url = signer.url + fixtures.TOKEN_PATH
            self.measure([token, Target("signer", "minimal Starlette ES256 signer", url, signer, script=script)])
        finally:
            self.group.stop(signer)

    def uvicorn_signer(self, settings: Path) -> Server:
        env = {"BENCH_SIGNER_SETTINGS": str(settings)}
        return self.uvicorn("signer", "apps:build_minimal_signer", env, factory=True)

    def run_cold(self) -> None:
        """Measure the cold path in this process (the target's figure), then gate under load with wrk."""
        assert self.gate is not None and self.files is not None
        self.results.inprocess_cold = inprocess.measure_cold_path(self.files)
        self.results.verify_us = inprocess.measure_verify_us(self.files)

        warm_rate = self.results.rate("protected") or COLD_RATE_GUESS
        count = math.ceil(warm_rate * 1.3 * self.arguments.duration) + 1000
        tokens = fixtures.sign_tokens(self.files, count)
        script = fixtures.write_rotating_tokens_script(self.directory, tokens)
        url = self.gate.url + fixtures.PROTECTED_PREFIX + "small"
        target = Target("cold", "gate, protected route, cold", url, self.gate, script=script)
        # One run only: a second would send the same tokens again, and they would hit the cache.
        [row] = self.measure([target], warmup=False, repeat=1)
        if row.wrk.requests > count:
            print(f"warning: the cold run sent {row.wrk.requests} requests with {count} tokens, so some hit the cache")

    def run_latency(self) -> None:
        """Measure the direct upstream and gate's protected route with one connection, in alternation."""
        assert self.gate is not None and self.upstream is not None
        direct = Target("latency-direct", "direct upstream, c=1", self.upstream.url + "/small", self.upstream)
        url = self.gate.url + fixtures.PROTECTED_PREFIX + "small"
        gate = Target("latency-gate", "gate, protected route, c=1", url, self.gate, headers=self.auth_header)
        direct.connections = gate.connections = 1
        self.measure([direct, gate])

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

        def load(length: float) -> None:
            run_wrk(url, length, self.arguments.connections, self.arguments.wrk_cpu, headers=self.auth_header)

        # A warm-up first, so that what a fresh process allocates once (caches, pools) is not read as growth.
        load(min(RSS_WARMUP_SECONDS, seconds))
        start = memory_kib(self.gate.pid, "VmRSS")
        load(seconds / 2)
        middle = memory_kib(self.gate.pid, "VmRSS")
        load(seconds / 2)
        end = memory_kib(self.gate.pid, "VmRSS")
        self.results.rss_run_kib = (start, middle, end, seconds)
