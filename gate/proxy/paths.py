"""The one normalisation of request paths, used for route matching and forwarding.

A path is normalised once, from the raw bytes the client sent, and the result is
both matched against routes and sent upstream. Matching a decoded path while
forwarding the raw one is how ``/public/%2e%2e/admin`` reaches ``/admin``
behind other gateways; here that cannot happen.
"""

from __future__ import annotations

import re
import string

UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")

# Encoded characters whose meaning differs between servers once decoded:
# "/" and "\" change the segment structure, NUL ends strings in C code, and
# "%" starts a double encoding (such as %252e, or %25%32%65 written with
# escaped digits) that a server decoding twice would read as another path.
AMBIGUOUS_ESCAPES = frozenset({"%2F", "%5C", "%00", "%25"})

_ESCAPE = re.compile(rb"%([0-9A-Fa-f]{2})")
_ALLOWED_RAW = re.compile(rb"^[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*\Z")
# Substrings without which normalisation, after the checks above, returns the path unchanged.
_NEEDS_WORK = re.compile(rb"%|//|/\.|/;")


class PathError(ValueError):
    """A request path that cannot be normalised safely."""


def _normalise_escapes(segment: bytes) -> str:
    if b"%" in segment and _ESCAPE.sub(b"", segment).count(b"%"):
        raise PathError("malformed percent-encoding in the path")

    def replace(match: re.Match[bytes]) -> bytes:
        escape = "%" + match.group(1).decode().upper()
        if escape in AMBIGUOUS_ESCAPES:
            raise PathError(f"the encoded character {escape} is not allowed in a path")

        character = chr(int(match.group(1), 16))
        if character in UNRESERVED:
            return character.encode()
        return escape.encode()

    return _ESCAPE.sub(replace, segment).decode("ascii")


def normalise_path(raw_path: bytes) -> str:
    """Return the normalised form of ``raw_path`` (the path without query).

    Unreserved characters are percent-decoded and other escapes upper-cased,
    repeated slashes are collapsed and dot segments removed. A path that does
    not start with ``/``, has characters outside RFC 3986, an encoded ``/``,
    ``\\``, NUL or ``%``, a segment such as ``..;x``, or climbs above the root
    raises ``PathError`` (the request is rejected with 400).
    """
    if not raw_path.startswith(b"/"):
        raise PathError("the request target must be an absolute path starting with '/'")

    if not _ALLOWED_RAW.match(raw_path):
        raise PathError("the path contains characters that must be percent-encoded")

    if not _NEEDS_WORK.search(raw_path):
        # No escape, empty segment, dot segment or segment starting with ";":
        # every step below would return the path unchanged.
        return raw_path.decode("ascii")

    output: list[str] = []
    segment = ""

    for raw_segment in raw_path[1:].split(b"/"):
        segment = _normalise_escapes(raw_segment)

        if segment in ("", "."):
            continue

        # Servlet containers read "..;x" as "..": a parameter must not hide a dot segment.
        if ";" in segment and segment.partition(";")[0] in ("", ".", ".."):
            raise PathError("a path segment is a dot segment or empty before its ';' parameter")

        if segment == "..":
            if not output:
                raise PathError("the path climbs above the root with '..'")
            output.pop()
            continue

        output.append(segment)

    # "/a/" and "/a/b/.." end in a directory, so they keep their trailing slash.
    trailing_slash = segment in ("", ".", "..") and bool(output)
    return "/" + "/".join(output) + ("/" if trailing_slash else "")
