"""Files the benchmark servers need: gate's config and key, nginx's config, tokens, wrk scripts.

gate's key and app token come from gate's own commands (``gate keygen``,
``gate hash-token``), so the benchmark exercises what an operator would set up.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import secrets
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import jwt
import yaml
from cryptography.hazmat.primitives.serialization import load_pem_private_key

CLIENT_ID = "bench-client"
USERNAME = "bench-robot"
AUDIENCE = "bench-api"
SCOPE = "bench:read"
KID = "bench-key-1"
TOKEN_PATH = "/application/o/token/"
TOKEN_LIFETIME_SECONDS = 3600
PUBLIC_PREFIX = "/public/"
PROTECTED_PREFIX = "/api/"


@dataclasses.dataclass
class GateFiles:
    directory: Path
    config_path: Path
    key_path: Path
    app_token: str
    app_token_hash: str
    issuer: str

    def token_form(self) -> str:
        """Return the form body of a valid token request."""
        return urllib.parse.urlencode(
            {
                "grant_type": "client_credentials",
                "client_id": CLIENT_ID,
                "username": USERNAME,
                "password": self.app_token,
            }
        )


def gate_command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "gate", *arguments]


def make_app_token() -> tuple[str, str]:
    """Run ``gate hash-token`` and return the app token and its hash."""
    output = subprocess.run(gate_command("hash-token"), capture_output=True, text=True, check=True, timeout=30).stdout
    values = {line.split(" ", 1)[0]: line.split()[-1] for line in output.splitlines() if line.strip()}
    return values["app"], values["hash"]


def write_gate_files(directory: Path, gate_port: int, upstream_url: str, engine: str = "aiohttp") -> GateFiles:
    """Make a signing key and an app token with gate's commands and write a config with two routes."""
    key_path = directory / "signing-key.pem"
    subprocess.run(
        gate_command("keygen", "--out", str(key_path), "--kid", KID), capture_output=True, check=True, timeout=30
    )
    app_token, app_token_hash = make_app_token()
    issuer = f"http://127.0.0.1:{gate_port}"

    config = {
        "issuer": issuer,
        "listen": {"host": "127.0.0.1", "port": gate_port},
        "token_path": TOKEN_PATH,
        "signing_keys": [{"kid": KID, "private_key_file": str(key_path)}],
        "service_accounts": [{"username": USERNAME, "token_hashes": [app_token_hash]}],
        "clients": [
            {
                "client_id": CLIENT_ID,
                "service_accounts": [USERNAME],
                "audience": [AUDIENCE],
                "scopes": [SCOPE],
                "token_lifetime": TOKEN_LIFETIME_SECONDS,
            }
        ],
        "routes": [
            {"id": "public", "path_prefix": PUBLIC_PREFIX, "upstream": upstream_url, "auth": {"mode": "public"}},
            {
                "id": "protected",
                "path_prefix": PROTECTED_PREFIX,
                "upstream": upstream_url,
                "auth": {"audience": [AUDIENCE]},
            },
        ],
        "upstream_client": {"engine": engine},
    }
    config_path = directory / "gate.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    return GateFiles(directory, config_path, key_path, app_token, app_token_hash, issuer)


def fetch_token(gate_url: str, files: GateFiles) -> str:
    """Fetch an access token from gate's token endpoint."""
    request = urllib.request.Request(
        gate_url + TOKEN_PATH,
        data=files.token_form().encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(json.load(response)["access_token"])


def sign_tokens(files: GateFiles, count: int) -> list[str]:
    """Sign ``count`` distinct tokens with gate's key and the claims gate issues (each has its own ``jti``)."""
    key: Any = load_pem_private_key(files.key_path.read_bytes(), password=None)
    now = int(time.time())
    claims = {
        "iss": files.issuer,
        "sub": USERNAME,
        "aud": AUDIENCE,
        "iat": now,
        "nbf": now,
        "exp": now + TOKEN_LIFETIME_SECONDS,
        "client_id": CLIENT_ID,
        "scope": SCOPE,
    }
    headers = {"typ": "at+jwt", "kid": KID}
    return [
        jwt.encode({**claims, "jti": secrets.token_urlsafe(16)}, key, algorithm="ES256", headers=headers)
        for _ in range(count)
    ]


def write_signer_settings(files: GateFiles) -> Path:
    """Write the settings of the minimal signer in bench/apps.py: gate's key, client and claims."""
    settings = {
        "private_key_file": str(files.key_path),
        "kid": KID,
        "issuer": files.issuer,
        "token_path": TOKEN_PATH,
        "username": USERNAME,
        "app_token_sha256": hashlib.sha256(files.app_token.encode()).hexdigest(),
        "audience": AUDIENCE,
        "scope": SCOPE,
        "lifetime": TOKEN_LIFETIME_SECONDS,
    }
    path = files.directory / "signer.json"
    path.write_text(json.dumps(settings))
    return path


def write_post_script(directory: Path, form: str) -> Path:
    """Write a wrk script that POSTs ``form`` as a form-encoded body."""
    path = directory / "post-form.lua"
    path.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(form)}\n"
        'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n'
    )
    return path


def write_rotating_tokens_script(directory: Path, tokens: list[str]) -> Path:
    """Write a wrk script that sends each token of ``tokens`` once, in order, then starts over."""
    tokens_path = directory / "cold-tokens.txt"
    tokens_path.write_text("\n".join(tokens) + "\n")
    path = directory / "rotate-tokens.lua"
    path.write_text(
        "local tokens = {}\n"
        f"for line in io.lines({json.dumps(str(tokens_path))}) do tokens[#tokens + 1] = line end\n"
        "local index = 0\n"
        "request = function()\n"
        "  index = index % #tokens + 1\n"
        '  return wrk.format(nil, nil, {["Authorization"] = "Bearer " .. tokens[index]})\n'
        "end\n"
    )
    return path


def write_nginx_config(directory: Path, port: int, upstream_port: int) -> Path:
    """Write an nginx config: one worker, ``proxy_pass`` over a keep-alive pool, no access log."""
    for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (directory / name).mkdir(exist_ok=True)
    path = directory / "nginx.conf"
    path.write_text(
        f"""
worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {directory}/client_body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;
    upstream bench_upstream {{
        server 127.0.0.1:{upstream_port};
        keepalive 100;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://bench_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""
    )
    return path
