"""App tokens of service accounts: generated, hashed and checked.

App tokens are 256-bit random values, so a single SHA-256 is the right hash:
guessing is hopeless without a slow hash, and a slow one (argon2, PBKDF2)
would cost ~100 ms a request and turn the token endpoint into a denial-of-
service target.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

HASH_PREFIX = "sha256:"

# Compared against when the username is unknown, so that an unknown account
# costs the same as a known one with a wrong token.
_UNKNOWN_ACCOUNT_HASHES = (HASH_PREFIX + "0" * 64,)


def generate_app_token() -> str:
    """Return a new random app token (43 URL-safe characters, 256 bits)."""
    return secrets.token_urlsafe(32)


def hash_app_token(token: str) -> str:
    """Return the hash of ``token`` in the form the config stores."""
    return HASH_PREFIX + hashlib.sha256(token.encode()).hexdigest()


def app_token_matches(token: str, hashes: tuple[str, ...] | None) -> bool:
    """Check ``token`` against every hash in constant time per hash.

    ``hashes`` is ``None`` for an unknown account; the work done is then the
    same as for a known account with one hash.
    """
    candidate = hash_app_token(token).encode()
    matched = False

    for stored in hashes or _UNKNOWN_ACCOUNT_HASHES:
        matched |= hmac.compare_digest(candidate, stored.encode())

    return matched and hashes is not None
