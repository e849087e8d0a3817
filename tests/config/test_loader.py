"""Tests of the YAML loader: data, lines, YAML 1.1 ambiguities, references and limits."""

from __future__ import annotations

import textwrap
import traceback
from typing import Any

import pytest

from gate.config.loader import (
    MAX_DEPTH,
    MAX_TEXT_BYTES,
    MAX_VALUES,
    LoadedYaml,
    format_path,
    load_yaml,
)
from gate.errors import ConfigError, ConfigProblem

SOURCE = "gate.yaml"

ROUTES = textwrap.dedent(
    """\
    server:
      port: 8080
      host: 127.0.0.1
    routes:
      - name: orders
        upstream: http://127.0.0.1:9000
        methods:
          - GET
          - POST
      - name: users
        upstream: http://127.0.0.1:9001
    """
)

BILLION_LAUGHS = textwrap.dedent(
    """\
    a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
    b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
    c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
    d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
    e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
    f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
    g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
    h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
    i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
    """
)

AMBIGUOUS_VALUES = [
    "yes",
    "Yes",
    "YES",
    "yEs",
    "no",
    "NO",
    "on",
    "On",
    "off",
    "OFF",
    "y",
    "Y",
    "n",
    "N",
    "0123",
    "-0123",
    "089",
    "0x1F",
    "0o17",
    "0b101",
    "1:30",
    "1:30:00",
    "1_000",
    "1_000.5",
]


def load(text: str, environ: dict[str, str] | None = None) -> LoadedYaml:
    return load_yaml(text, SOURCE, {} if environ is None else environ)


def load_error(text: str, environ: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load(text, environ)
    return caught.value


def only_problem(text: str, environ: dict[str, str] | None = None) -> ConfigProblem:
    problems = load_error(text, environ).problems
    assert len(problems) == 1, problems
    return problems[0]


def path_id(value: object) -> str | None:
    """Name a path parameter as format_path does, and leave other parameters to pytest."""
    if isinstance(value, tuple):
        return format_path(value) or "root"
    return None


def nested_lists(depth: int) -> str:
    return "[" * depth + "]" * depth


# Data and lines


def test_load_routes_data() -> None:
    expected = {
        "server": {"port": 8080, "host": "127.0.0.1"},
        "routes": [
            {"name": "orders", "upstream": "http://127.0.0.1:9000", "methods": ["GET", "POST"]},
            {"name": "users", "upstream": "http://127.0.0.1:9001"},
        ],
    }
    assert load(ROUTES).data == expected


@pytest.mark.parametrize(
    ("path", "line"),
    [
        ((), 1),
        (("server",), 1),
        (("server", "port"), 2),
        (("server", "host"), 3),
        (("routes",), 4),
        (("routes", 0), 5),
        (("routes", 0, "name"), 5),
        (("routes", 0, "upstream"), 6),
        (("routes", 0, "methods"), 7),
        (("routes", 0, "methods", 0), 8),
        (("routes", 0, "methods", 1), 9),
        (("routes", 1), 10),
        (("routes", 1, "upstream"), 11),
    ],
    ids=path_id,
)
def test_lines_of_keys_and_items(path: tuple[str | int, ...], line: int) -> None:
    assert load(ROUTES).lines[path] == line


@pytest.mark.parametrize(
    ("path", "line"),
    [
        (("routes", 0, "upstream"), 6),
        (("routes", 0, "timeout"), 5),
        (("routes", 1, "methods", 0), 10),
        (("routes", 7), 4),
        (("server", "tls", "cert"), 1),
        (("missing",), 1),
    ],
    ids=path_id,
)
def test_line_of_falls_back_to_ancestor(path: tuple[str | int, ...], line: int) -> None:
    assert load(ROUTES).line_of(path) == line


def test_root_line_skips_leading_comments() -> None:
    assert load("# gate config\n\nserver: {}\n").line_of(()) == 3


def test_lines_are_read_only() -> None:
    with pytest.raises(TypeError):
        load(ROUTES).lines[("server",)] = 99  # type: ignore[index]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ((), ""),
        (("routes",), "routes"),
        (("routes", 0, "upstream"), "routes[0].upstream"),
        (("a", 0, 1), "a[0][1]"),
        (("headers", "x-request-id"), "headers.x-request-id"),
        (("headers", "a.b"), 'headers["a.b"]'),
        (("<<",), '["<<"]'),
    ],
    ids=repr,
)
def test_format_path(path: tuple[str | int, ...], expected: str) -> None:
    assert format_path(path) == expected


# Scalars


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("true", True),
        ("false", False),
        ("True", True),
        ("null", None),
        ("~", None),
        ("", None),
        ("8080", 8080),
        ("-1", -1),
        ("0", 0),
        ("1.5", 1.5),
        ("'yes'", "yes"),
        ('"0123"', "0123"),
        ("2026-01-01", "2026-01-01"),
        ("2026-01-01T10:00:00Z", "2026-01-01T10:00:00Z"),
        ("!!str 0123", "0123"),
        ("=", "="),
        ("|\n  first line\n", "first line\n"),
        ("http://127.0.0.1:9000/api", "http://127.0.0.1:9000/api"),
    ],
    ids=repr,
)
class TestScalarValues:
    def test_value(self, raw: str, expected: Any) -> None:
        assert load(f"value: {raw}\n").data["value"] == expected

    def test_type(self, raw: str, expected: Any) -> None:
        assert type(load(f"value: {raw}\n").data["value"]) is type(expected)


@pytest.mark.parametrize("raw", AMBIGUOUS_VALUES)
class TestAmbiguousPlainValues:
    TEXT = "name: gate\nvalue: {raw}\n"

    def test_path(self, raw: str) -> None:
        assert only_problem(self.TEXT.format(raw=raw)).path == "value"

    def test_line(self, raw: str) -> None:
        assert only_problem(self.TEXT.format(raw=raw)).line == 2

    def test_message_shows_value(self, raw: str) -> None:
        assert repr(raw) in only_problem(self.TEXT.format(raw=raw)).message

    def test_message_says_to_quote(self, raw: str) -> None:
        assert "quote it if a string was meant" in only_problem(self.TEXT.format(raw=raw)).message


@pytest.mark.parametrize("quote", ["'", '"'], ids=["single", "double"])
@pytest.mark.parametrize("raw", AMBIGUOUS_VALUES)
def test_quoted_ambiguous_value_is_string(raw: str, quote: str) -> None:
    assert load(f"value: {quote}{raw}{quote}\n").data["value"] == raw


@pytest.mark.parametrize(
    "raw",
    ["!!int '5'", "!!float 1", "!!binary aGVsbG8=", "!custom x", "!!set {a}", "!!map {a: 1}", "! 5"],
)
def test_explicit_tag_rejected(raw: str) -> None:
    assert "is not supported" in only_problem(f"value: {raw}\n").message


# Keys


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("on: 1\n", "the key 'on' is read as a boolean"),
        ("1: x\n", "the key '1' is read as a number"),
        ("1.5: x\n", "the key '1.5' is read as a number"),
        ("null: x\n", "the key 'null' is read as null"),
        ("? [a]\n: 1\n", "a key must be a string, not a sequence"),
        ("? {a: 1}\n: 1\n", "a key must be a string, not a mapping"),
        ("!!int 5: x\n", "the tag !!int is not supported"),
    ],
    ids=["bool", "int", "float", "null", "sequence", "mapping", "tag"],
)
def test_non_string_key_rejected(text: str, expected: str) -> None:
    assert expected in only_problem(text).message


@pytest.mark.parametrize(
    ("text", "key"),
    [('"on": 1\n', "on"), ("'1': x\n", "1"), ("y: 1\n", "y"), ("2026-01-01: x\n", "2026-01-01")],
    ids=["quoted-bool", "quoted-int", "y", "date"],
)
def test_string_key_accepted(text: str, key: str) -> None:
    assert key in load(text).data


@pytest.mark.parametrize(
    ("text", "path", "lines"),
    [
        ("port: 80\nhost: a\nport: 81\n", "port", "lines 1 and 3"),
        ("server:\n  port: 80\n  host: a\n  port: 81\n", "server.port", "lines 2 and 4"),
        ("routes:\n  - name: a\n    name: b\n", "routes[0].name", "lines 2 and 3"),
        ("{a: 1, a: 2}\n", "a", "lines 1 and 1"),
    ],
    ids=["top-level", "nested", "list-item", "flow"],
)
class TestDuplicateKeys:
    def test_path(self, text: str, path: str, lines: str) -> None:
        assert only_problem(text).path == path

    def test_message_names_both_lines(self, text: str, path: str, lines: str) -> None:
        assert lines in only_problem(text).message


def test_duplicate_key_problem_on_second_line() -> None:
    assert only_problem("port: 80\nhost: a\nport: 81\n").line == 3


# Anchors, aliases and merge keys


def test_alias_copies_value() -> None:
    data = load("defaults: &defaults {timeout: 5}\nservice: *defaults\n").data
    assert data["service"] == {"timeout": 5}


def test_alias_path_has_line_of_anchor() -> None:
    loaded = load("defaults: &defaults\n  timeout: 5\nservice: *defaults\n")
    assert loaded.lines[("service", "timeout")] == 2


MERGE = textwrap.dedent(
    """\
    defaults: &defaults
      timeout: 5
    service:
      <<: *defaults
      port: 80
    """
)


def test_merge_key_path() -> None:
    assert only_problem(MERGE).path == 'service["<<"]'


def test_merge_key_line() -> None:
    assert only_problem(MERGE).line == 4


def test_merge_key_message_says_why() -> None:
    assert "hide duplicate keys" in only_problem(MERGE).message


def test_quoted_merge_key_is_plain_key() -> None:
    assert load('"<<": 1\n').data == {"<<": 1}


# Environment references


@pytest.mark.parametrize(
    ("raw", "environ", "expected"),
    [
        ("${HOST}", {"HOST": "127.0.0.1"}, "127.0.0.1"),
        ("http://${HOST}:${PORT}/api", {"HOST": "127.0.0.1", "PORT": "9000"}, "http://127.0.0.1:9000/api"),
        ("${PORT}", {"PORT": "8080"}, "8080"),
        ("${FLAG}", {"FLAG": "yes"}, "yes"),
        ("${LIST}", {"LIST": "[1, 2]"}, "[1, 2]"),
        ("${HOST}", {"HOST": ""}, ""),
        ("${HOST:-localhost}", {}, "localhost"),
        ("${HOST:-localhost}", {"HOST": ""}, "localhost"),
        ("${HOST:-localhost}", {"HOST": "127.0.0.1"}, "127.0.0.1"),
        ("${HOST:-}", {}, ""),
        ("$${HOST}", {"HOST": "127.0.0.1"}, "${HOST}"),
        ("'${HOST}'", {"HOST": "127.0.0.1"}, "127.0.0.1"),
        ("!!str ${HOST}", {"HOST": "127.0.0.1"}, "127.0.0.1"),
        ("price $5", {}, "price $5"),
        ("$$", {}, "$$"),
    ],
    ids=[
        "set",
        "several",
        "number-stays-string",
        "bool-word-stays-string",
        "flow-list-stays-string",
        "set-empty",
        "default-unset",
        "default-empty",
        "default-overridden",
        "empty-default",
        "escape",
        "quoted",
        "str-tag",
        "lone-dollar",
        "double-dollar",
    ],
)
def test_environment_reference(raw: str, environ: dict[str, str], expected: str) -> None:
    assert load(f"value: {raw}\n", environ).data["value"] == expected


def test_environment_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATE_TEST_HOST", "127.0.0.1")
    assert load_yaml("host: ${GATE_TEST_HOST}\n", SOURCE).data == {"host": "127.0.0.1"}


def test_environment_reference_not_in_key() -> None:
    assert load("${HOST}: 1\n", {"HOST": "h"}).data == {"${HOST}": 1}


MISSING_VARIABLE = "name: gate\nupstream: http://${UPSTREAM_HOST}:${UPSTREAM_PORT}\n"
MISSING_ENVIRON = {"UPSTREAM_HOST": "internal-host-value"}


def test_missing_variable_path() -> None:
    assert only_problem(MISSING_VARIABLE, MISSING_ENVIRON).path == "upstream"


def test_missing_variable_line() -> None:
    assert only_problem(MISSING_VARIABLE, MISSING_ENVIRON).line == 2


def test_missing_variable_named() -> None:
    assert "UPSTREAM_PORT" in only_problem(MISSING_VARIABLE, MISSING_ENVIRON).message


def test_missing_variable_hides_other_values() -> None:
    assert "internal-host-value" not in str(load_error(MISSING_VARIABLE, MISSING_ENVIRON))


@pytest.mark.parametrize(
    "raw",
    ["${1BAD}", "${HOST", "${HOST:-${OTHER}}", "${}", "${HOST-x}"],
)
def test_invalid_reference_rejected(raw: str) -> None:
    assert "$${ for a literal" in only_problem(f"value: {raw}\n", {"HOST": "h", "OTHER": "o"}).message


# Secret-looking fields


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("client_secret: 0x5EC12E7\n", "0x5EC12E7"),
        ("password: 0o7654321\n", "0o7654321"),
        ("PASSWORD: 0123456\n", "0123456"),
        ("api_token: 12:34:56\n", "12:34:56"),
        ("private_key: NO\n", "NO"),
        ("signing_key: 1_234_567\n", "1_234_567"),
        ("tokens:\n  - 0x5EC12E7\n", "0x5EC12E7"),
        ("secrets:\n  db: 0x5EC12E7\n", "0x5EC12E7"),
    ],
    ids=["secret", "password", "upper-case", "token", "private-key", "key", "list-item", "parent-key"],
)
class TestSecretValues:
    def test_value_not_in_error(self, text: str, value: str) -> None:
        assert value not in str(load_error(text))

    def test_message_says_hidden(self, text: str, value: str) -> None:
        assert "hidden" in only_problem(text).message


def test_syntax_error_hides_line_text() -> None:
    error = load_error('password: "s3cr3t-value\n')
    assert "s3cr3t" not in str(error)


def test_syntax_error_traceback_hides_line_text() -> None:
    error = load_error('password: "s3cr3t-value\n')
    assert "s3cr3t" not in "".join(traceback.format_exception(error))


def test_missing_variable_in_secret_hides_other_values() -> None:
    text = "password: ${DB_USER}:${DB_PASSWORD}\n"
    assert "admin-user" not in str(load_error(text, {"DB_USER": "admin-user"}))


# Document-level problems


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("server:\n  port: [80\nroutes: []\n", 3),
        ("a: 1\n b: 2\n", 2),
        ('a: "unterminated\n', 2),
        ("a:\n  - b\n  c: d\n", 3),
        ("\ta: 1\n", 1),
        ("a: 1\n---\nb: 2\n", 2),
        ("a: &x 1\nb: &x 2\n", 2),
        ("a: *missing\n", 1),
        ("a: 1\nb: \x00\n", 2),
    ],
    ids=[
        "unclosed-flow",
        "bad-indent",
        "unclosed-quote",
        "mixed-block",
        "tab",
        "two-documents",
        "duplicate-anchor",
        "undefined-alias",
        "control-character",
    ],
)
class TestSyntaxErrors:
    def test_line(self, text: str, line: int) -> None:
        assert only_problem(text).line == line

    def test_message(self, text: str, line: int) -> None:
        assert only_problem(text).message.startswith("invalid YAML")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- a\n- b\n", "the top level must be a mapping, not a sequence"),
        ("just text\n", "the top level must be a mapping, not a scalar"),
        ("", "the file contains no document"),
        ("# only a comment\n", "the file contains no document"),
    ],
    ids=["sequence", "scalar", "empty", "comment-only"],
)
def test_top_level_not_mapping(text: str, expected: str) -> None:
    assert expected in only_problem(text).message


SEVERAL_PROBLEMS = textwrap.dedent(
    """\
    server:
      port: 0123
      port: 80
      tls: yes
    upstream: ${GATE_MISSING}
    """
)


def test_several_problems_lines() -> None:
    problems = load_error(SEVERAL_PROBLEMS).problems
    assert [problem.line for problem in problems] == [2, 3, 4, 5]


def test_several_problems_paths() -> None:
    problems = load_error(SEVERAL_PROBLEMS).problems
    assert [problem.path for problem in problems] == ["server.port", "server.port", "server.tls", "upstream"]


def test_several_problems_counted_in_header() -> None:
    assert str(load_error(SEVERAL_PROBLEMS)).startswith(f"{SOURCE}: 4 errors")


# Limits


def test_size_cap_rejects_larger_text() -> None:
    text = "a: " + "x" * MAX_TEXT_BYTES + "\n"
    assert str(MAX_TEXT_BYTES) in only_problem(text).message


def test_size_cap_counts_utf8_bytes() -> None:
    # "é" is 2 bytes in UTF-8, so the text is MAX_TEXT_BYTES + 4 bytes.
    text = "a: " + "é" * (MAX_TEXT_BYTES // 2) + "\n"
    assert f"the file is {MAX_TEXT_BYTES + 4} bytes" in only_problem(text).message


def test_size_cap_accepts_text_at_limit() -> None:
    text = "a: " + "x" * (MAX_TEXT_BYTES - 4) + "\n"
    assert len(load(text).data["a"]) == MAX_TEXT_BYTES - 4


def test_billion_laughs_rejected() -> None:
    assert f"more than {MAX_VALUES} values" in only_problem(BILLION_LAUGHS).message


def test_few_aliases_accepted() -> None:
    data = load("a: &a [1, 2, 3]\nb: [*a, *a]\n").data
    assert data["b"] == [[1, 2, 3], [1, 2, 3]]


@pytest.mark.parametrize(
    "text",
    ["a: &a [*a]\n", "a: &a {self: *a}\n", "a: &a\n  - b: *a\n"],
    ids=["sequence", "mapping", "nested"],
)
def test_recursive_alias_rejected(text: str) -> None:
    assert "the alias refers to a value that contains it" in only_problem(text).message


def test_nesting_at_limit_accepted() -> None:
    # The innermost list has the path a[0][0]..., with MAX_DEPTH keys and indexes.
    text = f"a: {nested_lists(MAX_DEPTH)}\n"
    assert load(text).data["a"] is not None


def test_nesting_over_limit_rejected() -> None:
    text = f"a: {nested_lists(MAX_DEPTH + 1)}\n"
    assert f"nested more than {MAX_DEPTH} levels" in only_problem(text).message


def test_nesting_through_aliases_rejected() -> None:
    half = MAX_DEPTH // 2 + 1
    text = f"a: &a {nested_lists(half)}\nb: {'[' * half}*a{']' * half}\n"
    assert "counting the values that aliases insert" in only_problem(text).message
