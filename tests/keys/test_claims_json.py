"""The token parser reads a header or claim set as the json module does, and rejects what the json module rejects.

gate parses with orjson and falls back to the json module where the two
can differ. These properties generate JSON objects of every member type,
some with a few bytes spliced in, and compare both the verdict and the value.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gate.tokens.claims import TokenRejected
from gate.tokens.jws import _json_object

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
)
VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
)
OBJECTS = st.dictionaries(st.text(max_size=6), VALUES, max_size=6)


def json_module_verdict(data: bytes) -> tuple[str, Any]:
    """Return the json module's verdict on ``data``: the repr of the object it parses, or a rejection."""
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        return ("rejected", None)
    return ("object", repr(value)) if isinstance(value, dict) else ("rejected", None)


def gate_verdict(data: bytes) -> tuple[str, Any]:
    try:
        return ("object", repr(_json_object(data)))
    except TokenRejected:
        return ("rejected", None)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(OBJECTS, st.booleans())
def test_objects_parse_like_json_module(claims: dict[str, Any], ascii_only: bool) -> None:
    data = json.dumps(claims, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")

    assert gate_verdict(data) == json_module_verdict(data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(OBJECTS, st.integers(min_value=0), st.binary(min_size=1, max_size=3))
def test_spliced_bytes_parse_like_json_module(claims: dict[str, Any], position: int, spliced: bytes) -> None:
    text = json.dumps(claims, ensure_ascii=False).encode("utf-8", "surrogatepass")
    cut = position % (len(text) + 1)
    data = text[:cut] + spliced + text[cut:]

    assert gate_verdict(data) == json_module_verdict(data)


EDGE_CASES = {
    "duplicate member, last wins": b'{"aud":"a","aud":"b"}',
    "duplicate member, float first": b'{"exp":1.5,"exp":2}',
    "integer past 64 bits": b'{"exp":18446744073709551616}',
    "largest unsigned 64-bit integer": b'{"exp":18446744073709551615}',
    "NaN": b'{"exp":NaN}',
    "lone surrogate": b'{"sub":"\\ud800"}',
    "UTF-8 byte order mark": b'\xef\xbb\xbf{"sub":"a"}',
    "UTF-16 text": '{"sub":"a"}'.encode("utf-16"),
    "overlong UTF-8": b'{"sub":"\xc0\x80"}',
    "list of lists": b'{"aud":[["a"]]}',
}


@pytest.mark.parametrize("data", EDGE_CASES.values(), ids=EDGE_CASES.keys())
def test_edge_case_parses_like_json_module(data: bytes) -> None:
    assert gate_verdict(data) == json_module_verdict(data)
