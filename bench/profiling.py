"""Sample gate with py-spy during a load run and summarise where its CPU time goes.

py-spy (PyPI package ``py-spy``) writes collapsed stacks with ``--format raw``:
one line per distinct stack, frames joined by ``;`` from the outermost in, then
the sample count. The summary lists the functions with the most samples of
their own (self) and the functions on the most sampled stacks (inclusive), as
percentages of all samples.
"""

from __future__ import annotations

import collections
import re
import shutil
import subprocess
import sys
from pathlib import Path

SAMPLING_RATE_HZ = 250
MAIN_THREAD_ROOT = "_run_module_as_main"
FRAME_LOCATION = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def py_spy_path() -> str | None:
    """Return py-spy from PATH, or from the bin directory of this interpreter's virtual environment."""
    return shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))


def start_profiler(pid: int, output: Path, duration: float, cpu: int) -> subprocess.Popen[bytes]:
    """Start py-spy on ``pid`` for ``duration`` seconds, pinned to ``cpu``.

    py-spy pauses the target for each sample. With ``--nonblocking`` many
    stacks came out cut short (read while they changed), so this costs the
    profiled run a little throughput in exchange for whole stacks.
    """
    command = [
        "taskset", "-c", str(cpu), py_spy_path() or "py-spy", "record",
        "--pid", str(pid), "--duration", str(max(1, round(duration))), "--rate", str(SAMPLING_RATE_HZ),
        "--format", "raw", "--output", str(output),
    ]  # fmt: skip
    return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def short_frame(frame: str) -> str:
    """Turn ``name (/long/path/to/module.py:12)`` into ``name (module.py)``, so lines of one function merge."""
    match = FRAME_LOCATION.match(frame)
    if match is None:
        return frame
    file_name = match.group("file")
    for marker in ("site-packages/", "/gate/", "/bench/"):
        if marker in file_name:
            file_name = marker.strip("/") + "/" + file_name.split(marker, 1)[1]
            break
    return f"{match.group('function')} ({file_name.replace('site-packages/', '')})"


def read_stacks(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append(([short_frame(frame) for frame in stack.split(";")], int(count)))
    return stacks


def summarise(path: Path, top: int = 20) -> str:
    """Return the top functions of the main thread by self and by inclusive samples, as text.

    Only stacks that start at the main module count. gate's other threads
    wait (the config watcher, the thread pool), and py-spy 0.4.3 counted the
    watcher's wait inside watchfiles as active, although /proc showed that
    thread using no CPU time during a load run.
    """
    stacks = read_stacks(path)
    every_sample = sum(count for _, count in stacks)
    stacks = [(frames, count) for frames, count in stacks if frames[0].startswith(MAIN_THREAD_ROOT)]
    total = sum(count for _, count in stacks)
    if total == 0:
        return f"no main-thread samples in {path}"

    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    for frames, count in stacks:
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count

    header = f"{total} main-thread samples at {SAMPLING_RATE_HZ} Hz ({every_sample - total} of other threads left out)"
    lines = [header, "", "self %  function (own samples, callees excluded)"]
    lines += [f"{100 * count / total:6.1f}  {frame}" for frame, count in own.most_common(top)]
    lines += ["", "incl %  function (samples with the function anywhere on the stack; frames on every stack left out)"]
    branches = [(frame, count) for frame, count in inclusive.most_common() if count < total]
    lines += [f"{100 * count / total:6.1f}  {frame}" for frame, count in branches[:top]]
    return "\n".join(lines)
