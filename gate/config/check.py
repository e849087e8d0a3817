"""``gate check``: load a config file as ``gate serve`` would and report on it.

Errors go to stderr with their field path and line, and the exit status is 1.
A valid file gets its risky settings as warnings on stderr, then a one-line
summary on stdout, and the exit status is 0: warnings alone never fail a check.
"""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from gate.config.compile import load_snapshot_with_lines
from gate.config.loader import format_path
from gate.config.risks import find_risks
from gate.config.snapshot import Snapshot
from gate.errors import ConfigError


def check_config(path: Path, out: TextIO, err: TextIO) -> int:
    """Check the config file at ``path``; return the exit status."""
    print(f"checking {path} ...", file=err)
    try:
        snapshot, loaded = load_snapshot_with_lines(path)
    except ConfigError as error:
        print(error.render(), file=err)
        return 1

    risks = find_risks(snapshot)
    for risk in risks:
        line = loaded.line_of(risk.path)
        where = f"line {line}" if line is not None else "line unknown"
        print(f"  warning: {format_path(risk.path)} ({where}): {risk.message}", file=err)

    warnings = f", {len(risks)} warning{'s' if len(risks) != 1 else ''}" if risks else ""
    print(f"{path}: OK: {summary(snapshot)}{warnings}", file=out)
    return 0


def summary(snapshot: Snapshot) -> str:
    """Count what the config defines, as in ``2 routes, 1 clients, ...``."""
    trusted_issuers = snapshot.config.trusted_issuers
    counts = [
        (len(snapshot.routes.routes), "routes"),
        (len(snapshot.clients), "clients"),
        (len(snapshot.service_accounts), "service accounts"),
        (len(trusted_issuers), "trusted issuers"),
        (len(snapshot.keyring.keys), "signing keys"),
    ]
    return ", ".join(f"{count} {name}" for count, name in counts)
