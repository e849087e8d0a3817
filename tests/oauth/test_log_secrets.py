"""No credential or issued token reaches a log record in any token, introspection or revocation flow."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest

from gate.logs import JsonFormatter, KeyValueFormatter, record_fields
from tests.oauth.conftest import ALL_SECRETS, SECRET_A, SECRET_CLIENT, OAuthGate, basic_header
from tests.oauth.test_token_cases import GRANTED, PAIR, REJECTED, send


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def captured() -> Iterator[Capture]:
    """Every log record of every logger, at every level, while the test runs."""
    handler = Capture()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


def rendered(record: logging.LogRecord) -> list[str]:
    """The record as both of gate's formatters write it, and each field's ``repr``."""
    texts = [KeyValueFormatter("%(message)s").format(record), JsonFormatter().format(record)]
    texts.extend(repr(value) for value in record_fields(record).values())
    return texts


def run_every_flow(oauth_gate: OAuthGate) -> list[str]:
    """Send every token case, then introspect and revoke; return the tokens issued."""
    issued = []
    for case in [*GRANTED.values(), *REJECTED.values()]:
        response = send(oauth_gate, case)
        if response.status_code == 200:
            issued.append(response.json()["access_token"])

    basic = {"Authorization": basic_header(SECRET_CLIENT, SECRET_A)}
    for token in issued[:3]:
        httpx.post(oauth_gate.introspection_url, data={"token": token}, headers=basic)
        httpx.get(oauth_gate.url + "/orders/1", headers={"Authorization": f"Bearer {token}"})
    httpx.post(
        oauth_gate.introspection_url, data={"token": issued[0], "client_id": SECRET_CLIENT, "client_secret": "x"}
    )
    httpx.post(oauth_gate.revocation_url, data={"token": issued[0]}, headers=basic)
    httpx.post(oauth_gate.revocation_url, data={"token": issued[1], "client_id": SECRET_CLIENT, "client_secret": "x"})
    httpx.get(oauth_gate.url + "/orders/1", headers={"Authorization": f"Bearer {issued[0]}"})
    return issued


def test_no_secret_in_any_log_record(oauth_gate: OAuthGate, captured: Capture) -> None:
    issued = run_every_flow(oauth_gate)
    basic_values = [basic_header(SECRET_CLIENT, SECRET_A).split(" ", 1)[1]]
    forbidden = [*ALL_SECRETS, PAIR, PAIR.rstrip("="), *basic_values, *issued]

    texts = [text for record in captured.records for text in rendered(record)]

    assert len(issued) == len(GRANTED)
    token_decisions = [record for record in captured.records if getattr(record, "event", None) == "token_decision"]
    assert len(token_decisions) == len(GRANTED) + len(REJECTED)
    for secret in forbidden:
        leaking = [text for text in texts if secret in text]
        assert not leaking, f"a log record contains a credential or token: {leaking[:1]}"


def test_every_flow_logged_once_with_fields(oauth_gate: OAuthGate, captured: Capture) -> None:
    run_every_flow(oauth_gate)

    events = [record for record in captured.records if getattr(record, "event", "").endswith("_decision")]
    kinds = {record.event for record in events}

    assert kinds == {"token_decision", "introspection_decision", "revocation_decision", "proxy_decision"}
    for record in events:
        if record.event != "proxy_decision":
            assert {"client_id", "credential_form", "subject", "granted", "reason_id", "status"} <= set(
                record_fields(record)
            )
