"""``gate explain``: each kind of decision, and agreement with the live proxy and decision endpoint."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from gate.cli import main
from tests.conftest import USERNAME
from tests.decision.conftest import DecisionGate
from tests.decision.test_endpoint import ask_as, bearer, traefik
from tests.proxy.upstreams import RawResponse, send_raw

# URL, token claim overrides ("foreign": signed by another key, None: no token), extra headers,
# exit status, reason id, the failed check (None when granted), status
EXPLAIN_CASES = {
    "allowed": ("/admin/users", {}, [], 0, "token_accepted", None, 200),
    "public route": ("/public/page", None, [], 0, "public_route", None, 200),
    "no token": ("/admin", None, [], 3, "missing_token", "token", 401),
    "bad token": ("/admin", "foreign", [], 3, "bad_signature", "verification", 401),
    "expired token": ("/admin", {"exp": int(time.time()) - 3600}, [], 3, "token_expired", "verification", 401),
    "wrong audience": ("/admin", {"aud": "other-api"}, [], 3, "audience_mismatch", "audience", 401),
    "missing scope": ("/scoped", {}, [], 3, "insufficient_scope", "scopes", 403),
    "failed claim": ("/claims", {"tenant": "zeta"}, [], 3, "claim_mismatch", "claims", 403),
    "failed policy": ("/policy", {}, ["X-Env: dev"], 3, "policy_denied", "policy", 403),
    "passed policy": ("/policy", {}, ["X-Env: prod"], 0, "token_accepted", None, 200),
    "bad path": ("/public/..%2Fadmin", None, [], 3, "bad_path", "path", 400),
    "dot segments": ("/public/%2e%2e/admin", None, [], 3, "missing_token", "token", 401),
    "no matching route": ("/nowhere", {}, [], 3, "no_route", "route", 404),
    "wrong method": ("/read-only", {}, [], 3, "no_route", "route", 404),
}


def token_for(gate: DecisionGate, claims: dict | str | None) -> str | None:
    if claims is None:
        return None
    if claims == "foreign":
        return gate.foreign_token()
    return gate.token(**claims)


def run_explain(
    capsys: pytest.CaptureFixture[str], arguments: list[str], token: str | None, tmp_path: Path
) -> tuple[int, str]:
    if token is not None:
        token_file = tmp_path / "token"
        token_file.write_text(token + "\n")
        arguments = [*arguments, "--token-file", str(token_file)]
    status = main(["explain", *arguments])
    return status, capsys.readouterr().out


def explain_json(
    gate: DecisionGate, capsys: pytest.CaptureFixture[str], tmp_path: Path, url: str, token: str | None, **kw: str
) -> tuple[int, dict, str]:
    method = kw.get("method", "GET")
    headers = [item for header in kw.get("headers", []) for item in ("--header", header)]
    arguments = ["--config", str(gate.config_path), "--method", method, "--url", url, *headers, "--json"]
    status, out = run_explain(capsys, arguments, token, tmp_path)
    return status, json.loads(out), out


def proxy_request(gate: DecisionGate, method: str, target: str, headers: list[tuple[str, str]]) -> RawResponse:
    lines = [f"{method} {target} HTTP/1.1", "Host: api.example.com", *(f"{n}: {v}" for n, v in headers)]
    return send_raw(gate.url, ("\r\n".join([*lines, "Connection: close"]) + "\r\n\r\n").encode())


@pytest.mark.parametrize(
    "path, claims, headers, exit_status, reason_id, failed_check, status",
    EXPLAIN_CASES.values(),
    ids=EXPLAIN_CASES.keys(),
)
def test_explain_agrees_with_live(
    decision_gate: DecisionGate,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    path: str,
    claims: dict | str | None,
    headers: list[str],
    exit_status: int,
    reason_id: str,
    failed_check: str | None,
    status: int,
) -> None:
    token = token_for(decision_gate, claims)
    method = "POST" if path == "/read-only" else "GET"
    url = "http://api.example.com" + path

    code, report, out = explain_json(decision_gate, capsys, tmp_path, url, token, method=method, headers=headers)

    decision = report["decision"]
    assert code == exit_status
    assert decision["reason_id"] == reason_id
    assert decision["status"] == status
    failed = [check["name"] for check in report["checks"] if check["result"] == "failed"]
    assert failed == ([failed_check] if failed_check else [])
    if token is not None:
        assert token not in out
        assert token.split(".")[2] not in out

    header_pairs = [tuple(part.strip() for part in header.split(":", 1)) for header in headers]
    sent = [*header_pairs, *(bearer(token) if token else [])]
    live = ask_as(traefik, decision_gate, path, method=method, headers=sent)
    proxied = proxy_request(decision_gate, method, path, sent)
    for response in (live, proxied):
        assert response.status == status
        assert response.header("www-authenticate") == ([decision["www_authenticate"]] if status in (401, 403) else [])
        if status != 200:
            assert json.loads(response.body)["reason"] == reason_id
            assert response.body.decode() == decision["body"]


def test_explain_names_unmatched_rules(
    decision_gate: DecisionGate, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url = "http://other.example.com/read-only"

    code, report, _ = explain_json(decision_gate, capsys, tmp_path, url, None, method="POST")

    assert code == 3
    routes = {route["id"]: route["failed"] for route in report["routes"]}
    assert routes["public"] == ["path"]
    assert routes["read-only"] == ["method", "host"]
    assert all(not route["matched"] for route in report["routes"])


def test_explain_allowed_lists_identity(
    decision_gate: DecisionGate, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    token = decision_gate.token(tenant="acme")

    code, report, _ = explain_json(decision_gate, capsys, tmp_path, "/admin/x?page=1", token)

    assert code == 0
    assert ["X-Gate-Subject", USERNAME] in report["decision"]["identity_headers"]
    assert ["X-Gate-Tenant", "acme"] in report["decision"]["identity_headers"]
    assert report["decision"]["upstream_url"] == decision_gate.upstream_url + "/admin/x?page=1"
    assert report["token"]["verified"] is True
    assert report["token"]["claims"]["sub"] == USERNAME
    assert report["token"]["header"]["kid"]
    revocation = next(check for check in report["checks"] if check["name"] == "revocation")
    assert revocation["result"] == "not checked"


def test_explain_text_output(decision_gate: DecisionGate, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    token = decision_gate.token()
    arguments = ["--config", str(decision_gate.config_path), "--url", "http://api.example.com/scoped"]

    code, out = run_explain(capsys, arguments, token, tmp_path)

    assert code == 3
    assert token not in out
    assert re.search(r"^  scoped +matched", out, re.MULTILINE)
    assert re.search(r"^  admin +no match: path", out, re.MULTILINE)
    assert "failed      scopes        insufficient_scope:" in out
    assert "not run     claims" in out
    assert "decision: DENIED  status 403  reason_id insufficient_scope" in out
    assert 'WWW-Authenticate: Bearer realm="gate", error="insufficient_scope"' in out


def test_explain_expired_names_part(
    decision_gate: DecisionGate, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    token = decision_gate.token(exp=int(time.time()) - 3600)

    _, report, _ = explain_json(decision_gate, capsys, tmp_path, "/admin", token)

    verification = next(check for check in report["checks"] if check["name"] == "verification")
    assert verification["failed_part"] == "time (exp)"
    assert report["token"]["verified"] is False
    assert report["token"]["claims"]["sub"] == USERNAME


def test_explain_redacts_authorization_header(
    decision_gate: DecisionGate, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    token = decision_gate.token()
    header = f"Authorization: Bearer {token}"

    code, report, out = explain_json(decision_gate, capsys, tmp_path, "/admin", None, headers=[header])

    assert code == 0
    assert token not in out
    assert ["authorization", "[redacted]"] in report["request"]["headers"]


USAGE_ERRORS = {
    "header without colon": ["--url", "/admin", "--header", "X-Env prod"],
    "relative URL": ["--url", "admin"],
    "missing token file": ["--url", "/admin", "--token-file", "/nonexistent/token"],
    "token twice": ["--url", "/admin", "--token", "abc", "--header", "Authorization: Bearer abc"],
}


@pytest.mark.parametrize("arguments", USAGE_ERRORS.values(), ids=USAGE_ERRORS.keys())
def test_explain_usage_error(
    decision_gate: DecisionGate, capsys: pytest.CaptureFixture[str], arguments: list[str]
) -> None:
    code = main(["explain", "--config", str(decision_gate.config_path), *arguments])

    assert code == 1
    assert capsys.readouterr().err.startswith("gate explain: ")


def test_explain_config_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "broken.yaml"
    config.write_text("issuer: x\nroutes: []\n")

    code = main(["explain", "--config", str(config), "--url", "/admin"])

    assert code == 1
    assert "signing_keys" in capsys.readouterr().err


def test_explain_fetches_remote_keys(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import yaml

    from gate.keys.generate import generate_private_key, write_private_key
    from tests.conftest import base_config
    from tests.jwks_server import JwksServer, claims_for, new_identity
    from tests.servers import running

    workload = new_identity("ci-key-1")
    jwks = JwksServer(keys=[workload.jwk()])
    write_private_key(generate_private_key("ES256"), tmp_path / "signing-key.pem")

    with running(jwks) as jwks_url:
        config = base_config("http://127.0.0.1:1", "http://127.0.0.1:2", "app-token")
        config["trusted_issuers"] = [
            {
                "issuer": jwks_url,
                "algorithms": ["ES256"],
                "audience": ["orders-api"],
                "keys": [{"jwks_uri": jwks_url + "/jwks.json"}],
            }
        ]
        orders = next(route for route in config["routes"] if route["id"] == "orders")
        orders["auth"]["issuers"] = [jwks_url]
        (tmp_path / "gate.yaml").write_text(yaml.safe_dump(config))
        token = workload.sign(claims_for(jwks_url))
        arguments = [
            "--config",
            str(tmp_path / "gate.yaml"),
            "--method",
            "GET",
            "--url",
            "http://api/orders/1",
            "--json",
        ]

        status, out = run_explain(capsys, arguments, token, tmp_path)

    report = json.loads(out)
    assert status == 0
    assert report["decision"]["reason_id"] == "token_accepted"
    assert report["key_sources"][0]["keys"] == 1
    assert jwks.fetches >= 1
    assert token not in out
