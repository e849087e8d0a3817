"""CEL policies: compile errors with positions, strict boolean results."""

from __future__ import annotations

import pytest

from gate.policy import PolicyEvaluationError, PolicySyntaxError, compile_policy, new_context

CLAIMS = {"iss": "https://gate.test", "sub": "ci-deployer", "aud": ["a", "b"], "scope": "x y", "exp": 1700000000}
REQUEST = {"method": "POST", "path": "/orders/1", "headers": {"x-env": "prod"}}

EVALUATION_CASES = {
    "three clauses true": ('claims.sub.startsWith("ci-") && request.method in ["GET", "POST"] && claims.exp > 0', True),
    "false clause": ('claims.iss == "https://elsewhere"', False),
    "array macro": ('claims.aud.exists(a, a == "b")', True),
    "has on missing claim": ("has(claims.tenant)", False),
    "header lookup": ('request.headers["x-env"] == "prod"', True),
    "header membership": ('"x-other" in request.headers', False),
}


@pytest.mark.parametrize("source, expected", EVALUATION_CASES.values(), ids=EVALUATION_CASES.keys())
def test_policy_evaluates(source: str, expected: bool) -> None:
    policy = compile_policy(source)

    assert policy.evaluate({"claims": CLAIMS, "request": REQUEST}) is expected


ERROR_CASES = {
    "missing claim": 'claims.tenant == "acme"',
    "type mismatch": 'claims.exp > "soon"',
    "non-boolean result": "claims.sub",
    "unknown function": "claims.sub.shout()",
    "unknown variable": "grant_type == 'x'",
}


@pytest.mark.parametrize("source", ERROR_CASES.values(), ids=ERROR_CASES.keys())
def test_policy_evaluation_error(source: str) -> None:
    policy = compile_policy(source)

    with pytest.raises(PolicyEvaluationError):
        policy.evaluate({"claims": CLAIMS, "request": REQUEST})


def test_syntax_error_position() -> None:
    with pytest.raises(PolicySyntaxError) as caught:
        compile_policy('claims.sub == "a" &&\n  && request.method == "GET"')

    assert caught.value.line == 2
    assert caught.value.column == 3
    assert "line 2, column 3 of the expression" in str(caught.value)


@pytest.mark.parametrize("source", ["", "   ", "x" * 5000], ids=["empty", "blank", "too long"])
def test_unusable_source_rejected(source: str) -> None:
    with pytest.raises(PolicySyntaxError):
        compile_policy(source)


def test_context_reused_across_requests() -> None:
    policy = compile_policy('claims.sub == "ci-deployer" && request.method == "GET"')
    context = new_context({"claims": CLAIMS})

    context.add_variable("request", {"method": "GET"})
    first = policy.evaluate(context)
    context.add_variable("request", {"method": "PUT"})
    second = policy.evaluate(context)

    assert first is True
    assert second is False


def test_token_endpoint_style_policy() -> None:
    """The same API serves a client policy over assertion claims and the token request."""
    policy = compile_policy(
        'claims.iss == "https://ci.example" && grant_type == "client_credentials" && "deploy" in scopes'
    )

    allowed = policy.evaluate(
        {
            "claims": {"iss": "https://ci.example"},
            "client_id": "c",
            "grant_type": "client_credentials",
            "scopes": ["deploy"],
        }
    )

    assert allowed is True
    assert policy.variables >= {"claims", "grant_type", "scopes"}
