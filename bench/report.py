"""The results of one bench/run.py run, and how they are printed: a table, then the ratios and targets."""

from __future__ import annotations

import dataclasses
import statistics

from load import WrkResult

MIB = 1024 * 1024
IN_PROCESS_COLD = "cold path: gate's own work per never-seen token (in-process)"
COLD_PATH_NOTE = (
    "cold path: under load the upstream shares CPU 1, and its cost per request and gate's context switches"
    " grow when gate is slower; the in-process figure isolates gate's own work, so the target uses it."
)
# Ratios of request rates: name, numerator, denominator, target (None: information only), target text.
RATE_RATIOS: tuple[tuple[str, str, str, float | None, str], ...] = (
    ("gate-protected / gate-public", "protected", "public", 0.95, ">= 0.95"),
    ("gate-protected / nginx", "protected", "nginx", 0.35, ">= 0.35"),
    ("gate-protected / bare proxy", "protected", "bare", None, ""),
    ("gate-protected / direct upstream", "protected", "direct", None, ""),
    ("token endpoint / minimal signer", "token", "signer", 0.90, ">= 0.90"),
)

Line = tuple[str, float | None, str, str]  # name, value, format template, note


@dataclasses.dataclass
class Row:
    """One wrk run against one server."""

    label: str
    wrk: WrkResult
    connections: int
    server_cpu_us: float | None  # CPU time of the server under test per request, from /proc/PID/stat
    upstream_cpu_us: float | None  # CPU time of the upstream behind it per request
    other_cpu_cores: float  # cores kept busy by processes outside this benchmark during the run
    profiled: bool = False  # py-spy sampled the server during this run


@dataclasses.dataclass
class Memory:
    body_bytes: int
    start_hwm_kib: int
    upload_hwm_kib: int
    download_hwm_kib: int
    upload_mib_per_second: float
    download_mib_per_second: float


@dataclasses.dataclass
class InProcessCold:
    """CPU time per request of gate's protected route called in-process with a stub upstream, best of ``repeats``."""

    cold_us: float  # a never-seen token
    warm_us: float  # a token in the verified-token cache
    raw_verify_us: float  # one ES256 signature check with cryptography alone, on the same tokens
    tokens: int  # never-seen tokens per repeat
    repeats: int

    @property
    def own_work_us(self) -> float:
        """Return gate's own work per never-seen token: cold, less warm, less one raw verify."""
        return self.cold_us - self.warm_us - self.raw_verify_us


@dataclasses.dataclass
class Results:
    rows: dict[str, Row] = dataclasses.field(default_factory=dict)  # each scenario's fastest run
    rounds: list[dict[str, Row]] = dataclasses.field(default_factory=list)  # runs made back to back, by scenario
    inprocess_cold: InProcessCold | None = None
    verify_us: float | None = None  # one PyJWT ES256 verify, in this process
    memory: Memory | None = None
    rss_run_kib: tuple[int, int, int, float] | None = None  # VmRSS at start, middle and end; run length in seconds
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


def paired_ratios(results: Results, numerator: str, denominator: str) -> list[float]:
    """Return the rate ratio of two scenarios in each round that measured both, leaving out profiled runs."""
    ratios = []
    for measured in results.rounds:
        top, bottom = measured.get(numerator), measured.get(denominator)
        if top is None or bottom is None or top.profiled or bottom.profiled:
            continue
        if bottom.wrk.requests_per_second > 0:
            ratios.append(top.wrk.requests_per_second / bottom.wrk.requests_per_second)
    return ratios


def rate_ratio(results: Results, numerator: str, denominator: str, repeat: int) -> tuple[float | None, str]:
    """Return the figure that a ratio's verdict uses, and a note that names it.

    With ``--repeat`` 2 or more the figure is the median of the paired ratios,
    because drift on a shared machine cancels out within a round. With one run
    each, it is the ratio of those runs.
    """
    fastest = ratio(results.rate(numerator), results.rate(denominator))
    if repeat < 2:
        return fastest, "one run each"
    paired = paired_ratios(results, numerator, denominator)
    if not paired:
        return fastest, "fastest run of each"
    return statistics.median(paired), f"median of {len(paired)} paired; fastest runs {optional(fastest, '{:.2f}')}"


def target_note(value: float | None, goal: float, higher: bool, goal_text: str) -> str:
    return f"target {goal_text}: {verdict(value, goal, higher)}"


def rate_lines(results: Results, repeat: int) -> list[Line]:
    lines = []
    for name, numerator, denominator, goal, goal_text in RATE_RATIOS:
        value, figure = rate_ratio(results, numerator, denominator, repeat)
        note = "information" if goal is None else target_note(value, goal, True, goal_text)
        if value is not None:
            note += f" ({figure})"
        lines.append((name, value, "{:.2f}", note))
    return lines


def cold_lines(results: Results) -> list[Line]:
    """Return the cold path's lines: the in-process figure the target uses, then the figures under load."""
    measured = results.inprocess_cold
    own_work = None if measured is None else measured.own_work_us
    cold = None if measured is None else measured.cold_us
    warm = None if measured is None else measured.warm_us
    raw_verify = None if measured is None else measured.raw_verify_us
    runs = "" if measured is None else f", best of {measured.repeats} x {measured.tokens} requests"

    by_cpu, by_wall = cold_extra(results)
    under_load = None if by_cpu is None or results.verify_us is None else by_cpu - results.verify_us
    own_work_note = target_note(own_work, 40, False, "<= 40 µs") + " (cold - warm - raw verify)"
    return [
        (IN_PROCESS_COLD, own_work, "{:.0f}", own_work_note),
        ("in-process µs/req, never-seen token", cold, "{:.0f}", "CPU time, stub upstream" + runs),
        ("in-process µs/req, cached token", warm, "{:.0f}", "CPU time, stub upstream" + runs),
        ("in-process µs, raw ES256 verify", raw_verify, "{:.0f}", "cryptography alone, on the same tokens"),
        ("cold path extra µs/req under load (CPU)", by_cpu, "{:.0f}", "over the warm cache"),
        ("cold path extra µs/req under load (wall)", by_wall, "{:.0f}", "1/rate cold - 1/rate warm"),
        ("one ES256 verify µs (PyJWT)", results.verify_us, "{:.0f}", "timeit in the benchmark process"),
        ("cold path gate's own work under load µs", under_load, "{:.0f}", "information (extra CPU - PyJWT verify)"),
    ]


def print_ratios(results: Results, repeat: int) -> None:
    """Print one line per ratio or target: the value, then the target and PASS, MISS or not measured."""
    lines = [*rate_lines(results, repeat), *cold_lines(results)]

    peak = None
    if results.memory is not None:
        peak = max(results.memory.upload_hwm_kib, results.memory.download_hwm_kib) / 1024
    lines.append(("gate peak RSS MiB while streaming", peak, "{:.0f}", target_note(peak, 150, False, "< 150")))
    growth = None
    if results.rss_run_kib is not None:
        growth = (results.rss_run_kib[2] - results.rss_run_kib[0]) / 1024
    lines.append(("gate RSS growth MiB over load run", growth, "{:+.1f}", "information (target: no growth)"))

    latency_gate, latency_direct = results.rows.get("latency-gate"), results.rows.get("latency-direct")
    added_p50 = added_p99 = None
    if latency_gate is not None and latency_direct is not None:
        added_p50 = latency_gate.wrk.p50_ms - latency_direct.wrk.p50_ms
        added_p99 = latency_gate.wrk.p99_ms - latency_direct.wrk.p99_ms
    lines.append(("added median latency ms at c=1", added_p50, "{:.3f}", target_note(added_p50, 0.5, False, "<= 0.5")))
    lines.append(("added p99 latency ms at c=1", added_p99, "{:.3f}", "information"))

    if repeat >= 2:
        print(f"ratios of request rates (--repeat {repeat}): each is the median of the ratios of runs made back to"
              " back in the same round, and the target verdict uses that median")  # fmt: skip
    else:
        print("ratios of request rates: one run per scenario (--repeat 1), so the target verdict uses that ratio")
    width = max(len(name) for name, *_ in lines)
    for name, value, template, note in lines:
        print(f"ratio: {name.ljust(width)}  {optional(value, template):>8}  {note}")
    if results.inprocess_cold is not None or "cold" in results.rows:
        print(COLD_PATH_NOTE)


def print_rounds(results: Results) -> None:
    """Print the request rates of each round that measured more than one scenario, the pairs behind the ratios."""
    for number, measured in enumerate(results.rounds, start=1):
        if len(measured) > 1:
            rates = [f"{row.label} {row.wrk.requests_per_second:,.0f}" for row in measured.values()]
            print(f"round {number} req/s: {'; '.join(rates)}")


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
        start, middle, end, seconds = results.rss_run_kib
        print(f"memory: gate VmRSS {start / 1024:.1f} MiB at the start, {middle / 1024:.1f} MiB half-way and"
              f" {end / 1024:.1f} MiB at the end of a {seconds:g} s load run, after a warm-up")  # fmt: skip
