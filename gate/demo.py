"""``gate demo``: gate and a small demo upstream, ready to try on loopback.

Everything the demo needs is made on the fly in a temporary directory: an
ES256 signing key, a service account with a random app token, a client and
a config file. The demo upstream echoes what it receives, so the identity
headers gate adds are visible.
"""

from __future__ import annotations

import json
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gate.keys.generate import generate_private_key, write_private_key
from gate.oauth.app_tokens import generate_app_token, hash_app_token

DEMO_CLIENT_ID = "demo-client"
DEMO_USERNAME = "demo-robot"
DEMO_AUDIENCE = "demo-api"
DEMO_SCOPES = ["orders:read"]


async def _echo(request: Request) -> JSONResponse:
    headers = {name: value for name, value in request.headers.items() if name.startswith("x-")}
    return JSONResponse(
        {
            "message": "hello from the demo upstream",
            "method": request.method,
            "path": request.url.path,
            "headers_from_gate": headers,
        }
    )


def demo_upstream_app() -> Starlette:
    """Build a tiny API that echoes the request line and gate's headers."""
    return Starlette(routes=[Route("/{path:path}", _echo, methods=["GET", "POST", "PUT", "DELETE", "PATCH"])])


@dataclass(frozen=True)
class DemoSetup:
    """The files and credentials of one demo run."""

    directory: Path
    config_path: Path
    gate_url: str
    token_endpoint: str
    protected_url: str
    public_url: str
    app_token: str

    def credentials(self) -> dict[str, str]:
        return {
            "token_endpoint": self.token_endpoint,
            "client_id": DEMO_CLIENT_ID,
            "username": DEMO_USERNAME,
            "password": self.app_token,
            "protected_url": self.protected_url,
        }


def prepare_demo(directory: Path, gate_port: int, upstream_port: int) -> DemoSetup:
    """Write a signing key and a config for the demo into ``directory``."""
    write_private_key(generate_private_key("ES256"), directory / "signing-key.pem")
    app_token = generate_app_token()
    gate_url = f"http://127.0.0.1:{gate_port}"
    upstream = f"http://127.0.0.1:{upstream_port}"

    config = {
        "issuer": gate_url,
        "listen": {"host": "127.0.0.1", "port": gate_port},
        "signing_keys": [{"kid": "demo-key-1", "private_key_file": "signing-key.pem"}],
        "service_accounts": [{"username": DEMO_USERNAME, "token_hashes": [hash_app_token(app_token)]}],
        "clients": [
            {
                "client_id": DEMO_CLIENT_ID,
                "service_accounts": [DEMO_USERNAME],
                "audience": [DEMO_AUDIENCE],
                "scopes": DEMO_SCOPES,
            }
        ],
        "routes": [
            {"id": "demo-public", "path_prefix": "/public/", "upstream": upstream, "auth": {"mode": "public"}},
            {"id": "demo-api", "path_prefix": "/api/", "upstream": upstream, "auth": {"audience": [DEMO_AUDIENCE]}},
        ],
    }
    config_path = directory / "gate.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    return DemoSetup(
        directory=directory,
        config_path=config_path,
        gate_url=gate_url,
        token_endpoint=gate_url + "/application/o/token/",
        protected_url=gate_url + "/api/orders",
        public_url=gate_url + "/public/status",
        app_token=app_token,
    )


def walkthrough(setup: DemoSetup) -> str:
    """Return the text the demo prints once gate is listening."""
    return textwrap.dedent(
        f"""
        gate demo is running: gate at {setup.gate_url}, demo upstream behind it.
        Config and key: {setup.directory} (deleted when the demo stops)

        1. Fetch an access token (client credentials with a service account):

           curl -s {setup.token_endpoint} \\
             -d grant_type=client_credentials -d client_id={DEMO_CLIENT_ID} \\
             -d username={DEMO_USERNAME} -d password={setup.app_token}

        2. Call the protected API with it:

           TOKEN=$(curl -s {setup.token_endpoint} -d grant_type=client_credentials \\
             -d client_id={DEMO_CLIENT_ID} -d username={DEMO_USERNAME} -d password={setup.app_token} \\
             | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
           curl -s -H "Authorization: Bearer $TOKEN" {setup.protected_url}

        3. See a rejected call (401 with a WWW-Authenticate challenge; the upstream gets nothing):

           curl -si {setup.protected_url}
           curl -si -H "Authorization: Bearer not-a-token" {setup.protected_url}

        A public route needs no token: curl -s {setup.public_url}
        Discovery: {setup.gate_url}/.well-known/openid-configuration

        Press Ctrl-C to stop.
        """
    )


def write_credentials(setup: DemoSetup, path: Path) -> None:
    path.write_text(json.dumps(setup.credentials(), indent=2) + "\n")
    path.chmod(0o600)


def temporary_directory() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="gate-demo-")


def wait_until_started(server: object, timeout: float = 10.0) -> bool:
    """Wait for a uvicorn server's ``started`` flag; ``False`` on timeout."""
    deadline = time.monotonic() + timeout
    while not getattr(server, "started", False):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def run_in_thread(server: object) -> threading.Thread:
    thread = threading.Thread(target=server.run, name="demo-upstream", daemon=True)  # type: ignore[attr-defined]
    thread.start()
    return thread


def run_demo(port: int, credentials_out: Path | None, out: TextIO) -> int:
    """Run gate and the demo upstream until interrupted; return the exit code."""
    import uvicorn

    from gate.app import create_app
    from gate.config.compile import load_snapshot
    from gate.server import check_port_free, free_port, uvicorn_server

    check_port_free("127.0.0.1", port)
    upstream_port = free_port()

    with temporary_directory() as directory:
        setup = prepare_demo(Path(directory), port, upstream_port)
        snapshot = load_snapshot(setup.config_path)

        upstream = uvicorn.Server(
            uvicorn.Config(
                demo_upstream_app(),
                host="127.0.0.1",
                port=upstream_port,
                log_config=None,
                access_log=False,
            )
        )
        upstream_thread = run_in_thread(upstream)
        gate_server = uvicorn_server(create_app(snapshot), "127.0.0.1", port)

        def announce() -> None:
            if not wait_until_started(gate_server):
                return
            if credentials_out is not None:
                write_credentials(setup, credentials_out)
            out.write(walkthrough(setup))
            out.flush()

        threading.Thread(target=announce, name="demo-announce", daemon=True).start()
        try:
            gate_server.run()
        finally:
            upstream.should_exit = True
            upstream_thread.join(timeout=5)

    return 0
