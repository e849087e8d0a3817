"""Processes, wrk runs and /proc readings for bench/run.py.

Every server is a subprocess started through ``taskset`` and registered in a
``ProcessGroup``, which stops them all (SIGTERM, then SIGKILL) when the
benchmark ends. wrk runs with one thread pinned to the load CPU.
"""

from __future__ import annotations

import dataclasses
import os
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

HOST = "127.0.0.1"
START_TIMEOUT_SECONDS = 20.0
STOP_TIMEOUT_SECONDS = 5.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
LATENCY_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


@dataclasses.dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 20) -> str:
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])


class ProcessGroup:
    """The servers of one benchmark run; ``stop_all`` ends each one by its pid."""

    def __init__(self, log_dir: Path, cpu: int) -> None:
        self.log_dir = log_dir
        self.cpu = cpu
        self.servers: list[Server] = []

    def start(self, name: str, command: list[str], port: int, env: dict[str, str] | None = None) -> Server:
        """Start ``command`` pinned to the server CPU, with output to ``<log_dir>/<name>.log``."""
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                ["taskset", "-c", str(self.cpu), *command],
                env={**os.environ, **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        server = Server(name, port, process, log_path)
        self.servers.append(server)
        return server

    def stop(self, server: Server) -> None:
        if server.process.poll() is None:
            server.process.terminate()
            try:
                server.process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait(timeout=STOP_TIMEOUT_SECONDS)
        if server in self.servers:
            self.servers.remove(server)

    def stop_all(self) -> None:
        for server in reversed(list(self.servers)):
            self.stop(server)


def wait_until_serving(server: Server, path: str, timeout: float = START_TIMEOUT_SECONDS) -> None:
    """Wait until ``GET path`` answers with any HTTP status; raise RuntimeError with the log otherwise."""
    deadline = time.monotonic() + timeout
    last_error = "no attempt"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited with code {server.process.returncode}:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(server.url + path, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except OSError as error:
            last_error = repr(error)
        time.sleep(0.1)
    raise RuntimeError(f"{server.name} not serving after {timeout:g} s ({last_error}):\n{server.log_tail()}")


@dataclasses.dataclass
class WrkResult:
    requests: int
    seconds: float
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: str


def parse_latency_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"invalid wrk latency {text!r}")
    return float(match.group(1)) * LATENCY_UNITS_MS[match.group(2)]


def run_wrk(
    url: str,
    duration: float,
    connections: int,
    cpu: int,
    *,
    script: Path | None = None,
    headers: tuple[str, ...] = (),
    timeout_s: float = 5.0,
) -> WrkResult:
    """Run wrk with one thread pinned to ``cpu`` and parse its summary.

    wrk 4.1 accepts whole seconds only, so ``duration`` is rounded, to at least 1 s.
    """
    seconds = max(1, round(duration))
    command = ["taskset", "-c", str(cpu), "wrk", "-t1", f"-c{connections}", f"-d{seconds}s"]
    command += ["--timeout", f"{timeout_s:g}s", "--latency"]
    for header in headers:
        command += ["-H", header]
    if script is not None:
        command += ["-s", str(script)]
    completed = subprocess.run([*command, url], capture_output=True, text=True, timeout=seconds + 30, check=True)

    output = completed.stdout
    total = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)", output)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
    if total is None or rate is None or p50 is None or p99 is None:
        raise ValueError(f"unexpected wrk output:\n{output}{completed.stderr}")

    seconds = parse_latency_ms(total.group(2) + total.group(3)) / 1000.0
    errors = [line.strip() for line in output.splitlines() if "errors" in line or "Non-2xx" in line]
    return WrkResult(
        requests=int(total.group(1)),
        seconds=seconds,
        requests_per_second=float(rate.group(1)),
        p50_ms=parse_latency_ms(p50.group(1)),
        p99_ms=parse_latency_ms(p99.group(1)),
        errors="; ".join(errors),
    )


def process_tree(pid: int) -> list[int]:
    """Return ``pid`` and its live descendants (nginx runs its workers as children)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry.name))

    tree, pending = [], [pid]
    while pending:
        current = pending.pop()
        tree.append(current)
        pending.extend(children.get(current, []))
    return tree


def cpu_seconds(pid: int) -> float:
    """Return the user plus system CPU time of ``pid`` and its descendants, from /proc/PID/stat."""
    total = 0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def memory_kib(pid: int, field: str) -> int:
    """Return a memory field of /proc/PID/status (``VmRSS``, ``VmHWM``) in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise ValueError(f"{field} not in /proc/{pid}/status")


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def busy_cpu_seconds() -> float:
    """Return the CPU time all CPUs spent busy since boot (idle and iowait excluded)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS
