"""Smoke test of bench/run.py: it starts its servers, measures for a few seconds and prints the ratios.

Timings are not asserted. The test needs wrk (Debian package ``wrk``); without
it the test is skipped unless ``GATE_REQUIRE_WRK`` is set, in which case it fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH_SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "run.py"
RATIO_LINES = (
    "ratio: gate-protected / gate-public",
    "ratio: gate-protected / nginx",
    "ratio: gate-protected / bare proxy",
    "ratio: gate-protected / direct upstream",
    "ratio: token endpoint / minimal signer",
    "ratio: cold path: gate's own work per never-seen token (in-process)",
    "ratio: gate peak RSS MiB while streaming",
    "ratio: added median latency ms at c=1",
)


def require_wrk() -> None:
    if shutil.which("wrk") is None and not os.environ.get("GATE_REQUIRE_WRK"):
        pytest.skip("wrk is not installed (apt-get install wrk); set GATE_REQUIRE_WRK=1 to fail instead")


def test_bench_quick_run_prints_ratios() -> None:
    require_wrk()
    command = [sys.executable, str(BENCH_SCRIPT), "--quick", "--duration", "1", "--warmup", "0", "--repeat", "2"]
    command += ["--only", "direct", "bare", "protected", "cold"]

    completed = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)

    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    for line in RATIO_LINES:
        assert line in completed.stdout, f"missing {line!r} in:\n{output}"
    scenarios = (
        "direct upstream",
        "bare proxy (native, no auth)",
        "gate, protected route, warm",
        "gate, protected route, cold",
    )
    for scenario in scenarios:
        assert scenario in completed.stdout, f"no table row for {scenario!r} in:\n{output}"
    assert "round 2 req/s: direct upstream" in completed.stdout, output
    bare_ratio = next(line for line in completed.stdout.splitlines() if "ratio: gate-protected / bare proxy" in line)
    assert "median of 2 paired" in bare_ratio, output
    in_process = next(line for line in completed.stdout.splitlines() if "(in-process)" in line)
    assert "not measured" not in in_process, output
    assert "load average before:" in completed.stdout
    assert "load average after:" in completed.stdout
