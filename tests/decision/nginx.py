"""A real nginx on 127.0.0.1 for tests, with its own prefix, config, pid and logs in a temp dir."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.servers import free_port

# nginx is stopped by the fixture; `timeout` stops it anyway if the test run dies first.
MAX_NGINX_SECONDS = 300
INSTALL_HINT = "install it with 'apt-get install -y nginx' (Debian package)"


def nginx_binary() -> str:
    """Return the nginx executable; fail under CI (``GATE_REQUIRE_NGINX=1``) and skip elsewhere when missing."""
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    if found is None:
        message = f"nginx is not installed; {INSTALL_HINT}"
        if os.environ.get("GATE_REQUIRE_NGINX") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return found


def auth_request_config(directory: Path, port: int, gate_url: str, decision_path: str, upstream_url: str) -> str:
    """An nginx config that sends each request to gate's decision endpoint before it proxies to the upstream.

    It is the example of docs/ingress.md with test paths and ports.
    """
    user = f"user {pwd.getpwuid(os.getuid()).pw_name};" if os.geteuid() == 0 else ""
    temp_paths = "\n".join(
        f"    {kind}_temp_path {directory / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""
{user}
daemon off;
worker_processes 1;
pid {directory / "nginx.pid"};
error_log {directory / "error.log"} info;
events {{ worker_connections 64; }}

http {{
    access_log off;
{temp_paths}

    server {{
        listen 127.0.0.1:{port};

        location / {{
            auth_request /_gate_decision;
            auth_request_set $gate_subject $upstream_http_x_gate_subject;
            auth_request_set $gate_client_id $upstream_http_x_gate_client_id;
            auth_request_set $gate_scope $upstream_http_x_gate_scope;
            auth_request_set $gate_tenant $upstream_http_x_gate_tenant;
            auth_request_set $gate_request_id $upstream_http_x_request_id;
            auth_request_set $gate_challenge $upstream_http_www_authenticate;
            error_page 403 = @gate_forbidden;

            proxy_set_header X-Gate-Subject $gate_subject;
            proxy_set_header X-Gate-Client-Id $gate_client_id;
            proxy_set_header X-Gate-Scope $gate_scope;
            proxy_set_header X-Gate-Tenant $gate_tenant;
            proxy_set_header X-Request-Id $gate_request_id;
            proxy_set_header Authorization "";
            proxy_pass {upstream_url};
        }}

        # nginx passes WWW-Authenticate on for a 401 only; this adds gate's challenge to a 403.
        location @gate_forbidden {{
            add_header WWW-Authenticate $gate_challenge always;
            return 403;
        }}

        location = /_gate_decision {{
            internal;
            proxy_pass {gate_url}{decision_path};
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header Host $host;
            proxy_set_header X-Original-Method $request_method;
            proxy_set_header X-Original-URI $request_uri;
        }}
    }}
}}
"""


@contextmanager
def running_nginx(directory: Path, config: str, port: int) -> Iterator[str]:
    """Run nginx in the foreground with ``config``; yield its base URL; stop it after."""
    binary = nginx_binary()
    directory.mkdir(parents=True, exist_ok=True)
    config_path = directory / "nginx.conf"
    config_path.write_text(config)
    command = ["timeout", str(MAX_NGINX_SECONDS), binary, "-p", str(directory), "-c", str(config_path)]
    command += ["-e", str(directory / "error.log")]

    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_until_listening(process, port, directory)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _wait_until_listening(process: subprocess.Popen, port: int, directory: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = (directory / "error.log").read_text() if (directory / "error.log").exists() else ""
            stderr = process.stderr.read().decode() if process.stderr else ""
            raise RuntimeError(f"nginx exited with status {process.returncode}: {stderr}\n{log}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nginx did not listen on 127.0.0.1:{port} within 10 seconds")


def nginx_port() -> int:
    return free_port()
