"""The authorize step: does a verified token meet a route's requirements?

The checks run in a fixed order, and the first failure is reported:

1. issuer: the token's ``iss`` is one of the allowed issuers (401 ``invalid_token``);
2. audience: its ``aud`` names any, or all, of the route's audiences (401 ``invalid_token``);
3. scopes: it grants every required scope (403 ``insufficient_scope`` with ``scope=``);
4. claims: each required claim has a required value (403);
5. policy: the route's CEL expression over ``claims`` and ``request`` is true (403).

RFC 6750 section 3.1 defines ``insufficient_scope`` as "the request requires
higher privileges than provided by the access token", so failed claims and
policies use it too, without a ``scope`` attribute. The ``reason`` field of the
JSON body distinguishes them.
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any, Literal

from cachetools import LRUCache

from gate.errors import BearerError
from gate.policy import Policy, PolicyEvaluationError, compile_policy, new_context
from gate.tokens.verifier import VerifiedToken

logger = logging.getLogger(__name__)

Mode = Literal["protected", "optional", "public"]
ClaimValue = str | int | bool


@dataclass(slots=True)
class RequestFacts:
    """The parts of a request that a policy may read."""

    method: str
    path: str
    host: str | None = None
    headers: Sequence[tuple[bytes, bytes]] = ()

    def as_policy_input(self, with_headers: bool) -> dict[str, Any]:
        facts: dict[str, Any] = {"method": self.method, "path": self.path, "host": self.host or ""}
        if with_headers:
            facts["headers"] = policy_headers(self.headers)
        return facts


@dataclass(frozen=True)
class Requirements:
    """The checks a token must pass for a route, or for an app behind the middleware."""

    mode: Mode = "protected"
    issuers: frozenset[str] = frozenset()
    audiences: frozenset[str] = frozenset()
    audience_match: Literal["any", "all"] = "any"
    scopes: frozenset[str] = frozenset()
    claims: Mapping[str, tuple[ClaimValue, ...]] = field(default_factory=dict)
    policy: Policy | None = None

    @classmethod
    def build(
        cls,
        *,
        issuers: Iterable[str],
        audience: Iterable[str],
        mode: Mode = "protected",
        audience_match: Literal["any", "all"] = "any",
        scopes: Iterable[str] = (),
        claims: Mapping[str, ClaimValue | list[ClaimValue]] | None = None,
        policy: str | None = None,
    ) -> Requirements:
        """Build requirements from plain values, compiling ``policy``.

        Raise ``ValueError`` when no issuer or audience is given, and
        ``PolicySyntaxError`` when the policy does not compile.
        """
        issuer_set, audience_set = frozenset(issuers), frozenset(audience)
        if not issuer_set or not audience_set:
            raise ValueError("requirements need at least one issuer and one audience")

        compiled = compile_policy(policy) if policy is not None else None
        values = {name: tuple(value) if isinstance(value, list) else (value,) for name, value in (claims or {}).items()}
        return cls(
            mode=mode,
            issuers=issuer_set,
            audiences=audience_set,
            audience_match=audience_match,
            scopes=frozenset(scopes),
            claims=MappingProxyType(values),
            policy=compiled,
        )

    @cached_property
    def steps(self) -> tuple[AuthorizeStep, ...]:
        """The steps of ``AUTHORIZE_STEPS`` that can reject a token here, chosen once per object.

        Issuer and audience always run; scopes when scopes are required,
        claims when claim values are, policy when there is a policy.
        """
        can_reject = {
            "issuer": True,
            "audience": True,
            "scopes": bool(self.scopes),
            "claims": bool(self.claims),
            "policy": self.policy is not None,
        }
        return tuple(step for name, step in AUTHORIZE_STEPS if can_reject[name])

    @cached_property
    def token_steps(self) -> tuple[AuthorizeStep, ...]:
        """The steps of ``steps`` that read only the token, every one but the policy step."""
        return tuple(step for step in self.steps if step is not _policy_step)


def policy_headers(headers: Sequence[tuple[bytes, bytes]]) -> dict[str, str]:
    """Return request headers for a policy: lower-case names, repeated values joined by ``", "``.

    ``Authorization`` is left out, so no policy input or policy error contains a token.
    """
    merged: dict[str, str] = {}
    for raw_name, raw_value in headers:
        name = raw_name.decode("latin-1").lower()
        if name == "authorization":
            continue
        value = raw_value.decode("latin-1")
        merged[name] = f"{merged[name]}, {value}" if name in merged else value
    return merged


def token_audiences(token: VerifiedToken) -> frozenset[str]:
    audience = token.claims.get("aud")
    if isinstance(audience, str):
        return frozenset((audience,))
    if isinstance(audience, list):
        return frozenset(value for value in audience if isinstance(value, str))
    return frozenset()


def token_scopes(token: VerifiedToken) -> frozenset[str]:
    """Return the scopes a token grants: its ``scope`` string (RFC 9068) or ``scp`` array."""
    scope = token.claims.get("scope")
    if isinstance(scope, str):
        return frozenset(scope.split())

    scp = token.claims.get("scp")
    if isinstance(scp, list):
        return frozenset(value for value in scp if isinstance(value, str))
    return frozenset()


def authorize(requirements: Requirements, token: VerifiedToken, request: RequestFacts) -> None:
    """Raise ``BearerError`` unless ``token`` meets ``requirements`` for ``request``.

    Runs ``requirements.steps``: a scopes, claims or policy step with
    nothing configured passes every token, so it is left out. The issuer,
    audience, scopes and claims steps read only the token, so a token that
    passed them for these requirements skips them the next time (the
    verified-token cache hands out the same token object, and a reload
    makes new requirements). A policy step reads the request and always runs.
    """
    passed = token.passed
    if passed.get(id(requirements)) is not requirements:
        for step in requirements.token_steps:
            step(requirements, token, request)
        passed[id(requirements)] = requirements  # kept, so that its id is not reused while the token lives

    if requirements.policy is not None:
        check_policy(requirements.policy, token, request)


def check_issuer(requirements: Requirements, token: VerifiedToken) -> None:
    if token.issuer not in requirements.issuers:
        raise BearerError("invalid_token", "The token's issuer is not accepted here.", reason_id="issuer_not_allowed")


def check_audience(requirements: Requirements, token: VerifiedToken) -> None:
    audiences = token_audiences(token)
    if requirements.audience_match == "all":
        accepted = requirements.audiences <= audiences
    else:
        accepted = not requirements.audiences.isdisjoint(audiences)

    if not accepted:
        raise BearerError(
            "invalid_token", "The token is not meant for this API (audience mismatch).", reason_id="audience_mismatch"
        )


def check_scopes(requirements: Requirements, token: VerifiedToken) -> None:
    missing = requirements.scopes - token_scopes(token)
    if missing:
        raise BearerError(
            "insufficient_scope",
            "The token lacks a scope this request requires.",
            reason_id="insufficient_scope",
            status=403,
            scope=" ".join(sorted(requirements.scopes)),
        )


def check_claims(requirements: Requirements, token: VerifiedToken) -> None:
    """Require each configured claim to equal one of its values, or to be an array holding one."""
    for name, accepted in requirements.claims.items():
        value = token.claims.get(name)
        values = value if isinstance(value, list) else [value]
        if not any(_same_claim_value(item, wanted) for item in values for wanted in accepted):
            raise BearerError(
                "insufficient_scope",
                f"The token's '{name}' claim does not have a required value.",
                reason_id="claim_mismatch",
                status=403,
            )


def _same_claim_value(value: object, wanted: ClaimValue) -> bool:
    # bool is a subclass of int in Python, but true and 1 are different JSON values.
    return type(value) is type(wanted) and value == wanted


def check_policy(policy: Policy, token: VerifiedToken, request: RequestFacts) -> None:
    try:
        context = _claims_context(token)
        context.add_variable("request", request.as_policy_input(with_headers=policy.reads("headers")))
        allowed = policy.evaluate(context)
    except (PolicyEvaluationError, ValueError, TypeError, OverflowError) as error:
        logger.warning("policy evaluation failed", extra={"event": "policy_error", "error": str(error)})
        allowed = False
        reason_id = "policy_error"
    else:
        reason_id = "policy_denied"

    if not allowed:
        raise BearerError(
            "insufficient_scope", "The request does not satisfy this route's policy.", reason_id=reason_id, status=403
        )


def _issuer_step(requirements: Requirements, token: VerifiedToken, _request: RequestFacts) -> None:
    check_issuer(requirements, token)


def _audience_step(requirements: Requirements, token: VerifiedToken, _request: RequestFacts) -> None:
    check_audience(requirements, token)


def _scopes_step(requirements: Requirements, token: VerifiedToken, _request: RequestFacts) -> None:
    check_scopes(requirements, token)


def _claims_step(requirements: Requirements, token: VerifiedToken, _request: RequestFacts) -> None:
    check_claims(requirements, token)


def _policy_step(requirements: Requirements, token: VerifiedToken, request: RequestFacts) -> None:
    if requirements.policy is not None:
        check_policy(requirements.policy, token, request)


AuthorizeStep = Callable[[Requirements, VerifiedToken, RequestFacts], None]

AUTHORIZE_STEPS: tuple[tuple[str, AuthorizeStep], ...] = (
    ("issuer", _issuer_step),
    ("audience", _audience_step),
    ("scopes", _scopes_step),
    ("claims", _claims_step),
    ("policy", _policy_step),
)
"""The authorize checks by name, in the order ``authorize`` runs them; ``gate explain`` runs them one by one."""


# Converting claims into CEL values costs more than evaluating a policy, so the
# converted claims of a verified token are kept while the token object lives.
# The verified-token cache returns the same object for a repeated token.
_CONTEXTS: LRUCache[int, tuple[weakref.ref[VerifiedToken], Any]] = LRUCache(maxsize=4096)


def _claims_context(token: VerifiedToken) -> Any:
    cached = _CONTEXTS.get(id(token))
    if cached is not None and cached[0]() is token:
        return cached[1]

    context = new_context({"claims": token.claims})
    with contextlib.suppress(TypeError):  # a token type without weak references is not cached
        _CONTEXTS[id(token)] = (weakref.ref(token), context)
    return context
