"""Reading the bearer token: the same verdict for a value seen before as for a new one."""

from __future__ import annotations

import pytest

from gate.errors import BearerError
from gate.proxy import bearer
from gate.proxy.bearer import bearer_token

TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJyb2JvdCJ9.c2lnbmF0dXJl"


def test_repeated_value_gives_the_same_token() -> None:
    headers = [(b"host", b"gate.test"), (b"authorization", b"Bearer " + TOKEN.encode())]

    assert bearer_token(headers) == TOKEN
    assert bearer_token(headers) == TOKEN


def test_known_value_sent_twice_is_rejected() -> None:
    value = b"Bearer " + TOKEN.encode()
    bearer_token([(b"authorization", value)])

    with pytest.raises(BearerError) as rejected:
        bearer_token([(b"authorization", value), (b"authorization", value)])

    assert rejected.value.reason_id == "repeated_authorization"
    assert rejected.value.status == 400


BAD_VALUES = {
    "another scheme": (b"Basic cm9ib3Q6c2VjcmV0", "missing_token"),
    "no token": (b"Bearer", "malformed_bearer"),
    "space inside the token": (b"Bearer abc def", "malformed_bearer"),
}


@pytest.mark.parametrize(("value", "reason_id"), BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_bad_value_rejected_every_time(value: bytes, reason_id: str) -> None:
    for _ in range(2):
        with pytest.raises(BearerError) as rejected:
            bearer_token([(b"authorization", value)])
        assert rejected.value.reason_id == reason_id


def test_missing_header_is_missing_token() -> None:
    with pytest.raises(BearerError) as rejected:
        bearer_token([(b"host", b"gate.test")])

    assert rejected.value.reason_id == "missing_token"


def test_long_values_not_remembered() -> None:
    """A client can send many distinct megabyte-long values that parse, and keeping each would take gigabytes."""
    values = [b"Bearer " + b"%04d" % number + b"a" * 1_000_000 for number in range(3)]

    for value in values:
        assert bearer_token([(b"authorization", value)]) == value.decode()[len("Bearer ") :]

    remembered = [value for value in values if value in bearer._parsed]
    assert remembered == []
