"""JWT assertions at the token endpoint (RFC 7523), against gate under uvicorn.

One named test per known attack; the attacks of the assertion flow never get
an access token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import yaml
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gate.app import create_app
from gate.config.compile import load_snapshot
from gate.errors import ConfigError
from gate.keys.generate import generate_private_key, write_private_key
from gate.logs import record_fields
from gate.oauth.app_tokens import generate_app_token
from tests.conftest import AUDIENCE, base_config
from tests.jwks_server import JwksServer, SigningIdentity, new_identity
from tests.keys.certificates import write_certificate
from tests.servers import RecordingUpstream, free_port, running

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
PKJWT_CLIENT = "billing-service"
FEDERATED_CLIENT = "ci-deployer"
WORKLOAD = "repo:shop/orders:ref:refs/heads/main"
CI_AUDIENCE = "gate-ci"
TOKEN_PATH = "/application/o/token/"
ATTACKER_RSA = new_identity("attacker", "RS256")
ATTACKER_EC = new_identity("attacker")


@dataclass
class Setup:
    url: str
    client_key: SigningIdentity
    ci: SigningIdentity
    ci_issuer: str
    cluster: SigningIdentity
    cluster_issuer: str
    jwks: JwksServer
    upstream: RecordingUpstream

    @property
    def token_url(self) -> str:
        return self.url + TOKEN_PATH


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    directory: Path = tmp_path_factory.mktemp("assertions")
    write_private_key(generate_private_key("ES256"), directory / "signing-key.pem")
    client_key = new_identity("billing-2026", "RS256")
    public_pem = client_key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (directory / "billing.pub").write_bytes(public_pem)
    ci, cluster = new_identity("ci-1"), new_identity("cluster-1")
    cluster_issuer = "https://kubernetes.default.svc.cluster.local"
    jwks = JwksServer(keys=[ci.jwk()])
    upstream = RecordingUpstream()

    with running(jwks) as jwks_url, running(upstream) as upstream_url:
        jwks.base_url = jwks_url
        port = free_port()
        config = base_config(f"http://127.0.0.1:{port}", upstream_url, generate_app_token())
        config["trusted_issuers"] = [
            {"issuer": jwks_url, "algorithms": ["ES256"], "keys": [{"jwks_uri": jwks_url + "/jwks.json"}]},
            {
                "issuer": cluster_issuer,
                "algorithms": ["ES256"],
                "keys": [{"jwks": {"keys": [cluster.jwk()]}}],
                "single_use_assertions": False,
            },
        ]
        config["clients"] += [
            {
                "client_id": PKJWT_CLIENT,
                "audience": [AUDIENCE],
                "jwt_assertion": {
                    "private_key_jwt": {"keys": [{"public_key_file": "billing.pub"}], "algorithms": ["RS256"]},
                },
            },
            {
                "client_id": FEDERATED_CLIENT,
                "audience": [AUDIENCE],
                "jwt_assertion": {
                    "max_lifetime": 900,
                    "policy": f'!(claims.iss == "{cluster_issuer}" && claims.sub == "{BLOCKED_WORKLOAD}")',
                    "federated": [
                        {"issuer": jwks_url, "audience": CI_AUDIENCE, "subjects": [WORKLOAD]},
                        {"issuer": cluster_issuer, "audience": CI_AUDIENCE, "subjects": ["*"]},
                    ],
                },
            },
        ]
        (directory / "gate.yaml").write_text(yaml.safe_dump(config))

        with running(create_app(load_snapshot(directory / "gate.yaml")), port) as url:
            yield Setup(url, client_key, ci, jwks_url, cluster, cluster_issuer, jwks, upstream)


BLOCKED_WORKLOAD = "system:serviceaccount:batch:untrusted"


def pkjwt_claims(setup: Setup, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": PKJWT_CLIENT,
        "sub": PKJWT_CLIENT,
        "aud": setup.token_url,
        "iat": now,
        "exp": now + 60,
        "jti": base64.urlsafe_b64encode(hashlib.sha256(str(time.perf_counter_ns()).encode()).digest()).decode(),
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


def ci_claims(setup: Setup, **overrides: Any) -> dict[str, Any]:
    claims = pkjwt_claims(setup, iss=setup.ci_issuer, sub=WORKLOAD, aud=CI_AUDIENCE)
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


def post_assertion(setup: Setup, assertion: str, client_id: str | None = PKJWT_CLIENT, **extra: str) -> httpx.Response:
    form = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}
    if client_id is not None:
        form["client_id"] = client_id
    form.update(extra)
    return httpx.post(setup.token_url, data=form)


class DecisionRecorder(logging.Handler):
    """Keeps the reason_id of every token decision gate logs."""

    def __init__(self) -> None:
        super().__init__()
        self.reasons: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "event", None) == "token_decision":
            self.reasons.append(record.reason_id)  # type: ignore[attr-defined]


DECISIONS = DecisionRecorder()


@pytest.fixture(scope="module", autouse=True)
def record_decisions() -> Iterator[None]:
    endpoint_logger = logging.getLogger("gate.oauth.decision")
    endpoint_logger.addHandler(DECISIONS)
    yield
    endpoint_logger.removeHandler(DECISIONS)


def assert_rejected(response: httpx.Response, reason: str, status: int = 401, error: str = "invalid_client") -> None:
    assert response.status_code == status
    assert response.json()["error"] == error
    assert "access_token" not in response.json()
    assert response.headers["cache-control"] == "no-store"
    assert DECISIONS.reasons[-1] == reason


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_private_key_jwt_with_authlib_succeeds(setup: Setup) -> None:
    pem = setup.client_key.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    session = OAuth2Session(PKJWT_CLIENT, pem.decode(), token_endpoint_auth_method=PrivateKeyJWT(setup.token_url))

    token = session.fetch_token(setup.token_url, grant_type="client_credentials")
    response = httpx.get(setup.url + "/orders/7", headers={"Authorization": f"Bearer {token['access_token']}"})

    assert token["token_type"] == "Bearer"
    assert response.status_code == 200
    assert setup.upstream.received[-1].header("x-gate-subject") == [PKJWT_CLIENT]


def test_private_key_jwt_without_client_id(setup: Setup) -> None:
    assertion = setup.client_key.sign(pkjwt_claims(setup))

    response = post_assertion(setup, assertion, client_id=None)

    assert response.status_code == 200
    assert jwt.decode(response.json()["access_token"], options={"verify_signature": False})["sub"] == PKJWT_CLIENT


def test_private_key_jwt_audience_may_be_issuer(setup: Setup) -> None:
    assertion = setup.client_key.sign(pkjwt_claims(setup, aud=setup.url))

    assert post_assertion(setup, assertion).status_code == 200


CREDENTIAL_FORMS = {
    "client_assertion": lambda token: {"client_assertion_type": ASSERTION_TYPE, "client_assertion": token},
    "client_secret with type": lambda token: {"client_assertion_type": ASSERTION_TYPE, "client_secret": token},
    "client_secret without type": lambda token: {"client_secret": token},
}


@pytest.mark.parametrize("make_form", CREDENTIAL_FORMS.values(), ids=CREDENTIAL_FORMS.keys())
def test_federated_assertion_forms(setup: Setup, make_form: Any) -> None:
    form = {
        "grant_type": "client_credentials",
        "client_id": FEDERATED_CLIENT,
        **make_form(setup.ci.sign(ci_claims(setup))),
    }

    response = httpx.post(setup.token_url, data=form)
    claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})

    assert response.status_code == 200
    assert claims["sub"] == f"{setup.ci_issuer}#{WORKLOAD}"
    assert claims["client_id"] == FEDERATED_CLIENT


def test_federated_subjects_of_issuers_differ(setup: Setup) -> None:
    from_ci = post_assertion(setup, setup.ci.sign(ci_claims(setup)), FEDERATED_CLIENT)
    cluster_claims = ci_claims(setup, iss=setup.cluster_issuer)
    from_cluster = post_assertion(setup, setup.cluster.sign(cluster_claims), FEDERATED_CLIENT)

    ci_subject = jwt.decode(from_ci.json()["access_token"], options={"verify_signature": False})["sub"]
    cluster_subject = jwt.decode(from_cluster.json()["access_token"], options={"verify_signature": False})["sub"]

    assert from_ci.status_code == 200
    assert from_cluster.status_code == 200
    assert ci_subject != cluster_subject
    assert cluster_subject == f"{setup.cluster_issuer}#{WORKLOAD}"


@pytest.mark.parametrize("algorithm", ["none", "None", "NONE", "nOnE"])
def test_alg_none_rejected(setup: Setup, algorithm: str) -> None:
    header = b64(json.dumps({"alg": algorithm, "typ": "JWT"}).encode())
    payload = b64(json.dumps(pkjwt_claims(setup)).encode())

    for signature in ("", b64(b"x")):
        assert_rejected(post_assertion(setup, f"{header}.{payload}.{signature}"), "alg_none")


def test_hmac_signed_with_public_key_rejected(setup: Setup) -> None:
    public_pem = setup.client_key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64(json.dumps(pkjwt_claims(setup)).encode())
    signature = b64(hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest())

    assert_rejected(post_assertion(setup, f"{header}.{payload}.{signature}"), "algorithm_not_allowed")


def header_key_material(setup: Setup, attacker: SigningIdentity, tmp_path: Path) -> dict[str, dict[str, Any]]:
    certificate = write_certificate(attacker.private_key, tmp_path / "attacker.crt").read_bytes()
    x5c = base64.b64encode(x509.load_pem_x509_certificate(certificate).public_bytes(serialization.Encoding.DER))
    return {
        "jwk": {"jwk": attacker.jwk()},
        "jku": {"jku": setup.jwks.base_url + "/attacker-jwks.json"},
        "x5u": {"x5u": setup.jwks.base_url + "/attacker.crt"},
        "x5c": {"x5c": [x5c.decode()]},
    }


@pytest.mark.parametrize("member", ["jwk", "jku", "x5u", "x5c"])
@pytest.mark.parametrize("kid", [None, "attacker"])
def test_header_supplied_key_rejected(setup: Setup, member: str, kid: str | None, tmp_path: Path) -> None:
    headers = header_key_material(setup, ATTACKER_RSA, tmp_path)[member]

    assertion = ATTACKER_RSA.sign(pkjwt_claims(setup), kid=kid, **headers)
    federated = ATTACKER_EC.sign(ci_claims(setup), kid=kid, **headers)

    # The client's PEM key has no kid, so it is tried for any kid; the CI issuer's keys all have one.
    assert_rejected(post_assertion(setup, assertion), "bad_signature")
    assert_rejected(post_assertion(setup, federated, FEDERATED_CLIENT), "unknown_kid" if kid else "bad_signature")
    assert "/attacker-jwks.json" not in setup.jwks.paths
    assert "/attacker.crt" not in setup.jwks.paths


def test_key_from_another_issuer_rejected(setup: Setup) -> None:
    signed_by_cluster = setup.cluster.sign(ci_claims(setup))
    signed_by_ci = setup.ci.sign(ci_claims(setup, iss=setup.cluster_issuer))
    client_key_for_ci = setup.client_key.sign(ci_claims(setup))

    assert_rejected(post_assertion(setup, signed_by_cluster, FEDERATED_CLIENT), "unknown_kid")
    assert_rejected(post_assertion(setup, signed_by_ci, FEDERATED_CLIENT), "unknown_kid")
    assert_rejected(post_assertion(setup, client_key_for_ci, FEDERATED_CLIENT), "algorithm_not_allowed")


def test_private_key_jwt_of_other_client_rejected(setup: Setup) -> None:
    assertion = setup.client_key.sign(pkjwt_claims(setup, iss=FEDERATED_CLIENT, sub=FEDERATED_CLIENT))

    assert_rejected(post_assertion(setup, assertion, FEDERATED_CLIENT), "assertion_issuer_not_allowed")


def test_replayed_assertion_rejected(setup: Setup) -> None:
    claims = pkjwt_claims(setup)
    assertion = setup.client_key.sign(claims)

    first = post_assertion(setup, assertion)
    replay = post_assertion(setup, assertion)
    re_encoded = post_assertion(setup, setup.client_key.sign(claims, typ="JWT"))

    assert first.status_code == 200
    assert_rejected(replay, "assertion_replayed")
    assert "already used" in replay.json()["error_description"]
    assert_rejected(re_encoded, "assertion_replayed")


def test_federated_replay_rejected_when_single_use(setup: Setup) -> None:
    assertion = setup.ci.sign(ci_claims(setup))

    assert post_assertion(setup, assertion, FEDERATED_CLIENT).status_code == 200
    assert_rejected(post_assertion(setup, assertion, FEDERATED_CLIENT), "assertion_replayed")


def test_federated_reuse_allowed_when_not_single_use(setup: Setup) -> None:
    assertion = setup.cluster.sign(ci_claims(setup, iss=setup.cluster_issuer, jti=None))

    assert post_assertion(setup, assertion, FEDERATED_CLIENT).status_code == 200
    assert post_assertion(setup, assertion, FEDERATED_CLIENT).status_code == 200


def now() -> int:
    return int(time.time())


TIME_ATTACKS = {
    "expired": ({"iat": now() - 600, "exp": now() - 1}, "token_expired"),
    "exp missing": ({"exp": None}, "missing_claim"),
    "lifetime above maximum": ({"exp": now() + 7200}, "lifetime_too_long"),
    "not yet valid": ({"nbf": now() + 600, "exp": now() + 900}, "token_not_yet_valid"),
    "issued in the future": ({"iat": now() + 600, "exp": now() + 900}, "issued_in_future"),
}


@pytest.mark.parametrize("overrides, reason", TIME_ATTACKS.values(), ids=TIME_ATTACKS.keys())
def test_expired_or_long_assertion_rejected(setup: Setup, overrides: dict[str, Any], reason: str) -> None:
    assertion = setup.client_key.sign(pkjwt_claims(setup, **overrides))
    federated = setup.ci.sign(ci_claims(setup, **overrides))

    assert_rejected(post_assertion(setup, assertion), reason)
    assert_rejected(post_assertion(setup, federated, FEDERATED_CLIENT), reason)


WRONG_AUDIENCES = {
    "other server": ("https://elsewhere.example/token", "audience_mismatch", "audience_mismatch"),
    "host header": ("http://evil.example" + TOKEN_PATH, "audience_mismatch", "audience_mismatch"),
    "missing": (None, "missing_claim", "audience_mismatch"),
}


@pytest.mark.parametrize("audience, reason, federated_reason", WRONG_AUDIENCES.values(), ids=WRONG_AUDIENCES.keys())
def test_wrong_audience_rejected(setup: Setup, audience: str | None, reason: str, federated_reason: str) -> None:
    assertion = setup.client_key.sign(pkjwt_claims(setup, aud=audience))
    federated = setup.ci.sign(ci_claims(setup, aud=audience))

    response = httpx.post(
        setup.token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": PKJWT_CLIENT,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        },
        headers={"Host": "evil.example"},
    )

    assert_rejected(response, reason)
    assert_rejected(post_assertion(setup, federated, FEDERATED_CLIENT), federated_reason)


REJECTED_CLAIMS = {
    "private_key_jwt without jti": (PKJWT_CLIENT, {"jti": None}, "missing_claim"),
    "private_key_jwt sub not client": (PKJWT_CLIENT, {"sub": "someone-else"}, "assertion_subject_mismatch"),
    "federated without sub": (FEDERATED_CLIENT, {"sub": None}, "missing_claim"),
    "federated workload not listed": (
        FEDERATED_CLIENT,
        {"sub": "repo:evil/fork:ref:refs/heads/main"},
        "workload_not_allowed",
    ),
    "federated without jti": (FEDERATED_CLIENT, {"jti": None}, "missing_claim"),
}


@pytest.mark.parametrize("client_id, overrides, reason", REJECTED_CLAIMS.values(), ids=REJECTED_CLAIMS.keys())
def test_assertion_claims_rejected(setup: Setup, client_id: str, overrides: dict[str, Any], reason: str) -> None:
    if client_id == PKJWT_CLIENT:
        assertion = setup.client_key.sign(pkjwt_claims(setup, **overrides))
    else:
        assertion = setup.ci.sign(ci_claims(setup, **overrides))

    assert_rejected(post_assertion(setup, assertion, client_id), reason)


REQUEST_ERRORS = {
    "wrong assertion type": (
        {"client_assertion_type": "urn:example:saml"},
        400,
        "invalid_request",
        "unsupported_assertion_type",
    ),
    "assertion and secret": ({"client_secret": "s3cret"}, 400, "invalid_request", "several_credentials"),
    "client without assertions": ({"client_id": "orders-client"}, 400, "unauthorized_client", "assertion_not_allowed"),
    "unknown client": ({"client_id": "nobody"}, 401, "invalid_client", "unknown_client"),
    "assertion not a jwt": ({"client_assertion": "not-a-jwt"}, 401, "invalid_client", "malformed_token"),
}


@pytest.mark.parametrize("changes, status, error, reason", REQUEST_ERRORS.values(), ids=REQUEST_ERRORS.keys())
def test_assertion_request_errors(setup: Setup, changes: dict[str, str], status: int, error: str, reason: str) -> None:
    assertion = setup.client_key.sign(pkjwt_claims(setup))

    response = post_assertion(setup, assertion, **changes)

    assert_rejected(response, reason, status, error)


def test_token_flow_logs_no_assertion(setup: Setup, caplog: pytest.LogCaptureFixture) -> None:
    assertion = setup.client_key.sign(pkjwt_claims(setup))
    with caplog.at_level(logging.DEBUG):
        granted = post_assertion(setup, assertion)
        replayed = post_assertion(setup, assertion)

    text = "\n".join(f"{record.getMessage()} {record_fields(record)}" for record in caplog.records)
    decisions = [record for record in caplog.records if getattr(record, "event", None) == "token_decision"]
    assert granted.status_code == 200
    assert replayed.status_code == 401
    assert [record.reason_id for record in decisions][-1] == "assertion_replayed"
    assert assertion not in text
    assert assertion.split(".")[2] not in text
    assert granted.json()["access_token"] not in text


def test_client_policy_denies_assertion(setup: Setup) -> None:
    blocked = ci_claims(setup, iss=setup.cluster_issuer, sub=BLOCKED_WORKLOAD)
    allowed = ci_claims(setup, iss=setup.cluster_issuer, sub="system:serviceaccount:batch:reporter")

    denied_response = post_assertion(setup, setup.cluster.sign(blocked), FEDERATED_CLIENT)
    denied_reason = DECISIONS.reasons[-1]
    allowed_response = post_assertion(setup, setup.cluster.sign(allowed), FEDERATED_CLIENT)

    assert denied_response.status_code == 400
    assert denied_response.json()["error"] == "unauthorized_client"
    assert denied_reason == "policy_denied"
    assert allowed_response.status_code == 200


def test_client_policy_syntax_error_is_config_error(tmp_path: Path) -> None:

    write_private_key(generate_private_key("ES256"), tmp_path / "signing-key.pem")
    config = base_config("http://127.0.0.1:1", "http://127.0.0.1:2", "token")
    config["trusted_issuers"] = [
        {"issuer": "https://ci.example", "algorithms": ["ES256"], "keys": [{"jwks_uri": "http://127.0.0.1:3/jwks"}]}
    ]
    index = len(config["clients"])
    config["clients"].append(
        {
            "client_id": "policy-client",
            "audience": ["api"],
            "jwt_assertion": {
                "federated": [{"issuer": "https://ci.example", "audience": "gate", "subjects": ["*"]}],
                "policy": "claims.sub ==",
            },
        }
    )
    (tmp_path / "gate.yaml").write_text(yaml.safe_dump(config))

    with pytest.raises(ConfigError) as raised:
        load_snapshot(tmp_path / "gate.yaml")

    assert [problem.path for problem in raised.value.problems] == [f"clients[{index}].jwt_assertion.policy"]


def test_crafted_assertion_header_is_invalid_client(setup: Setup) -> None:
    header = b64(json.dumps({"alg": "RS256", "kid": 5}).encode())
    payload = b64(json.dumps(pkjwt_claims(setup)).encode())

    response = post_assertion(setup, f"{header}.{payload}.{b64(b'signature')}")

    assert_rejected(response, "malformed_token")
