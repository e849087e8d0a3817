"""The authorize steps a route runs: a step with nothing configured is left out, and the outcome is the same."""

from __future__ import annotations

import time
from typing import Any

import pytest

from gate.errors import BearerError
from gate.proxy.authorize import AUTHORIZE_STEPS, RequestFacts, Requirements, authorize
from gate.tokens.verifier import VerifiedToken

BASE: dict[str, Any] = {"issuers": ["https://gate.test"], "audience": ["api"]}
STEP_NAMES = {step: name for name, step in AUTHORIZE_STEPS}

REQUIREMENTS = {
    "issuer and audience only": ({}, ["issuer", "audience"]),
    "scopes": ({"scopes": ["read"]}, ["issuer", "audience", "scopes"]),
    "claims": ({"claims": {"tier": "gold"}}, ["issuer", "audience", "claims"]),
    "policy": ({"policy": "request.method == 'GET'"}, ["issuer", "audience", "policy"]),
    "everything": (
        {"scopes": ["read"], "claims": {"tier": "gold"}, "policy": "true"},
        ["issuer", "audience", "scopes", "claims", "policy"],
    ),
}


def token(**claims: Any) -> VerifiedToken:
    return VerifiedToken(
        claims={"aud": "api", **claims}, issuer="https://gate.test", kid=None, expires_at=time.time() + 60
    )


def run_every_step(requirements: Requirements, verified: VerifiedToken, facts: RequestFacts) -> None:
    for _name, step in AUTHORIZE_STEPS:
        step(requirements, verified, facts)


def outcome(check: Any, requirements: Requirements, verified: VerifiedToken, facts: RequestFacts) -> str:
    try:
        check(requirements, verified, facts)
    except BearerError as error:
        return error.reason_id
    return "granted"


@pytest.mark.parametrize(("extra", "expected"), REQUIREMENTS.values(), ids=REQUIREMENTS.keys())
def test_steps_left_out_are_those_with_nothing_configured(extra: dict[str, Any], expected: list[str]) -> None:
    requirements = Requirements.build(**BASE, **extra)

    assert [STEP_NAMES[step] for step in requirements.steps] == expected


TOKENS = {
    "bare token": token(),
    "scoped gold token": token(scope="read", tier="gold"),
    "wrong audience": token(aud="other", scope="read", tier="gold"),
    "silver tier": token(scope="read", tier="silver"),
}


@pytest.mark.parametrize("verified", TOKENS.values(), ids=TOKENS.keys())
@pytest.mark.parametrize("extra", [extra for extra, _ in REQUIREMENTS.values()], ids=REQUIREMENTS.keys())
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_authorize_decides_as_every_step_would(extra: dict[str, Any], verified: VerifiedToken, method: str) -> None:
    requirements = Requirements.build(**BASE, **extra)
    facts = RequestFacts(method, "/x")

    assert outcome(authorize, requirements, verified, facts) == outcome(run_every_step, requirements, verified, facts)


def test_passed_token_still_gets_each_requests_policy() -> None:
    requirements = Requirements.build(**BASE, policy="request.method == 'GET'")
    verified = token()

    first = outcome(authorize, requirements, verified, RequestFacts("GET", "/x"))
    second = outcome(authorize, requirements, verified, RequestFacts("POST", "/x"))

    assert first == "granted"
    assert second == "policy_denied"


def test_passed_token_checked_against_other_requirements() -> None:
    verified = token(scope="read")
    api = Requirements.build(**BASE)
    admin = Requirements.build(issuers=BASE["issuers"], audience=["admin"], scopes=["write"])

    assert outcome(authorize, api, verified, RequestFacts("GET", "/x")) == "granted"
    assert outcome(authorize, admin, verified, RequestFacts("GET", "/x")) == "audience_mismatch"
    assert outcome(authorize, api, verified, RequestFacts("GET", "/x")) == "granted"


def test_rejected_token_rejected_again() -> None:
    requirements = Requirements.build(**BASE, scopes=["write"])
    verified = token(scope="read")

    for _ in range(2):
        assert outcome(authorize, requirements, verified, RequestFacts("GET", "/x")) == "insufficient_scope"
