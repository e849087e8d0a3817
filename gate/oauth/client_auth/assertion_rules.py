"""The compiled per-client rules for JWT assertions (RFC 7523 client authentication)."""

from __future__ import annotations

from dataclasses import dataclass, field

from gate.keys.issuers import TrustedIssuer
from gate.policy import Policy

DEFAULT_SUBJECT_TEMPLATE = "{issuer}#{sub}"


@dataclass(frozen=True)
class FederatedRule:
    """The tokens of one trusted issuer that authenticate a client, and the subject they map to.

    The default template ``{issuer}#{sub}`` cannot map two issuers' subjects
    to one value, because trusted issuer identifiers contain no ``#``.
    """

    issuer: str
    audience: str
    subjects: frozenset[str]
    subject_template: str = DEFAULT_SUBJECT_TEMPLATE

    def accepts_subject(self, subject: str) -> bool:
        return "*" in self.subjects or subject in self.subjects

    def output_subject(self, subject: str, client_id: str) -> str:
        return self.subject_template.format(issuer=self.issuer, sub=subject, client_id=client_id)


@dataclass(frozen=True)
class ClientAssertionRules:
    """The JWT assertion rules of one client."""

    client_id: str
    private_key_jwt: TrustedIssuer | None
    federated: dict[str, FederatedRule] = field(default_factory=dict)
    max_lifetime: int = 3600
    leeway: int = 60
    # The client's CEL policy over the variables claims, client_id, grant_type and scopes.
    policy: Policy | None = None
