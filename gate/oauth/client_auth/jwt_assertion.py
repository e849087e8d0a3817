"""Client authentication with a JWT assertion (RFC 7523 section 2.2 and 3).

Two kinds of assertion, chosen per client:

- ``private_key_jwt``: the client signs the JWT with its own key. ``iss`` and
  ``sub`` equal the client id, and ``aud`` names gate's issuer or token
  endpoint URL. Both come from the config, never from the Host header.
- federated workload identity: a token of a trusted issuer (a Kubernetes
  service-account token, a CI system's OIDC token); ``iss`` is that issuer
  exactly, ``sub`` names the workload and ``aud`` contains the audience the
  client configures for that issuer.

The assertion comes as ``client_assertion`` with ``client_assertion_type``
set to the JWT bearer type, or as ``client_secret`` for clients that can only
send a password (there the type is optional). ``exp`` must lie strictly in
the future; ``nbf`` and ``iat`` allow the configured leeway. A ``jti`` is
recorded only after signature and claims passed, keyed on the issuer and the
``jti``, never on the token string, which could be re-encoded.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from gate.config.snapshot import Client, Snapshot
from gate.errors import OAuthError
from gate.keys.issuers import IssuerPolicy, TrustedIssuer
from gate.oauth.client_auth.assertion_rules import ClientAssertionRules, FederatedRule
from gate.oauth.form import invalid_request
from gate.policy import PolicyEvaluationError
from gate.state import SharedState
from gate.state.base import SharedStateUnavailableError
from gate.tokens.claims import TokenRejected, check_claims
from gate.tokens.jws import read_header, unverified_issuer, verify_signature

logger = logging.getLogger(__name__)

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_JWT_SHAPE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\Z")


@dataclass(frozen=True)
class AssertionIdentity:
    """The client and subject a verified assertion authenticates, with its claims."""

    kind: Literal["private_key_jwt", "federated"]
    client: Client
    subject: str
    issuer: str
    claims: dict[str, Any]


def _invalid_client(description: str, reason_id: str) -> OAuthError:
    return OAuthError("invalid_client", description, reason_id=reason_id, status=401)


def looks_like_jwt(value: str | None) -> bool:
    return value is not None and value.startswith("eyJ") and bool(_JWT_SHAPE.match(value))


class JwtAssertionAuth:
    """The ``private_key_jwt`` and federated client authentication method."""

    name = "jwt_assertion"

    def applies(self, form: Mapping[str, str]) -> bool:
        """Tell whether the request carries a JWT assertion, so that no other method should judge it."""
        return (
            "client_assertion" in form or "client_assertion_type" in form or looks_like_jwt(form.get("client_secret"))
        )

    async def authenticate(self, snapshot: Snapshot, form: Mapping[str, str], state: SharedState) -> AssertionIdentity:
        """Verify the assertion in ``form`` and return the identity it proves; raise ``OAuthError`` otherwise."""
        assertion = _assertion_of(form)
        header = _read_header(assertion)
        claimed_issuer = _claimed_issuer(assertion)
        client, rules = _client_and_rules(snapshot, form, assertion)

        kind, issuer, federated = _issuer_for(snapshot, rules, claimed_issuer)
        claims = await _verify(assertion, header, issuer, _policy(snapshot, rules, issuer, kind, federated))
        subject = _subject(kind, client, claims, federated)
        _check_client_policy(rules, claims, form)

        if kind == "private_key_jwt" or issuer.policy.single_use_assertions:
            await _record_jti(state, kind, issuer.issuer, claims)
        return AssertionIdentity(kind=kind, client=client, subject=subject, issuer=issuer.issuer, claims=claims)


def _assertion_of(form: Mapping[str, str]) -> str:
    assertion_type = form.get("client_assertion_type")
    if assertion_type is not None and assertion_type != ASSERTION_TYPE:
        raise invalid_request(f"The client_assertion_type must be {ASSERTION_TYPE}.", "unsupported_assertion_type")

    assertion = form.get("client_assertion")
    secret = form.get("client_secret")
    if assertion is not None and secret is not None:
        raise invalid_request("Send either client_assertion or client_secret, not both.", "several_credentials")
    if assertion is None and looks_like_jwt(secret):
        assertion = secret

    if not assertion:
        raise invalid_request("The 'client_assertion' parameter is missing.", "missing_client_assertion")
    if assertion_type is None and form.get("client_assertion") is not None:
        raise invalid_request("The 'client_assertion_type' parameter is missing.", "missing_assertion_type")
    return assertion


def _read_header(assertion: str) -> dict[str, Any]:
    try:
        return read_header(assertion)
    except TokenRejected as rejection:
        raise _invalid_client(rejection.description, rejection.reason_id) from None


def _claimed_issuer(assertion: str) -> str:
    try:
        return unverified_issuer(assertion)
    except TokenRejected as rejection:
        raise _invalid_client(rejection.description, rejection.reason_id) from None


def _client_and_rules(
    snapshot: Snapshot, form: Mapping[str, str], assertion: str
) -> tuple[Client, ClientAssertionRules]:
    client_id = form.get("client_id")
    if not client_id:
        # RFC 7521 section 4.2: client_id is optional; a private_key_jwt assertion names the client in iss.
        client_id = _claimed_issuer(assertion)

    client = snapshot.clients.get(client_id)
    if client is None:
        raise _invalid_client("Client authentication failed.", "unknown_client")

    rules = snapshot.client_assertions.get(client_id)
    if rules is None:
        raise OAuthError(
            "unauthorized_client",
            "This client may not authenticate with a JWT assertion.",
            reason_id="assertion_not_allowed",
        )
    return client, rules


def _issuer_for(
    snapshot: Snapshot, rules: ClientAssertionRules, claimed: str
) -> tuple[Literal["private_key_jwt", "federated"], TrustedIssuer, FederatedRule | None]:
    if rules.private_key_jwt is not None and claimed == rules.client_id:
        return "private_key_jwt", rules.private_key_jwt, None

    federated = rules.federated.get(claimed)
    issuer = snapshot.key_store.get(claimed) if federated is not None else None
    if federated is None or issuer is None:
        raise _invalid_client("The assertion's issuer is not accepted for this client.", "assertion_issuer_not_allowed")
    return "federated", issuer, federated


def _policy(
    snapshot: Snapshot,
    rules: ClientAssertionRules,
    issuer: TrustedIssuer,
    kind: str,
    federated: FederatedRule | None,
) -> IssuerPolicy:
    """Return the claim rules of this assertion: the issuer's, with the client's audience and lifetime."""
    if federated is None:
        base = snapshot.config.issuer
        audiences: tuple[str, ...] = (base, base.rstrip("/") + snapshot.config.token_path)
        required: tuple[str, ...] = issuer.policy.required_claims
    else:
        audiences = (federated.audience,)
        jti = ("jti",) if issuer.policy.single_use_assertions else ()
        required = (*issuer.policy.required_claims, "sub", *jti)

    lifetimes = [value for value in (rules.max_lifetime, issuer.policy.max_token_lifetime) if value is not None]
    return IssuerPolicy(
        algorithms=issuer.policy.algorithms,
        audiences=audiences,
        audience_match="any",
        leeway=rules.leeway,
        required_claims=required,
        max_token_lifetime=min(lifetimes),
        token_type=issuer.policy.token_type,
        single_use_assertions=kind == "private_key_jwt" or issuer.policy.single_use_assertions,
    )


async def _verify(
    assertion: str, header: dict[str, Any], issuer: TrustedIssuer, policy: IssuerPolicy
) -> dict[str, Any]:
    def only_this_issuer(name: str) -> TrustedIssuer | None:
        return issuer if name == issuer.issuer else None

    try:
        signed = await verify_signature(assertion, only_this_issuer, header=header)
        # RFC 7523 section 3: exp must not have passed, so no leeway applies to it here.
        check_claims(signed.claims, policy, time.time(), exp_leeway=0)
    except TokenRejected as rejection:
        raise _invalid_client(
            f"The client assertion is invalid: {rejection.description}", rejection.reason_id
        ) from None
    return signed.claims


def _subject(kind: str, client: Client, claims: Mapping[str, Any], federated: FederatedRule | None) -> str:
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise _invalid_client("The client assertion has no 'sub' claim.", "missing_claim")

    if federated is None:
        if subject != client.client_id:
            raise _invalid_client(
                "The assertion's iss and sub must both be the client id.", "assertion_subject_mismatch"
            )
        return client.client_id

    if not federated.accepts_subject(subject):
        raise _invalid_client("This workload may not use this client.", "workload_not_allowed")
    return federated.output_subject(subject, client.client_id)


def _check_client_policy(rules: ClientAssertionRules, claims: Mapping[str, Any], form: Mapping[str, str]) -> None:
    """Evaluate the client's policy expression over the verified claims and the request."""
    if rules.policy is None:
        return

    context = {
        "claims": dict(claims),
        "client_id": rules.client_id,
        "grant_type": form.get("grant_type"),
        "scopes": form.get("scope", "").split(),
    }
    try:
        allowed = rules.policy.evaluate(context)
    except PolicyEvaluationError as error:
        logger.warning(
            "client policy failed to evaluate",
            extra={"event": "policy_error", "client_id": rules.client_id, "error": str(error)},
        )
        allowed = False

    if not allowed:
        raise OAuthError(
            "unauthorized_client", "The client's policy rejected this assertion.", reason_id="policy_denied"
        )


async def _record_jti(state: SharedState, kind: str, issuer: str, claims: Mapping[str, Any]) -> None:
    """Record the ``jti`` until the assertion expires; a second use is a replay."""
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise _invalid_client("The client assertion has no 'jti' claim.", "missing_claim")

    namespace = "client" if kind == "private_key_jwt" else "issuer"
    ttl = max(float(claims["exp"]) - time.time(), 1.0)
    try:
        first_use = await state.add_if_absent(f"jti:{namespace}:{issuer}:{jti}", ttl)
    except SharedStateUnavailableError:
        logger.error("cannot record an assertion jti; the shared state is unavailable", extra={"issuer": issuer})
        raise OAuthError(
            "temporarily_unavailable",
            "The server cannot check assertions for replay right now; retry later.",
            reason_id="replay_store_unavailable",
            status=503,
        ) from None

    if not first_use:
        raise _invalid_client("The client assertion was already used.", "assertion_replayed")
