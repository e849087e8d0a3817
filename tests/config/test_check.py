"""`gate check`: errors with path and line, warnings for risky settings, summary and exit codes."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import yaml

from gate.config.check import check_config
from gate.keys.generate import generate_private_key, write_private_key
from gate.oauth.app_tokens import generate_app_token
from tests.conftest import base_config
from tests.test_cli import gate_command


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    write_private_key(generate_private_key("ES256"), tmp_path / "signing-key.pem")
    return tmp_path


def safe_config() -> dict[str, Any]:
    """A config that gets no warning: every route protected, upstreams on loopback."""
    config = base_config("http://127.0.0.1:8080", "http://127.0.0.1:9001", generate_app_token())
    config["routes"] = [route for route in config["routes"] if route["auth"].get("mode") != "public"]
    return config


def run_check(directory: Path, text: str) -> tuple[int, str, str]:
    path = directory / "gate.yaml"
    path.write_text(text)
    out, err = io.StringIO(), io.StringIO()
    status = check_config(path, out, err)
    return status, out.getvalue(), err.getvalue()


def line_of(text: str, needle: str) -> int:
    return next(number for number, line in enumerate(text.splitlines(), 1) if needle in line)


def test_safe_config_passes_without_warnings(directory: Path) -> None:
    status, out, err = run_check(directory, yaml.safe_dump(safe_config()))

    assert status == 0
    assert out.endswith(": OK: 1 routes, 1 clients, 2 service accounts, 0 trusted issuers, 1 signing keys\n")
    assert "warning" not in err
    assert err.startswith("checking ")


def public_route(config: dict[str, Any]) -> None:
    config["routes"].append({"id": "open", "path_prefix": "/open/", "upstream": "http://127.0.0.1:9001",
                             "auth": {"mode": "public"}})  # fmt: skip


def forwarded_token(config: dict[str, Any]) -> None:
    config["routes"][0]["forward_authorization"] = True


def remote_plain_http(config: dict[str, Any]) -> None:
    config["routes"][0]["upstream"] = "http://orders.internal.example:8080"


def shadowed_route(config: dict[str, Any]) -> None:
    config["routes"].append({"id": "orders-admin", "path_prefix": "/orders/admin", "upstream": "http://127.0.0.1:9001",
                             "auth": {"audience": ["orders-api"]}})  # fmt: skip


def long_token_lifetime(config: dict[str, Any]) -> None:
    config["clients"][0]["token_lifetime"] = 7200


def metrics_next_to_proxy(config: dict[str, Any]) -> None:
    config["listen"] = {"host": "0.0.0.0", "port": 8080}


@pytest.mark.parametrize(
    "change, needle, expected",
    [
        (public_route, "mode: public", "routes[1].auth.mode (line {line}): route 'open' is public"),
        (forwarded_token, "forward_authorization", "routes[0].forward_authorization (line {line}): route 'orders'"),
        (remote_plain_http, "orders.internal", "routes[0].upstream (line {line}): route 'orders' forwards over plain"),
        (shadowed_route, "/orders/admin", "routes[1].path_prefix (line {line}): route 'orders-admin' never matches"),
        (long_token_lifetime, "token_lifetime", "clients[0].token_lifetime (line {line}): client 'orders-client' gets"),
        (metrics_next_to_proxy, "0.0.0.0", "listen.host (line {line}): /metrics is served on 0.0.0.0"),
    ],
    ids=lambda value: getattr(value, "__name__", None) if callable(value) else "",
)
def test_risky_setting_warns(directory: Path, change: Any, needle: str, expected: str) -> None:
    config = safe_config()
    change(config)
    text = yaml.safe_dump(config)

    status, out, err = run_check(directory, text)

    assert status == 0
    assert "  warning: " + expected.format(line=line_of(text, needle)) in err
    assert out.rstrip().endswith(", 1 warning")


def test_errors_exit_1_with_path_and_line(directory: Path) -> None:
    text = yaml.safe_dump(safe_config()).replace("token_lifetime: 120", "token_lifetime: 99999")
    text += "routs: []\n"

    status, out, err = run_check(directory, text)

    assert status == 1
    assert out == ""
    assert f"clients[0].token_lifetime (line {line_of(text, 'token_lifetime')}): " in err
    assert f"routs (line {line_of(text, 'routs:')}): unknown key. Did you mean 'routes'?" in err
    assert "2 errors" in err


def test_duplicate_key_reported(directory: Path) -> None:
    text = yaml.safe_dump(safe_config()) + "issuer: http://127.0.0.1:9999\n"

    status, _, err = run_check(directory, text)

    assert status == 1
    assert f"issuer (line {line_of(text, 'issuer: http://127.0.0.1:9999')}): duplicate key 'issuer'" in err


@pytest.mark.parametrize(
    "field, raw",
    [("client_id: orders-client\n", "off"), ("client_id: orders-client\n", "no"),
     ("client_id: orders-client\n", "0123"), ("  id: orders\n", "1:30")],
    ids=["off", "no", "leading-zero", "base-60"],
)  # fmt: skip
def test_yaml11_surprise_in_identifier_reported(directory: Path, field: str, raw: str) -> None:
    text = yaml.safe_dump(safe_config())
    assert field in text
    text = text.replace(field, field.split(":")[0] + ": " + raw + "\n", 1)

    status, _, err = run_check(directory, text)

    assert status == 1
    assert f"{raw!r} is ambiguous" in err
    assert "quote it if a string was meant" in err


def test_number_in_string_field_says_quote(directory: Path) -> None:
    text = yaml.safe_dump(safe_config()).replace("client_id: orders-client", "client_id: 1234", 1)

    status, _, err = run_check(directory, text)

    assert status == 1
    assert f"clients[0].client_id (line {line_of(text, 'client_id: 1234')}): expected a string" in err
    assert "Quote the value" in err


def test_check_exit_codes_from_command_line(directory: Path) -> None:
    path = directory / "gate.yaml"
    config = safe_config()
    public_route(config)
    path.write_text(yaml.safe_dump(config))
    warned = gate_command("check", "--config", str(path))
    path.write_text(yaml.safe_dump(config) + "extra: 1\n")
    failed = gate_command("check", "--config", str(path))

    assert warned.returncode == 0
    assert "warning: routes[1].auth.mode" in warned.stderr
    assert "OK:" in warned.stdout
    assert failed.returncode == 1
    assert "extra (line" in failed.stderr
    assert failed.stdout == ""


NOT_SHADOWED = {
    "glob route after a prefix route": {"id": "globbed", "path_glob": "/orders/*/items"},
    "other method": {"id": "writes", "path_prefix": "/orders/admin", "methods": ["POST"]},
    "other host": {"id": "other-host", "path_prefix": "/orders/admin", "hosts": ["admin.example"]},
}


@pytest.mark.parametrize("route", NOT_SHADOWED.values(), ids=NOT_SHADOWED.keys())
def test_check_ignores_routes_that_differ(directory: Path, route: dict[str, Any]) -> None:
    config = safe_config()
    config["routes"][0].update({"methods": ["GET"], "hosts": ["api.example"]})
    config["routes"].append({**route, "upstream": "http://127.0.0.1:9001", "auth": {"audience": ["orders-api"]}})

    status, out, err = run_check(directory, yaml.safe_dump(config))

    assert status == 0
    assert "never matches" not in err
    assert "Traceback" not in err
    assert out.rstrip().endswith("signing keys")
