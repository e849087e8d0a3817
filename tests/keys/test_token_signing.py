"""gate's compact JWS signer: the tokens PyJWT would write, verifiable by PyJWT, each with its own jti."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest

from gate.keys.generate import generate_private_key
from gate.keys.signing import Keyring, SigningKey, algorithm_for
from gate.tokens.issuer import ACCESS_TOKEN_TYPE, JTI_BYTES, CompactSigner, JtiSource, TokenIssuer, compact_json

CLAIMS: dict[str, Any] = {
    "iss": "https://gate.test",
    "sub": "robot",
    "aud": ["api", "other"],
    "iat": int(time.time()),
    "exp": int(time.time()) + 600,
    "scope": "read write",
    "name": 'Zoë \u2028 "quoted"',
}


def signing_key(algorithm: str, kid: str = "k1") -> SigningKey:
    private_key = generate_private_key(algorithm)  # type: ignore[arg-type]
    return SigningKey(kid=kid, algorithm=algorithm_for(private_key), private_key=private_key, active=True)


def segment(token: str, index: int) -> bytes:
    part = token.split(".")[index]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


@pytest.mark.parametrize("algorithm", ["ES256", "RS256", "EdDSA"])
def test_token_verifies_with_pyjwt(algorithm: str) -> None:
    key = signing_key(algorithm)

    token = CompactSigner(key, ACCESS_TOKEN_TYPE).sign(dict(CLAIMS))

    decoded = jwt.decode(token, key.public_key, algorithms=[algorithm], audience="api")  # type: ignore[arg-type]
    assert decoded == CLAIMS


@pytest.mark.parametrize("algorithm", ["ES256", "RS256", "EdDSA"])
def test_header_bytes_and_claims_match_jwt_encode(algorithm: str) -> None:
    key = signing_key(algorithm)
    headers = {"typ": ACCESS_TOKEN_TYPE, "kid": key.kid}

    ours = CompactSigner(key, ACCESS_TOKEN_TYPE).sign(dict(CLAIMS))
    pyjwt = jwt.encode(dict(CLAIMS), key.private_key, algorithm=algorithm, headers=headers)  # type: ignore[arg-type]

    assert ours.split(".")[0] == pyjwt.split(".")[0]
    assert json.loads(segment(ours, 0)) == {"alg": algorithm, "kid": "k1", "typ": "at+jwt"}
    assert json.loads(segment(ours, 1)) == json.loads(segment(pyjwt, 1)) == CLAIMS


COMPACT_JSON_CASES: dict[str, Any] = {
    "ascii claims": {"sub": "robot", "exp": 1_700_000_600, "aud": ["a", "b"]},
    "non-ascii and line separator": {"name": 'Zoë \u2028 "q"'},
    "integer beyond 64 bits": {"n": 2**70, "m": -(2**70)},
    "lone surrogate": {"s": "a\ud800b"},
    "nested": {"a": {"b": [1, 2.5, True, None]}},
}


@pytest.mark.parametrize("value", COMPACT_JSON_CASES.values(), ids=COMPACT_JSON_CASES.keys())
def test_compact_json_decodes_to_the_same_value(value: dict[str, Any]) -> None:
    encoded = compact_json(value)

    assert json.loads(encoded) == value
    assert b'": ' not in encoded
    assert b', "' not in encoded


@pytest.mark.parametrize("claims", COMPACT_JSON_CASES.values(), ids=COMPACT_JSON_CASES.keys())
def test_claims_orjson_refuses_still_sign_and_verify(claims: dict[str, Any]) -> None:
    key = signing_key("ES256")

    token = CompactSigner(key, ACCESS_TOKEN_TYPE).sign({**claims, "exp": int(time.time()) + 60})

    options = {"verify_aud": False}
    decoded = jwt.decode(token, key.public_key, algorithms=["ES256"], options=options)  # type: ignore[arg-type]
    assert decoded == {**claims, "exp": decoded["exp"]}


def test_es256_signature_is_raw_r_and_s() -> None:
    key = signing_key("ES256")

    token = CompactSigner(key, ACCESS_TOKEN_TYPE).sign(dict(CLAIMS))

    assert len(segment(token, 2)) == 64


def test_tampered_token_does_not_verify() -> None:
    key = signing_key("ES256")
    token = CompactSigner(key, ACCESS_TOKEN_TYPE).sign(dict(CLAIMS))
    header, _, signature = token.split(".")
    forged = base64.urlsafe_b64encode(json.dumps({**CLAIMS, "sub": "admin"}).encode()).rstrip(b"=").decode()

    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(f"{header}.{forged}.{signature}", key.public_key, algorithms=["ES256"], audience="api")  # type: ignore[arg-type]


def test_jti_values_unique_and_128_bits() -> None:
    source = JtiSource()

    values = [source.next() for _ in range(1000)]

    assert len(set(values)) == len(values)
    assert {len(base64.urlsafe_b64decode(value + "==")) for value in values} == {JTI_BYTES}


def test_issuer_follows_key_rotation() -> None:
    first, second = signing_key("ES256", "first"), signing_key("ES256", "second")
    issuer = TokenIssuer("https://gate.test", Keyring([first]))
    before = issuer.issue(subject="s", client_id="c", audience=("api",), scope=(), lifetime=60)

    issuer.keyring = Keyring([second])
    after = issuer.issue(subject="s", client_id="c", audience=("api",), scope=(), lifetime=60)

    assert jwt.get_unverified_header(before.access_token)["kid"] == "first"
    assert jwt.get_unverified_header(after.access_token)["kid"] == "second"
    jwt.decode(after.access_token, second.public_key, algorithms=["ES256"], audience="api")  # type: ignore[arg-type]
