"""Build trusted issuers from their config: local keys loaded now, remote sources cached later.

Local sources (PEM certificates, PEM public keys, inline JWKS, JWKS files) are
read when the config loads, so a broken file is a config error. Remote
sources (a JWKS URL, OIDC discovery) are fetched by the key cache once the
app starts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from gate.config.model import KeyCacheConfig, KeySourceConfig
from gate.keys.issuers import IssuerPolicy, TrustedIssuer
from gate.keys.jwk import TrustedKey, ingest_jwks
from gate.keys.pem import PemKeyError, load_certificate_key, load_public_key
from gate.keys.remote import RemoteKeySource

Report = Callable[[Sequence[str | int], str], None]

MAX_JWKS_FILE_BYTES = 1024 * 1024


def build_issuer(
    issuer: str,
    policy: IssuerPolicy,
    sources: Sequence[KeySourceConfig],
    cache: KeyCacheConfig,
    *,
    base_dir: Path,
    path: Sequence[str | int],
    report: Report,
) -> TrustedIssuer:
    """Load the local keys of ``sources`` and set up the remote ones; report each problem with its path."""
    local: list[TrustedKey] = []
    remote: list[RemoteKeySource] = []

    for index, source in enumerate(sources):
        where = (*path, index)
        if source.jwks_uri is not None or source.discovery:
            url = source.jwks_uri if source.jwks_uri is not None else issuer
            remote.append(
                RemoteKeySource(
                    issuer=issuer, url=url, discovery=source.discovery, allowed=policy.algorithms, settings=cache
                )
            )
            continue

        try:
            local.extend(_load_local(source, issuer, policy.algorithms, base_dir))
        except (PemKeyError, ValueError) as error:
            report((*where, _field_of(source)), str(error))

    if sources and not local and not remote:
        report(path, "no usable key was found in these sources")
    return TrustedIssuer(issuer, policy, local, remote)


def _load_local(source: KeySourceConfig, issuer: str, allowed: frozenset[str], base_dir: Path) -> list[TrustedKey]:
    if source.certificate_file is not None:
        return [
            load_certificate_key(base_dir / source.certificate_file, kid=source.kid, issuer=issuer, allowed=allowed)
        ]

    if source.public_key_file is not None:
        return [load_public_key(base_dir / source.public_key_file, kid=source.kid, issuer=issuer, allowed=allowed)]

    if source.jwks is not None:
        return list(ingest_jwks(source.jwks, issuer=issuer, source="inline", allowed=allowed).keys)

    assert source.jwks_file is not None
    file = base_dir / source.jwks_file
    try:
        raw = file.read_bytes()
    except OSError as error:
        raise ValueError(f"cannot read {file}: {error.strerror}") from None
    if len(raw) > MAX_JWKS_FILE_BYTES:
        raise ValueError(f"{file} is larger than {MAX_JWKS_FILE_BYTES} bytes")

    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{file} is not valid JSON ({error})") from None
    return list(ingest_jwks(document, issuer=issuer, source=f"file:{file.name}", allowed=allowed).keys)


def _field_of(source: KeySourceConfig) -> str:
    for name in ("certificate_file", "public_key_file", "jwks", "jwks_file"):
        if getattr(source, name) is not None:
            return name
    return "keys"
