"""The ``gate`` command line: serve, check, explain, demo, keygen and hash-token."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from gate import __version__
from gate.errors import ConfigError
from gate.keys.generate import ALGORITHMS, generate_private_key, write_private_key
from gate.logs import configure_logging
from gate.oauth.app_tokens import generate_app_token, hash_app_token
from gate.oauth.secret_hashes import generate_secret, hash_secret
from gate.server import PortInUseError

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gate", description="A reverse-proxy gate and token endpoint for internal HTTP APIs."
    )
    parser.add_argument("--version", action="version", version=f"gate {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run gate from a config file")
    serve.add_argument("--config", required=True, type=Path, help="path of the YAML config file")
    serve.add_argument("--host", help="address to listen on (default: listen.host of the config)")
    serve.add_argument("--port", type=int, help="TCP port to listen on (default: listen.port of the config)")
    serve.add_argument(
        "--no-watch", action="store_true", help="do not reload when the config file changes; SIGHUP still reloads"
    )
    _add_logging_options(serve)

    check = commands.add_parser(
        "check", help="validate a config file; print every error and warning (exit 1 on errors)"
    )
    check.add_argument("--config", required=True, type=Path, help="path of the YAML config file")

    explain = commands.add_parser(
        "explain",
        help="show how gate would decide on one request: route, each check, decision (exit 0 allowed, 3 denied)",
    )
    explain.add_argument("--config", required=True, type=Path, help="path of the YAML config file")
    explain.add_argument("--method", default="GET", help="HTTP method of the request (default: GET)")
    explain.add_argument(
        "--url", required=True, help="request target: a path such as '/orders?id=1' or a full http(s):// URL"
    )
    explain.add_argument("--header", action="append", metavar="'NAME: VALUE'", help="a request header; repeat for more")
    token = explain.add_mutually_exclusive_group()
    token.add_argument("--token", help="bearer token to send (visible to other users in the process list)")
    token.add_argument("--token-file", type=Path, help="file holding the bearer token; '-' reads standard input")
    explain.add_argument("--json", action="store_true", help="print the report as JSON")

    demo = commands.add_parser("demo", help="run gate and a demo upstream on 127.0.0.1 with keys made on the fly")
    demo.add_argument("--port", type=int, default=8080, help="gate's TCP port (default: 8080)")
    demo.add_argument("--credentials-out", type=Path, help="also write the demo credentials to this JSON file")
    _add_logging_options(demo)

    keygen = commands.add_parser("keygen", help="write a new PEM signing key")
    keygen.add_argument("--algorithm", choices=ALGORITHMS, default="ES256", help="signing algorithm (default: ES256)")
    keygen.add_argument("--out", required=True, type=Path, help="file to write the private key to (mode 0600)")
    keygen.add_argument("--kid", help="key id to print in the config snippet (default: the file's stem)")
    keygen.add_argument("--force", action="store_true", help="overwrite an existing file")
    keygen.add_argument(
        "--status",
        choices=["active", "next"],
        default="active",
        help="status for the config snippet: active for a first key, next to start a rotation (default: active)",
    )

    hash_token = commands.add_parser(
        "hash-token", help="make a random app token or client secret and print it with its hash"
    )
    hash_token.add_argument(
        "--client-secret",
        action="store_true",
        help="print the hash for clients[].secret_hashes instead of service_accounts[].token_hashes",
    )
    hash_token.add_argument(
        "--stdin",
        action="store_true",
        help="hash a client secret you chose, read from the first line of standard input, instead of a random one",
    )
    hash_token.add_argument(
        "--scheme",
        choices=["sha256", "pbkdf2", "argon2"],
        help="hash scheme (default: sha256 for random values, argon2 for --stdin); the slow schemes are"
        " only for client secrets an operator chose",
    )
    return parser


def _add_logging_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument(
        "--log-format",
        default="auto",
        choices=["auto", "text", "json"],
        help="log line format (default: auto, which is text on a terminal and JSON otherwise)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    handler = {
        "serve": command_serve,
        "check": command_check,
        "explain": command_explain,
        "demo": command_demo,
        "keygen": command_keygen,
        "hash-token": command_hash_token,
    }[arguments.command]
    return handler(arguments)


def command_serve(arguments: argparse.Namespace) -> int:
    from gate.app import create_app
    from gate.config.compile import load_snapshot
    from gate.server import tune_garbage_collector, uvicorn_server

    configure_logging(arguments.log_level, arguments.log_format)
    try:
        snapshot = load_snapshot(arguments.config)
    except ConfigError as error:
        print(error.render(), file=sys.stderr)
        return 1

    host = arguments.host or snapshot.config.listen.host
    port = arguments.port or snapshot.config.listen.port
    logger.info(
        "starting gate",
        extra={
            "event": "starting",
            "config": str(arguments.config),
            "config_version": snapshot.version,
            "host": host,
            "port": port,
            "watch": not arguments.no_watch,
        },
    )
    app = create_app(snapshot, watch=not arguments.no_watch, sighup=True)
    tune_garbage_collector()
    uvicorn_server(app, host, port, shutdown_timeout=snapshot.config.listen.shutdown_timeout).run()
    return 0


def command_check(arguments: argparse.Namespace) -> int:
    from gate.config.check import check_config

    return check_config(arguments.config, sys.stdout, sys.stderr)


def command_explain(arguments: argparse.Namespace) -> int:
    from gate.explain.command import run_explain

    return run_explain(arguments, sys.stdout, sys.stderr)


def command_demo(arguments: argparse.Namespace) -> int:
    from gate.demo import run_demo

    configure_logging(arguments.log_level, arguments.log_format)
    try:
        return run_demo(arguments.port, arguments.credentials_out, sys.stdout)
    except PortInUseError as error:
        print(f"gate demo: {error}; choose another port with --port", file=sys.stderr)
        return 1


def command_keygen(arguments: argparse.Namespace) -> int:
    print(f"generating an {arguments.algorithm} key ...", file=sys.stderr)
    key = generate_private_key(arguments.algorithm)
    try:
        write_private_key(key, arguments.out, overwrite=arguments.force)
    except FileExistsError:
        print(f"gate keygen: {arguments.out} exists; use --force to overwrite it", file=sys.stderr)
        return 1

    kid = arguments.kid or arguments.out.stem
    print(f"wrote {arguments.out} (mode 0600). Add it to the config:", file=sys.stderr)
    print(f"signing_keys:\n  - kid: {kid}\n    private_key_file: {arguments.out}\n    status: {arguments.status}")
    if arguments.status == "next":
        print(ROTATION_STEPS.format(kid=kid), file=sys.stderr)
    return 0


ROTATION_STEPS = """
Rotation, step by step (details in docs/keys.md):
  1. Add the entry above next to the current active key and reload. gate now
     publishes {kid} in its JWKS but does not sign with it.
  2. Wait at least jwks_max_age seconds (default 300) plus the refresh
     interval of your slowest verifier, so every verifier's cache has {kid}.
  3. Set {kid} to 'status: active' and the old key to 'status: retired' with
     'retired_at' set to now (ISO 8601 with a zone), then reload.
  4. gate keeps publishing the retired key until retired_at plus the longest
     client token_lifetime plus tokens.leeway, then drops it by itself.
     Remove its entry and its file at any time after that."""


def command_hash_token(arguments: argparse.Namespace) -> int:
    if not arguments.client_secret and (arguments.stdin or arguments.scheme not in (None, "sha256")):
        print("gate hash-token: --stdin and slow schemes are for client secrets; add --client-secret", file=sys.stderr)
        return 2

    if not arguments.client_secret:
        token = generate_app_token()
        print(f"app token (give it to the service account; it is not stored anywhere): {token}")
        print(f"hash (put it in service_accounts[].token_hashes):                      {hash_app_token(token)}")
        return 0

    if arguments.stdin:
        secret = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
        if not secret:
            print("gate hash-token: standard input has no secret on its first line", file=sys.stderr)
            return 1
        print(f"hash (put it in clients[].secret_hashes): {hash_secret(secret, arguments.scheme or 'argon2')}")
        return 0

    secret = generate_secret()
    print(f"client secret (give it to the client; it is not stored anywhere): {secret}")
    stored = hash_secret(secret, arguments.scheme or "sha256")
    print(f"hash (put it in clients[].secret_hashes):                         {stored}")
    return 0
