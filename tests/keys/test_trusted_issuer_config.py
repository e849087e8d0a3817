"""Trusted issuers in the config file: local key sources, algorithms and their errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization

from gate.config.compile import load_snapshot
from gate.config.snapshot import Snapshot
from gate.errors import BearerError, ConfigError
from gate.keys.generate import generate_private_key, write_private_key
from tests.jwks_server import claims_for, new_identity
from tests.keys.certificates import write_certificate

ISSUER = "https://ci.example"


def write_config(directory: Path, issuers: list[dict[str, Any]]) -> Path:
    write_private_key(generate_private_key("ES256"), directory / "signing.pem", overwrite=True)
    config = {
        "issuer": "https://gate.test",
        "signing_keys": [{"kid": "gate-1", "private_key_file": "signing.pem"}],
        "trusted_issuers": issuers,
    }
    path = directory / "gate.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def issuer_entry(keys: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"issuer": ISSUER, "algorithms": ["ES256", "RS256"], "keys": keys, **extra}


def problems_of(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_snapshot(path)
    return caught.value.render()


async def test_certificate_key_verifies(tmp_path: Path) -> None:
    signer = new_identity("cert-key")
    write_certificate(signer.private_key, tmp_path / "ci.crt")
    snapshot = load_snapshot(write_config(tmp_path, [issuer_entry([{"certificate_file": "ci.crt"}])]))

    verified = await snapshot.verifier.verify(signer.sign(claims_for(ISSUER), kid="cert-key"))

    assert verified.issuer == ISSUER
    assert verified.subject == "workload-1"


async def test_certificate_with_kid_only_matches_it(tmp_path: Path) -> None:
    signer = new_identity("cert-key")
    write_certificate(signer.private_key, tmp_path / "ci.crt")
    snapshot = load_snapshot(write_config(tmp_path, [issuer_entry([{"certificate_file": "ci.crt", "kid": "ci-1"}])]))

    verified = await snapshot.verifier.verify(signer.sign(claims_for(ISSUER), kid="ci-1"))
    with pytest.raises(BearerError) as caught:
        await snapshot.verifier.verify(signer.sign(claims_for(ISSUER), kid="other"))

    assert verified.kid == "ci-1"
    assert caught.value.reason_id == "unknown_kid"


def test_expired_certificate_is_config_error(tmp_path: Path) -> None:
    write_certificate(new_identity("old").private_key, tmp_path / "old.crt", expired=True)

    message = problems_of(write_config(tmp_path, [issuer_entry([{"certificate_file": "old.crt"}])]))

    assert "trusted_issuers[0].keys[0].certificate_file" in message
    assert "expired on" in message
    assert "replace it" in message


def test_certificate_file_with_private_key_rejected(tmp_path: Path) -> None:
    key = new_identity("k").private_key
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    write_certificate(key, tmp_path / "bundle.crt")
    (tmp_path / "bundle.crt").write_bytes(pem + (tmp_path / "bundle.crt").read_bytes())

    message = problems_of(write_config(tmp_path, [issuer_entry([{"certificate_file": "bundle.crt"}])]))

    assert "contains a private key" in message


async def test_public_key_file_verifies(tmp_path: Path) -> None:
    signer = new_identity("pem", "RS256")
    public_pem = signer.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "ci.pub").write_bytes(public_pem)
    snapshot = load_snapshot(write_config(tmp_path, [issuer_entry([{"public_key_file": "ci.pub"}])]))

    verified = await snapshot.verifier.verify(signer.sign(claims_for(ISSUER), kid=None))

    assert verified.issuer == ISSUER


async def test_inline_and_file_jwks_verify(tmp_path: Path) -> None:
    inline, in_file = new_identity("inline"), new_identity("in-file")
    (tmp_path / "keys.json").write_text(json.dumps({"keys": [in_file.jwk()]}))
    keys = [{"jwks": {"keys": [inline.jwk()]}}, {"jwks_file": "keys.json"}]
    snapshot = load_snapshot(write_config(tmp_path, [issuer_entry(keys)]))

    first = await snapshot.verifier.verify(inline.sign(claims_for(ISSUER)))
    second = await snapshot.verifier.verify(in_file.sign(claims_for(ISSUER)))

    assert first.kid == "inline"
    assert second.kid == "in-file"


ALGORITHM_ERRORS = {
    "none": (["none"], "never accepted"),
    "None": (["None"], "never accepted"),
    "NONE": (["NONE"], "never accepted"),
    "nOnE": (["nOnE"], "never accepted"),
    "hmac": (["HS256"], "HMAC"),
    "hmac with asymmetric": (["RS256", "HS256"], "HMAC"),
    "unknown": (["RS1"], "unknown algorithm"),
}


@pytest.mark.parametrize("algorithms, expected", ALGORITHM_ERRORS.values(), ids=ALGORITHM_ERRORS.keys())
def test_bad_algorithms_are_config_errors(tmp_path: Path, algorithms: list[str], expected: str) -> None:
    entry = issuer_entry([{"jwks": {"keys": [new_identity("k").jwk()]}}], algorithms=algorithms)

    message = problems_of(write_config(tmp_path, [entry]))

    assert "trusted_issuers[0].algorithms" in message
    assert expected in message


SOURCE_ERRORS = {
    "two kinds in one source": ({"jwks_file": "a.json", "jwks_uri": "https://ci.example/jwks"}, "exactly one"),
    "no kind": ({}, "exactly one"),
    "kid on a jwks uri": ({"jwks_uri": "https://ci.example/jwks", "kid": "x"}, "'kid' applies"),
    "missing file": ({"jwks_file": "missing.json"}, "cannot read"),
    "issuer with fragment": (None, "fragment"),
}


@pytest.mark.parametrize("source, expected", SOURCE_ERRORS.values(), ids=SOURCE_ERRORS.keys())
def test_bad_sources_are_config_errors(tmp_path: Path, source: dict | None, expected: str) -> None:
    if source is None:
        entry = issuer_entry([{"jwks_uri": "https://ci.example/jwks"}], issuer="https://ci.example#x")
    else:
        entry = issuer_entry([source])

    message = problems_of(write_config(tmp_path, [entry]))

    assert expected in message


def policy_snapshot(directory: Path) -> tuple[Snapshot, Any]:
    signer = new_identity("k")
    entry = issuer_entry(
        [{"jwks": {"keys": [signer.jwk()]}}],
        audience=["orders-api", "billing-api"],
        audience_match="all",
        required_claims=["client_id"],
        max_token_lifetime=600,
        token_type="at+jwt",
    )
    return load_snapshot(write_config(directory, [entry])), signer


GOOD_CLAIMS = {"client_id": "c", "aud": ["orders-api", "billing-api"]}

POLICY_CASES = {
    "one audience of two required": ({"aud": "orders-api"}, "at+jwt", "audience_mismatch"),
    "required claim missing": ({"client_id": None}, "at+jwt", "missing_claim"),
    "lifetime above maximum": ({"exp_in": 3600}, "at+jwt", "lifetime_too_long"),
    "wrong typ": ({}, "JWT", "wrong_token_type"),
    "expired": ({"exp_in": -3600}, "at+jwt", "token_expired"),
    "not yet valid": ({"nbf_in": 3600}, "at+jwt", "token_not_yet_valid"),
}


@pytest.mark.parametrize("changes, typ, expected", POLICY_CASES.values(), ids=POLICY_CASES.keys())
async def test_issuer_policy_rejects(tmp_path: Path, changes: dict[str, Any], typ: str, expected: str) -> None:
    snapshot, signer = policy_snapshot(tmp_path)
    claims = claims_for(ISSUER, **GOOD_CLAIMS)
    for name, value in changes.items():
        if name.endswith("_in"):
            claims[name.removesuffix("_in")] = claims["iat"] + value
        elif value is None:
            del claims[name]
        else:
            claims[name] = value

    with pytest.raises(BearerError) as caught:
        await snapshot.verifier.verify(signer.sign(claims, typ=typ))

    assert caught.value.reason_id == expected


async def test_issuer_policy_accepts_good_token(tmp_path: Path) -> None:
    snapshot, signer = policy_snapshot(tmp_path)

    verified = await snapshot.verifier.verify(signer.sign(claims_for(ISSUER, **GOOD_CLAIMS), typ="application/at+jwt"))

    assert verified.claims["client_id"] == "c"
