"""The results of one bench/run.py run, and how they are printed: a table, then the ratios and targets."""

from __future__ import annotations

import dataclasses

from load import WrkResult

MIB = 1024 * 1024


@dataclasses.dataclass
class Row:
    """One wrk run against one server."""

    label: str
    wrk: WrkResult
    connections: int
    server_cpu_us: float | None  # CPU time of the server under test per request, from /proc/PID/stat
    upstream_cpu_us: float | None  # CPU time of the upstream behind it per request
    other_cpu_cores: float  # cores kept busy by processes outside this benchmark during the run


@dataclasses.dataclass
class Memory:
    body_bytes: int
    start_hwm_kib: int
    upload_hwm_kib: int
    download_hwm_kib: int
    upload_mib_per_second: float
    download_mib_per_second: float


@dataclasses.dataclass
class Results:
    rows: dict[str, Row] = dataclasses.field(default_factory=dict)
    verify_us: float | None = None  # one PyJWT ES256 verify, in this process
    memory: Memory | None = None
    rss_run_kib: tuple[int, int, float] | None = None  # VmRSS at start and end, run length in seconds
    skipped: dict[str, str] = dataclasses.field(default_factory=dict)

    def rate(self, key: str) -> float | None:
        row = self.rows.get(key)
        return row.wrk.requests_per_second if row else None


def format_table(rows: list[list[str]]) -> str:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def optional(value: float | None, template: str) -> str:
    return "-" if value is None else template.format(value)


def print_table(results: Results) -> None:
    header = ["scenario", "conns", "req/s", "p50 ms", "p99 ms", "server CPU µs/req", "upstream CPU µs/req"]
    table = [[*header, "other CPU", "errors"]]
    for row in results.rows.values():
        table.append(
            [
                row.label,
                str(row.connections),
                f"{row.wrk.requests_per_second:,.0f}",
                f"{row.wrk.p50_ms:.2f}",
                f"{row.wrk.p99_ms:.2f}",
                optional(row.server_cpu_us, "{:.0f}"),
                optional(row.upstream_cpu_us, "{:.0f}"),
                f"{row.other_cpu_cores:.2f}",
                row.wrk.errors or "none",
            ]
        )
    print(format_table(table))
    print("other CPU: cores kept busy by processes outside this benchmark during the run (noise).")
    for name, reason in results.skipped.items():
        print(f"skipped {name}: {reason}")


def verdict(value: float | None, target: float, higher_is_better: bool) -> str:
    if value is None:
        return "not measured"
    met = value >= target if higher_is_better else value <= target
    return "PASS" if met else "MISS"


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def cold_extra(results: Results) -> tuple[float | None, float | None]:
    """Return the extra cost of a never-seen token over a cached one, in µs, by CPU time and by wall time."""
    cold, warm = results.rows.get("cold"), results.rows.get("protected")
    if cold is None or warm is None:
        return None, None
    by_cpu = None
    if cold.server_cpu_us is not None and warm.server_cpu_us is not None:
        by_cpu = cold.server_cpu_us - warm.server_cpu_us
    by_wall = 1e6 / cold.wrk.requests_per_second - 1e6 / warm.wrk.requests_per_second
    return by_cpu, by_wall


def print_ratios(results: Results) -> None:
    """Print one line per ratio or target: the value, the target and PASS, MISS or not measured."""
    protected = results.rate("protected")
    lines: list[tuple[str, float | None, str, str]] = []

    def target(name: str, value: float | None, template: str, goal: float, higher: bool, goal_text: str) -> None:
        lines.append((name, value, template, f"target {goal_text}: {verdict(value, goal, higher)}"))

    target("gate-protected / gate-public", ratio(protected, results.rate("public")), "{:.2f}", 0.95, True, ">= 0.95")
    target("gate-protected / nginx", ratio(protected, results.rate("nginx")), "{:.2f}", 0.35, True, ">= 0.35")
    lines.append(("gate-protected / bare proxy", ratio(protected, results.rate("bare")), "{:.2f}", "information"))
    lines.append(
        ("gate-protected / direct upstream", ratio(protected, results.rate("direct")), "{:.2f}", "information")
    )
    token_ratio = ratio(results.rate("token"), results.rate("signer"))
    target("token endpoint / minimal signer", token_ratio, "{:.2f}", 0.90, True, ">= 0.90")

    by_cpu, by_wall = cold_extra(results)
    gate_work = None if by_cpu is None or results.verify_us is None else by_cpu - results.verify_us
    lines.append(("cold path extra µs/req (CPU)", by_cpu, "{:.0f}", "over the warm cache"))
    lines.append(("cold path extra µs/req (wall)", by_wall, "{:.0f}", "1/rate cold - 1/rate warm"))
    lines.append(("one ES256 verify µs (PyJWT)", results.verify_us, "{:.0f}", "timeit in the benchmark process"))
    target("cold path gate's own work µs", gate_work, "{:.0f}", 40, False, "<= 40")

    peak = None
    if results.memory is not None:
        peak = max(results.memory.upload_hwm_kib, results.memory.download_hwm_kib) / 1024
    target("gate peak RSS MiB while streaming", peak, "{:.0f}", 150, False, "< 150")
    growth = None
    if results.rss_run_kib is not None:
        growth = (results.rss_run_kib[1] - results.rss_run_kib[0]) / 1024
    lines.append(("gate RSS growth MiB over load run", growth, "{:+.1f}", "information (target: no growth)"))

    latency_gate, latency_direct = results.rows.get("latency-gate"), results.rows.get("latency-direct")
    added_p50 = added_p99 = None
    if latency_gate is not None and latency_direct is not None:
        added_p50 = latency_gate.wrk.p50_ms - latency_direct.wrk.p50_ms
        added_p99 = latency_gate.wrk.p99_ms - latency_direct.wrk.p99_ms
    target("added median latency ms at c=1", added_p50, "{:.3f}", 0.5, False, "<= 0.5")
    lines.append(("added p99 latency ms at c=1", added_p99, "{:.3f}", "information"))

    width = max(len(name) for name, *_ in lines)
    for name, value, template, note in lines:
        print(f"ratio: {name.ljust(width)}  {optional(value, template):>8}  {note}")


def print_memory(results: Results) -> None:
    memory = results.memory
    if memory is not None:
        print(
            f"memory: {memory.body_bytes / MIB:.0f} MiB each way through gate; VmHWM before"
            f" {memory.start_hwm_kib / 1024:.0f} MiB, after upload {memory.upload_hwm_kib / 1024:.0f} MiB"
            f" ({memory.upload_mib_per_second:.0f} MiB/s), after download {memory.download_hwm_kib / 1024:.0f} MiB"
            f" ({memory.download_mib_per_second:.0f} MiB/s)"
        )
    if results.rss_run_kib is not None:
        start, end, seconds = results.rss_run_kib
        print(f"memory: gate VmRSS {start / 1024:.1f} MiB at the start and {end / 1024:.1f} MiB at the end of a"
              f" {seconds:g} s load run")  # fmt: skip
