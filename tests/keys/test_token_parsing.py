"""gate's one-pass JWT parser: strict base64url segments and the header checks before any key is used.

The verifier parses each token once with ``parse_token`` and verifies the
signature with PyJWT's algorithm object; these cases pin the parser to what
PyJWT's own parser accepted and rejected, so the faster path loosens nothing.
"""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.hashes import SHA256

from gate.keys.jwk import TrustedKey
from gate.tokens.claims import TokenRejected
from gate.tokens.jws import MAX_TOKEN_LENGTH, _decode_segment, _verifies, claims_of, parse_token

PRIVATE_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_KEY = ec.generate_private_key(ec.SECP256R1())
CLAIMS = {"iss": "https://gate.test", "sub": "robot", "exp": int(time.time()) + 600}


def segment(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def signed(header: dict | None = None, key: ec.EllipticCurvePrivateKey = PRIVATE_KEY) -> str:
    return jwt.encode(CLAIMS, key, algorithm="ES256", headers={"kid": "k1", **(header or {})})


def with_header(header: object) -> str:
    """A token whose header segment is replaced; its signature no longer matters to the parser checks."""
    _, payload, signature = signed().split(".")
    return f"{segment(header)}.{payload}.{signature}"


def trusted(key: ec.EllipticCurvePrivateKey) -> TrustedKey:
    return TrustedKey(
        kid="k1", algorithms=frozenset({"ES256"}), key=key.public_key(), issuer="https://gate.test", source="test",
        fingerprint="test",
    )  # fmt: skip


def test_well_formed_token_parses() -> None:
    parsed = parse_token(signed())

    assert parsed.header == {"alg": "ES256", "kid": "k1", "typ": "JWT"}
    assert claims_of(parsed) == CLAIMS
    assert _verifies(parsed, trusted(PRIVATE_KEY), "ES256") is True


def test_signature_of_another_key_does_not_verify() -> None:
    assert _verifies(parse_token(signed(key=OTHER_KEY)), trusted(PRIVATE_KEY), "ES256") is False


def test_padded_signature_accepted() -> None:
    token = signed()
    assert len(token.rsplit(".", 1)[1]) % 4 == 2  # 64 signature bytes: 86 characters, two '=' complete it

    parsed = parse_token(token + "==")

    assert _verifies(parsed, trusted(PRIVATE_KEY), "ES256") is True


ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _stray_bits(token: str) -> str:
    """Set one of the unused low bits of the signature's last character: the same bytes, spelled differently."""
    head, signature = token.rsplit(".", 1)
    last = ALPHABET.index(signature[-1])
    return f"{head}.{signature[:-1]}{ALPHABET[last | 1]}"


def reference_decode(segment: bytes) -> bytes | None:
    """The strict decoding by round trip: decode, then require that encoding gives the same characters back."""
    stripped = segment.rstrip(b"=")
    padding = len(segment) - len(stripped)
    if padding > 2 or (padding and len(segment) % 4) or len(stripped) % 4 == 1:
        return None
    if any(byte not in ALPHABET.encode() for byte in stripped):
        return None
    decoded = base64.urlsafe_b64decode(stripped + b"=" * (-len(stripped) % 4))
    return decoded if base64.urlsafe_b64encode(decoded).rstrip(b"=") == stripped else None


def segments_to_compare() -> list[bytes]:
    """Every last character after 0 to 3 full quanta plus 1, 2 or 3 characters, padded and not, and odd bytes."""
    found = []
    for prefix in (b"", b"eyJh", b"eyJhbGci"):
        for middle in (b"", b"Q", b"QU"):
            for last in ALPHABET.encode() + b"=+/.\x00":
                segment = prefix + middle + bytes([last])
                found += [segment, segment + b"=", segment + b"=="]
    return found


def test_segment_decoding_matches_the_round_trip_rule() -> None:
    for segment in segments_to_compare():
        expected = reference_decode(segment)
        try:
            decoded: bytes | None = _decode_segment(segment)
        except TokenRejected:
            decoded = None
        assert decoded == expected, segment


MALFORMED = {
    "two segments": lambda: signed().rsplit(".", 1)[0],
    "four segments": lambda: signed() + ".e30",
    "standard alphabet plus": lambda: signed().replace("-", "+").replace("_", "+") + "+",
    "three padding characters": lambda: signed() + "===",
    "padding that completes no quantum": lambda: signed() + "=",
    "impossible segment length": lambda: signed() + "AAA",
    "non-zero trailing bits": lambda: _stray_bits(signed()),
    "non-ASCII character": lambda: signed() + "é",
    "header is not JSON": lambda: "bm90IGpzb24." + signed().split(".", 1)[1],
    "header is a JSON array": lambda: with_header(["ES256"]),
    "header without alg": lambda: with_header({"kid": "k1"}),
    "kid is a number": lambda: with_header({"alg": "ES256", "kid": 7}),
    "unencoded payload (b64 false)": lambda: with_header({"alg": "ES256", "b64": False}),
    "empty token": lambda: "",
}


@pytest.mark.parametrize("make", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_token_is_rejected_before_any_key(make) -> None:
    with pytest.raises(TokenRejected) as caught:
        parse_token(make())

    assert caught.value.reason_id == "malformed_token"


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_in_every_spelling(alg: str) -> None:
    with pytest.raises(TokenRejected) as caught:
        parse_token(with_header({"alg": alg}).rsplit(".", 1)[0] + ".")

    assert caught.value.reason_id == "alg_none"


def test_critical_extension_is_unsupported() -> None:
    with pytest.raises(TokenRejected) as caught:
        parse_token(with_header({"alg": "ES256", "crit": ["exp"], "exp": 1}))

    assert caught.value.reason_id == "unsupported_header"


def test_overlong_token_is_rejected_by_length() -> None:
    with pytest.raises(TokenRejected) as caught:
        parse_token("a" * (MAX_TOKEN_LENGTH + 1))

    assert caught.value.reason_id == "token_too_long"


def test_payload_that_is_not_an_object_is_malformed() -> None:
    header, _, signature = signed().split(".")
    parsed = parse_token(f"{header}.{segment([1, 2])}.{signature}")

    with pytest.raises(TokenRejected) as caught:
        claims_of(parsed)

    assert caught.value.reason_id == "malformed_token"


ODD_TIME_CLAIMS = {
    "exp NaN": {"exp": float("nan")},
    "exp infinite": {"exp": float("inf")},
    "iat NaN with a far exp": {"iat": float("nan"), "exp": int(time.time()) + 10 * 365 * 86400},
    "nbf NaN": {"nbf": float("nan")},
    "exp beyond any float": {"exp": 10**400},
    "iat beyond any float": {"iat": 10**400},
}


@pytest.mark.parametrize("overrides", ODD_TIME_CLAIMS.values(), ids=ODD_TIME_CLAIMS.keys())
def test_odd_time_claim_is_malformed(overrides: dict) -> None:
    from gate.keys.issuers import IssuerPolicy
    from gate.tokens.claims import check_claims

    policy = IssuerPolicy(algorithms=frozenset({"ES256"}), max_token_lifetime=3600)
    claims = {**CLAIMS, "iat": int(time.time()), **overrides}

    with pytest.raises(TokenRejected) as rejected:
        check_claims(claims, policy, time.time(), exp_leeway=60)

    assert rejected.value.reason_id == "malformed_claim"


def test_odd_time_claim_survives_json() -> None:
    payload = json.loads(json.dumps({"exp": float("nan")}))  # Python's json reads NaN, as PyJWT's does

    assert payload["exp"] != payload["exp"]


P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def es256_signature_cases() -> dict[str, bytes]:
    """Signatures for the signing input of ``signed()``: one valid, the others each broken in one way."""
    parsed = parse_token(signed())
    good = parsed.signature
    r, s = good[:32], good[32:]
    return {
        "valid": good,
        "flipped_bit": good[:10] + bytes([good[10] ^ 1]) + good[11:],
        "swapped_r_s": s + r,
        "truncated": good[:63],
        "one_byte_longer": good + b"\x00",
        "empty": b"",
        "zero_r": bytes(32) + s,
        "zero_s": r + bytes(32),
        "r_is_the_order": P256_ORDER.to_bytes(32, "big") + s,
        "s_plus_order_overflows": r + (int.from_bytes(s, "big") + P256_ORDER).to_bytes(33, "big")[-32:],
        "der_encoded": PRIVATE_KEY.sign(parsed.signing_input, ec.ECDSA(SHA256())),
    }


@pytest.mark.parametrize("case", list(es256_signature_cases()))
def test_es256_check_agrees_with_pyjwt(case: str) -> None:
    parsed = parse_token(signed())
    signature = es256_signature_cases()[case]
    algorithm = jwt.algorithms.ECAlgorithm(jwt.algorithms.ECAlgorithm.SHA256)

    ours = _verifies(parsed._replace(signature=signature), trusted(PRIVATE_KEY), "ES256")

    assert ours is algorithm.verify(parsed.signing_input, PRIVATE_KEY.public_key(), signature)
    assert ours is (case == "valid")


# Payloads where orjson and the json module could disagree; each must parse as the json module parses it.
PAYLOADS_AS_JSON_READS = {
    "integer beyond 64 bits": '{"exp": 123456789012345678901234567890}',
    "nested integer beyond 64 bits": '{"ctx": {"n": 123456789012345678901234567890}}',
    "list with a big integer": '{"aud": ["api", 123456789012345678901234567890]}',
    "NaN": '{"exp": NaN}',
    "Infinity": '{"exp": Infinity}',
    "lone surrogate": '{"sub": "\\ud800"}',
    "float": '{"exp": 1733353600.5}',
    "duplicate member": '{"sub": "first", "sub": "second"}',
    "list of strings": '{"aud": ["api", "admin"]}',
}


@pytest.mark.parametrize("payload", PAYLOADS_AS_JSON_READS.values(), ids=PAYLOADS_AS_JSON_READS.keys())
def test_payload_parses_as_json_module_does(payload: str) -> None:
    header, _, signature = signed().split(".")
    encoded = base64.urlsafe_b64encode(payload.encode()).rstrip(b"=").decode()

    claims = claims_of(parse_token(f"{header}.{encoded}.{signature}"))

    expected = json.loads(payload)
    assert repr(claims) == repr(expected)  # repr, because NaN never equals itself
    assert [type(value) for value in claims.values()] == [type(value) for value in expected.values()]


def test_known_header_is_handed_out_as_a_copy() -> None:
    token = signed({"typ": "at+jwt"})

    first = parse_token(token).header
    first["alg"] = "none"
    second = parse_token(token).header

    assert second["alg"] == "ES256"


def test_rejected_header_is_rejected_every_time() -> None:
    token = with_header({"alg": "none", "kid": "k1"})

    for _ in range(2):
        with pytest.raises(TokenRejected) as rejected:
            parse_token(token)
        assert rejected.value.reason_id == "alg_none"
