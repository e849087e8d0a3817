"""Key sets across a config reload: carried over, not refetched; old refresh tasks stopped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from gate.config.compile import load_snapshot
from gate.config.snapshot import SnapshotHolder
from gate.keys.generate import generate_private_key, write_private_key
from tests.jwks_server import JwksServer, claims_for, new_identity
from tests.servers import running


@pytest.fixture
def jwks() -> Iterator[JwksServer]:
    server = JwksServer()
    with running(server) as url:
        server.base_url = url
        yield server


def write_config(directory: Path, jwks_url: str) -> Path:
    write_private_key(generate_private_key("ES256"), directory / "signing.pem", overwrite=True)
    config = {
        "issuer": "https://gate.test",
        "signing_keys": [{"kid": "gate-1", "private_key_file": "signing.pem"}],
        "trusted_issuers": [
            {"issuer": jwks_url, "algorithms": ["ES256"], "keys": [{"jwks_uri": jwks_url + "/jwks.json"}]}
        ],
    }
    (directory / "gate.yaml").write_text(yaml.safe_dump(config))
    return directory / "gate.yaml"


async def test_reload_carries_key_set_over(jwks: JwksServer, tmp_path: Path) -> None:
    signer = new_identity("k1")
    jwks.keys = [signer.jwk()]
    path = write_config(tmp_path, jwks.base_url)
    holder = SnapshotHolder(load_snapshot(path))
    await holder.current.start()
    old = holder.current
    await old.verifier.verify(signer.sign(claims_for(jwks.base_url)))
    fetches_before = jwks.fetches

    await holder.replace(load_snapshot(path))
    verified = await holder.current.verifier.verify(signer.sign(claims_for(jwks.base_url)))
    await holder.current.close()

    old_source = old.key_store.remote_sources[0]
    assert holder.current is not old
    assert verified.kid == "k1"
    assert jwks.fetches == fetches_before
    assert not old_source.running
