"""Load a gate config file: YAML text to plain data plus the line of every field.

PyYAML's SafeLoader only composes the node tree here. This module converts the
nodes itself, so it can reject what YAML 1.1 would silently convert (``yes`` to
True, ``0123`` to 83, ``1:30`` to 90), substitute ``${NAME}`` references and
record a line for every mapping key and sequence item. Every problem found is
collected into one ConfigError.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.error import MarkedYAMLError, YAMLError
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import ReaderError

from gate.errors import ConfigError, ConfigProblem

Path = tuple[str | int, ...]

MAX_TEXT_BYTES = 1024 * 1024
"""Maximum size of a config file, in bytes of UTF-8."""

MAX_DEPTH = 64
"""Maximum number of keys and indexes in a field path (``routes[0].upstream`` has 3)."""

MAX_VALUES = 100_000
"""Maximum number of values in a document, where each use of an alias counts its
values again. This stops a "billion laughs" document before it exhausts memory."""

# A field whose path has a key that contains one of these words, in any case, is
# treated as secret, so no message shows its value. "key" also covers private_key.
SECRET_KEY_WORDS = ("secret", "password", "token", "key")

_TAG_PREFIX = "tag:yaml.org,2002:"
_STR_TAG = _TAG_PREFIX + "str"
_INT_TAG = _TAG_PREFIX + "int"
_FLOAT_TAG = _TAG_PREFIX + "float"
_BOOL_TAG = _TAG_PREFIX + "bool"
_NULL_TAG = _TAG_PREFIX + "null"
_MERGE_TAG = _TAG_PREFIX + "merge"

# Types that PyYAML resolves a plain scalar to, other than a string.
_NON_STRING_TYPES = {
    _BOOL_TAG: "a boolean",
    _INT_TAG: "a number",
    _FLOAT_TAG: "a number",
    _NULL_TAG: "null",
}

# Words that a YAML 1.1 parser can read as booleans. PyYAML 6.0.4 reads yes, no, on
# and off in lower, title and upper case. The other spellings and y and n are rejected
# too, so that the meaning does not depend on the parser.
_YAML11_BOOL_WORDS = frozenset({"yes", "no", "on", "off", "y", "n"})

# Plain scalars that YAML 1.1 or 1.2 reads as a number other than the one a reader
# expects, or as a string that looks like a number. Checked in this order.
_AMBIGUOUS_NUMBERS: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (
        re.compile(r"[-+]?0x[0-9a-fA-F_]+"),
        "YAML 1.1 reads it as a hexadecimal number",
        "Write the number in decimal",
    ),
    (
        re.compile(r"[-+]?0o[0-7_]+"),
        "YAML 1.2 reads it as an octal number but YAML 1.1 as a string",
        "Write the number in decimal",
    ),
    (
        re.compile(r"[-+]?0b[01_]+"),
        "YAML 1.1 reads it as a binary number",
        "Write the number in decimal",
    ),
    (
        re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?"),
        "YAML 1.1 reads it as a base-60 number, so 1:30 becomes 90",
        "Write the number in decimal",
    ),
    (
        re.compile(r"[-+]?0[0-9_]+"),
        "YAML 1.1 reads a number with a leading zero as octal, so 010 becomes 8",
        "Write the number without leading zeros",
    ),
)

# ${NAME}, ${NAME:-default} or the escape $${. A "${" that matches neither of the
# first two forms is invalid. A default cannot contain another "${".
_REFERENCE = re.compile(
    r"\$\$\{"
    r"|\$\{(?:(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>(?:[^}$]|\$(?!\{))*))?\})?"
)

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


@dataclass(frozen=True)
class LoadedYaml:
    """A loaded config document and the line of each of its fields."""

    data: Any
    lines: Mapping[Path, int]

    def line_of(self, path: Sequence[str | int]) -> int | None:
        """Return the 1-based line of ``path``, else that of its nearest ancestor.

        The root path ``()`` has the line of the top-level mapping, so the result
        is None only for a path into a document without one.
        """
        candidate = tuple(path)
        while True:
            line = self.lines.get(candidate)
            if line is not None or not candidate:
                return line
            candidate = candidate[:-1]


def format_path(path: Sequence[str | int]) -> str:
    """Render a field path as in ``routes[0].upstream``.

    A key that is not a plain name (letters, digits, ``_`` and ``-``) is written
    as a JSON string in brackets, as in ``headers["x.y"]``.
    """
    parts: list[str] = []
    for element in path:
        if isinstance(element, int):
            parts.append(f"[{element}]")
        elif _PLAIN_KEY.fullmatch(element):
            parts.append(f".{element}" if parts else element)
        else:
            parts.append(f"[{json.dumps(element)}]")

    return "".join(parts)


def load_yaml(text: str, source: str, environ: Mapping[str, str] | None = None) -> LoadedYaml:
    """Parse a config document into dicts, lists, str, int, float, bool and None.

    ``${NAME}`` and ``${NAME:-default}`` in string values are replaced from
    ``environ`` (default ``os.environ``), and ``$${`` is a literal ``${``.
    Raises ConfigError with every problem found. Loading stops at a YAML syntax
    error, at a file over MAX_TEXT_BYTES, at nesting deeper than MAX_DEPTH in the
    text itself and at more than MAX_VALUES values.
    """
    _check_size(text, source)

    root, explicit_tags = _compose(text, source)

    walker = _Walker(explicit_tags, os.environ if environ is None else environ)
    data = walker.walk_document(root)
    if walker.problems:
        raise ConfigError(source, walker.problems)

    return LoadedYaml(data=data, lines=MappingProxyType(walker.lines))


def _check_size(text: str, source: str) -> None:
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size <= MAX_TEXT_BYTES:
        return

    message = (
        f"the file is {size} bytes, more than the maximum of {MAX_TEXT_BYTES} bytes. Split it or remove unused parts."
    )
    raise ConfigError(source, [ConfigProblem("", None, message)])


class _NestingTooDeepError(ComposerError):
    pass


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that limits nesting and records the tags written in the text."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0
        # Maps id() of each node with a tag written in the text to that tag, with
        # handles such as !! expanded.
        self.explicit_tags: dict[int, str] = {}

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        event = self.peek_event()
        tag = None if isinstance(event, AliasEvent) else event.tag

        # The root node is depth 1, so MAX_DEPTH + 1 allows MAX_DEPTH levels inside it.
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH + 1:
                message = f"values are nested more than {MAX_DEPTH} levels deep. Reduce the nesting."
                raise _NestingTooDeepError(None, None, message, event.start_mark)
            node = super().compose_node(parent, index)
        finally:
            self.depth -= 1

        if tag is not None:
            self.explicit_tags[id(node)] = tag
        return node


def _compose(text: str, source: str) -> tuple[Node | None, dict[int, str]]:
    # The errors are re-raised "from None": str() of a PyYAML error shows the
    # offending line of the file, which can contain a secret.
    try:
        loader = _StrictLoader(text)
    except ReaderError as error:
        raise ConfigError(source, [_reader_problem(error, text)]) from None

    try:
        return loader.get_single_node(), loader.explicit_tags
    except _NestingTooDeepError as error:
        raise ConfigError(source, [_marked_problem(error, str(error.problem))]) from None
    except MarkedYAMLError as error:
        raise ConfigError(source, [_marked_problem(error, _syntax_message(error))]) from None
    except YAMLError:
        raise ConfigError(source, [ConfigProblem("", None, "invalid YAML")]) from None
    finally:
        loader.dispose()


def _syntax_message(error: MarkedYAMLError) -> str:
    # PyYAML writes the context first, as in "while parsing a flow sequence", and
    # then the problem, as in "expected ',' or ']', but got ':'".
    parts: list[str] = []
    if error.context and error.context_mark is not None:
        parts.append(f"{error.context} on line {error.context_mark.line + 1}")
    elif error.context:
        parts.append(error.context)
    if error.problem:
        parts.append(error.problem)

    return "invalid YAML: " + ", ".join(parts) if parts else "invalid YAML"


def _marked_problem(error: MarkedYAMLError, message: str) -> ConfigProblem:
    mark = error.problem_mark or error.context_mark
    line = mark.line + 1 if mark is not None else None
    return ConfigProblem("", line, message)


def _reader_problem(error: ReaderError, text: str) -> ConfigProblem:
    line = text.count("\n", 0, error.position) + 1
    message = (
        f"invalid YAML: character #x{error.character:04x} is not allowed. "
        "Remove it, or write it as an escape in a double-quoted string."
    )
    return ConfigProblem("", line, message)


class _TooManyValuesError(Exception):
    def __init__(self, path: Path, node: Node) -> None:
        super().__init__()
        self.path = path
        self.node = node


class _Walker:
    """Converter from a composed node tree to plain data that collects problems and lines."""

    def __init__(self, explicit_tags: dict[int, str], environ: Mapping[str, str]) -> None:
        self.explicit_tags = explicit_tags
        self.environ = environ
        self.problems: list[ConfigProblem] = []
        self.lines: dict[Path, int] = {}
        self.value_count = 0
        self.open_collections: set[int] = set()

    def report(self, path: Path, node: Node, message: str) -> None:
        self.problems.append(ConfigProblem(format_path(path), _line(node), message))

    def walk_document(self, root: Node | None) -> Any:
        if root is None:
            message = "the file contains no document. Expected a mapping of settings."
            self.problems.append(ConfigProblem("", 1, message))
            return None

        self.lines[()] = _line(root)
        if not isinstance(root, MappingNode):
            self.report((), root, f"the top level must be a mapping, not a {_kind(root)}")
            return None

        try:
            return self.walk(root, ())
        except _TooManyValuesError as error:
            message = (
                f"the document expands to more than {MAX_VALUES} values, counting the values "
                "of an alias again at each use. Use fewer aliases."
            )
            self.report(error.path, error.node, message)
            return None

    def walk(self, node: Node, path: Path) -> Any:
        self.value_count += 1
        if self.value_count > MAX_VALUES:
            raise _TooManyValuesError(path, node)

        # Without aliases the composer has already enforced this limit.
        if len(path) > MAX_DEPTH:
            message = (
                f"values are nested more than {MAX_DEPTH} levels deep, counting the values "
                "that aliases insert. Reduce the nesting or use fewer aliases."
            )
            self.report(path, node, message)
            return None

        if isinstance(node, ScalarNode):
            return self.read_scalar(node, path)

        tag = self.explicit_tags.get(id(node))
        if tag is not None:
            self.report(path, node, _explicit_tag_message(tag))
            return None

        if isinstance(node, MappingNode):
            return self.walk_collection(node, path, self.walk_mapping)
        return self.walk_collection(node, path, self.walk_sequence)

    def walk_collection(self, node: Node, path: Path, walk_items: Callable[[Any, Path], Any]) -> Any:
        if id(node) in self.open_collections:
            message = (
                "the alias refers to a value that contains it, so the value would be infinitely deep. Remove the alias."
            )
            self.report(path, node, message)
            return None

        self.open_collections.add(id(node))
        try:
            return walk_items(node, path)
        finally:
            self.open_collections.discard(id(node))

    def walk_sequence(self, node: SequenceNode, path: Path) -> list[Any]:
        items: list[Any] = []
        for index, item_node in enumerate(node.value):
            item_path = (*path, index)
            self.lines[item_path] = _line(item_node)
            items.append(self.walk(item_node, item_path))

        return items

    def walk_mapping(self, node: MappingNode, path: Path) -> dict[str, Any]:
        result: dict[str, Any] = {}
        key_lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = self.read_key(key_node, path)
            if key is None:
                continue

            key_path = (*path, key)
            value = self.walk(value_node, key_path)
            if key in key_lines:
                message = f"duplicate key {key!r} on lines {key_lines[key]} and {_line(key_node)}. Remove one of them."
                self.report(key_path, key_node, message)
                continue

            key_lines[key] = _line(key_node)
            self.lines[key_path] = key_lines[key]
            result[key] = value

        return result

    def read_key(self, node: Node, path: Path) -> str | None:
        if not isinstance(node, ScalarNode):
            self.report(path, node, f"a key must be a string, not a {_kind(node)}")
            return None

        key_path = (*path, node.value)
        if node.tag == _MERGE_TAG and id(node) not in self.explicit_tags:
            message = (
                "merge keys (<<) are not supported because they hide duplicate keys. "
                "Write the keys out, or use an alias (*name) for a whole value."
            )
            self.report(key_path, node, message)
            return None

        tag = self.explicit_tags.get(id(node))
        if tag is not None and tag != _STR_TAG:
            self.report(key_path, node, _explicit_tag_message(tag))
            return None

        # Only what PyYAML would convert is rejected here. A key such as "y" or
        # "0o17" is read as a string, so it needs no warning.
        if node.style is None and tag is None and node.tag in _NON_STRING_TYPES:
            message = (
                f"the key {node.value!r} is read as {_NON_STRING_TYPES[node.tag]}, "
                "but a key must be a string. Quote it."
            )
            self.report(key_path, node, message)
            return None

        return node.value

    def read_scalar(self, node: ScalarNode, path: Path) -> Any:
        tag = self.explicit_tags.get(id(node))
        if tag is not None and tag != _STR_TAG:
            self.report(path, node, _explicit_tag_message(tag))
            return None

        if node.style is None and tag is None:
            return self.read_plain(node, path)

        return self.substitute(node, path)

    def read_plain(self, node: ScalarNode, path: Path) -> Any:
        ambiguity = _ambiguity(node)
        if ambiguity is not None:
            reason, fix = ambiguity
            value_in_message = "the value (hidden because the field name looks secret)"
            if not _looks_secret(path):
                value_in_message = repr(node.value)
            message = f"{value_in_message} is ambiguous because {reason}. {fix}, or quote it if a string was meant."
            self.report(path, node, message)
            return None

        if node.tag == _BOOL_TAG:
            return node.value.lower() == "true"
        if node.tag == _NULL_TAG:
            return None
        if node.tag == _INT_TAG:
            return int(node.value)
        if node.tag == _FLOAT_TAG:
            return _to_float(node.value)

        # Everything else stays the text as written. That includes dates and
        # timestamps, "=" (the YAML 1.1 "value" type) and "<<" outside keys.
        return self.substitute(node, path)

    def substitute(self, node: ScalarNode, path: Path) -> str:
        value, messages = _substitute_references(node.value, self.environ)
        for message in messages:
            self.report(path, node, message)

        return value


def _substitute_references(text: str, environ: Mapping[str, str]) -> tuple[str, list[str]]:
    """Replace ``${NAME}``, ``${NAME:-default}`` and ``$${`` in ``text``.

    Returns the new text and one message per invalid or unset reference. A
    message names the variable but never contains a value.
    """
    messages: list[str] = []

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"

        name = match.group("name")
        if name is None:
            messages.append(
                "'${' does not start a valid reference. Write ${NAME} or ${NAME:-default}, or $${ for a literal '${'."
            )
            return match.group(0)

        value = environ.get(name)
        default = match.group("default")
        if default is not None and not value:
            return default

        if value is None:
            messages.append(
                f"environment variable {name} is not set and the reference has no default. "
                f"Set {name}, or write ${{{name}:-default}}."
            )
            return ""

        return value

    if "$" not in text:
        return text, messages
    return _REFERENCE.sub(replace, text), messages


def _ambiguity(node: ScalarNode) -> tuple[str, str] | None:
    """Return why a plain scalar is ambiguous and how to fix it, or None if it is not."""
    if node.value.lower() in _YAML11_BOOL_WORDS:
        return "a YAML 1.1 parser can read it as a boolean", "Write true or false for a boolean"

    for pattern, reason, fix in _AMBIGUOUS_NUMBERS:
        if pattern.fullmatch(node.value):
            return reason, fix

    if node.tag in (_INT_TAG, _FLOAT_TAG) and "_" in node.value:
        reason = "YAML 1.1 reads it as a number and ignores the underscores"
        return reason, "Write the number without underscores"

    return None


def _looks_secret(path: Path) -> bool:
    for element in path:
        if isinstance(element, str) and any(word in element.lower() for word in SECRET_KEY_WORDS):
            return True

    return False


def _to_float(text: str) -> float:
    lowered = text.lower()
    if lowered.endswith(".inf"):
        return -math.inf if lowered.startswith("-") else math.inf
    if lowered == ".nan":
        return math.nan

    return float(text)


def _explicit_tag_message(tag: str) -> str:
    shown = tag.replace(_TAG_PREFIX, "!!")
    return (
        f"the tag {shown} is not supported, only !!str is. Remove the tag, and quote the value if a string was meant."
    )


def _kind(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "mapping"
    if isinstance(node, SequenceNode):
        return "sequence"
    return "scalar"


def _line(node: Node) -> int:
    return node.start_mark.line + 1
