"""Load benchmark of gate against baselines started by the same run, with the ratios between them.

Every server runs in its own process on 127.0.0.1, pinned to the server CPU
(default 1). wrk and this script's own clients run on the load CPU (default 0).
Scenarios, in the order they run:

  direct     the raw ASGI upstream under uvicorn, no proxy
  bare       a reverse proxy with no auth (pure ASGI + aiohttp, gate's settings)
  public     gate on a public route
  protected  gate on a protected route with one valid token (warm verified-token cache)
  nginx      nginx proxy_pass (skipped with a message where nginx is missing)
  token      gate's token endpoint, then a minimal Starlette ES256 signer
  cold       gate's app called in this process with never-seen tokens and a stub upstream (the
             target's figure), then gate under wrk with a never-seen token on every request
  latency    concurrency 1: direct upstream, then gate on the protected route
  memory     gate's peak RSS while a large body streams through it each way
  rss        gate's RSS at the start and end of a load run

With --repeat N, the script measures direct, bare, public, protected and nginx
in N rounds, each of which runs every selected one of them once, back to back.
token and the minimal signer alternate in the same way, and so do the two
latency runs. The table keeps each scenario's fastest run. With N >= 2, each
ratio of request rates and its target verdict use the median of the per-round ratios.

The script prints a table, then one line per ratio and target with PASS or
MISS. The targets are information: the exit status is 0 unless a scenario
failed to run. Every process it starts is stopped before it exits.

Usage:
    python bench/run.py [--quick] [--duration S] [--connections N] [--repeat N] [--only NAME ...]
                        [--upstream raw|demo]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import scenarios
from load import load_average
from report import Results, print_memory, print_ratios, print_rounds, print_table

SCENARIOS = ("direct", "bare", "public", "protected", "nginx", "token", "cold", "latency", "memory", "rss")
QUICK_DEFAULTS = {"duration": 2.0, "warmup": 1.0, "memory_mib": 32, "rss_seconds": 2.0}
FULL_DEFAULTS = {"duration": 5.0, "warmup": 1.0, "memory_mib": 256, "rss_seconds": 10.0}


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs and small bodies (defaults marked quick)")
    parser.add_argument(
        "--duration", type=float, help="measured wrk run per scenario, in whole seconds (default 5; quick 2)"
    )
    parser.add_argument(
        "--warmup", type=float, help="unmeasured wrk run before each scenario, in whole seconds; 0 skips it (default 1)"
    )
    parser.add_argument("--connections", type=int, default=64, help="open wrk connections (default 64)")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="rounds of measured runs. Ratios use the median over rounds and the table each scenario's fastest run"
        " (default 1, and the cold run always runs once)",
    )
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, metavar="NAME", help=f"run only these: {SCENARIOS}")
    parser.add_argument(
        "--memory-mib", type=int, help="body size streamed each way through gate, in MiB (256; quick 32)"
    )
    parser.add_argument("--rss-seconds", type=float, help="length of the RSS load run, in seconds (10; quick 2)")
    parser.add_argument(
        "--gate-log-level",
        default="warning",
        choices=["debug", "info", "warning", "error"],
        help="gate's --log-level (default warning: no line per granted request)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="record py-spy samples of gate in the protected, cold and token runs here",
    )
    parser.add_argument(
        "--loop", choices=["auto", "asyncio", "uvloop"], default="auto", help="uvicorn loop of baselines"
    )
    parser.add_argument("--http", choices=["auto", "h11", "httptools"], default="auto", help="uvicorn HTTP parser")
    parser.add_argument(
        "--upstream",
        choices=["raw", "demo"],
        default="raw",
        help="upstream behind every proxy: raw (a bare ASGI app, the default) or demo (the Starlette API of"
        " 'gate demo'); the memory scenario needs raw and is skipped with demo",
    )
    parser.add_argument(
        "--engine",
        choices=["aiohttp", "native"],
        default="native",
        help="gate's upstream_client.engine, also used by the bare proxy (default native, as in gate)",
    )
    parser.add_argument("--wrk-cpu", type=int, default=0, help="CPU for wrk and this script (default 0)")
    parser.add_argument("--server-cpu", type=int, default=1, help="CPU for every server (default 1)")
    arguments = parser.parse_args(argv)

    if arguments.repeat < 1:
        parser.error(f"--repeat must be 1 or more, got {arguments.repeat}")
    defaults = QUICK_DEFAULTS if arguments.quick else FULL_DEFAULTS
    for name, value in defaults.items():
        if getattr(arguments, name) is None:
            setattr(arguments, name, value)
    arguments.only = set(arguments.only or SCENARIOS)
    return arguments


def print_environment(arguments: argparse.Namespace) -> None:
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        "unknown",
    )
    nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=False).stdout.strip()
    print(f"machine: nproc {nproc}, {cpu_model}, Python {sys.version.split()[0]}")
    print(f"packages: {scenarios.package_versions()}")
    print(f"tools: {scenarios.tool_versions()}")
    print(
        f"load: wrk -t1 -c{arguments.connections} on CPU {arguments.wrk_cpu}; servers on CPU {arguments.server_cpu};"
        f" {arguments.warmup:g} s warm-up + {arguments.repeat} x {arguments.duration:g} s measured per scenario;"
        f" gate --log-level {arguments.gate_log_level}; upstream {arguments.upstream}"
    )
    print(f"load average before: {load_average()}", flush=True)


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    for tool, package in (("wrk", "wrk"), ("taskset", "util-linux")):
        if shutil.which(tool) is None:
            print(f"error: {tool} not found on PATH; install the Debian package {package}", file=sys.stderr)
            return 2

    print_environment(arguments)
    os.sched_setaffinity(0, {arguments.wrk_cpu})
    results = Results()
    with tempfile.TemporaryDirectory(prefix="gate-bench-") as directory:
        bench = scenarios.Bench(arguments, Path(directory), results)
        try:
            bench.run([name for name in SCENARIOS if name in arguments.only])
        finally:
            bench.stop()

    print()
    print_table(results)
    print_memory(results)
    if arguments.repeat > 1:
        print_rounds(results)
    print()
    print_ratios(results, arguments.repeat)
    print(f"load average after: {load_average()}")
    for key, summary in bench.rounds.profile_summaries.items():
        print(f"\nprofile of gate during the {key} run: {summary}")
    return 1 if bench.failures else 0


if __name__ == "__main__":
    sys.exit(main())
