"""Config errors of ``decision_endpoints``, each reported with its field path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gate.config.compile import load_snapshot
from gate.errors import ConfigError
from gate.keys.generate import generate_private_key, write_private_key
from tests.conftest import KID

LOCAL = ["127.0.0.1/32"]

# decision_endpoints value, field path of the error, words in the message
CONFIG_ERRORS = {
    "no trusted ingresses": (
        [{"path": "/auth", "ingress": "nginx"}],
        "decision_endpoints[0].trusted_ingresses",
        "required",
    ),
    "empty trusted ingresses": (
        [{"path": "/auth", "ingress": "nginx", "trusted_ingresses": []}],
        "decision_endpoints[0].trusted_ingresses",
        "at least 1",
    ),
    "bad network": (
        [{"path": "/auth", "ingress": "nginx", "trusted_ingresses": ["10.0.0.300/8"]}],
        "decision_endpoints[0].trusted_ingresses",
        "CIDR",
    ),
    "unknown ingress": (
        [{"path": "/auth", "ingress": "caddy", "trusted_ingresses": LOCAL}],
        "decision_endpoints[0].ingress",
        "nginx",
    ),
    "root path": (
        [{"path": "/", "ingress": "nginx", "trusted_ingresses": LOCAL}],
        "decision_endpoints[0].path",
        "/auth",
    ),
    "token path": (
        [{"path": "/application/o/token", "ingress": "nginx", "trusted_ingresses": LOCAL}],
        "decision_endpoints[0].path",
        "token endpoint",
    ),
    "duplicate path": (
        [
            {"path": "/auth", "ingress": "nginx", "trusted_ingresses": LOCAL},
            {"path": "/auth/", "ingress": "traefik", "trusted_ingresses": LOCAL},
        ],
        "decision_endpoints[1].path",
        "duplicate",
    ),
}


def write_config(directory: Path, endpoints: list[dict[str, Any]]) -> Path:
    write_private_key(generate_private_key("ES256"), directory / "signing-key.pem")
    config = {
        "issuer": "https://gate.test",
        "signing_keys": [{"kid": KID, "private_key_file": "signing-key.pem"}],
        "decision_endpoints": endpoints,
    }
    path = directory / "gate.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.mark.parametrize("endpoints, field, words", CONFIG_ERRORS.values(), ids=CONFIG_ERRORS.keys())
def test_decision_endpoint_config_error(tmp_path: Path, endpoints: list[dict], field: str, words: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_snapshot(write_config(tmp_path, endpoints))

    problems = [problem for problem in raised.value.problems if problem.path.startswith(field)]
    assert problems, raised.value.render()
    assert words in problems[0].message


def test_decision_endpoint_path_normalised(tmp_path: Path) -> None:
    snapshot = load_snapshot(
        write_config(tmp_path, [{"path": "/auth/x/", "ingress": "envoy", "trusted_ingresses": LOCAL}])
    )

    assert snapshot.config.decision_endpoints[0].path == "/auth/x"
