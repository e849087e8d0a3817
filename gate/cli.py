"""The ``gate`` command line: serve, check, demo, keygen and hash-token."""

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
    _add_logging_options(serve)

    check = commands.add_parser("check", help="validate a config file and print every error")
    check.add_argument("--config", required=True, type=Path, help="path of the YAML config file")

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

    commands.add_parser("hash-token", help="make a random app token and print it with its hash")
    return parser


def _add_logging_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--log-format", default="text", choices=["text", "json"])


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    handler = {
        "serve": command_serve,
        "check": command_check,
        "demo": command_demo,
        "keygen": command_keygen,
        "hash-token": command_hash_token,
    }[arguments.command]
    return handler(arguments)


def command_serve(arguments: argparse.Namespace) -> int:
    from gate.app import create_app
    from gate.config.compile import load_snapshot
    from gate.server import uvicorn_server

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
            "event": "start",
            "config": str(arguments.config),
            "config_version": snapshot.version,
            "host": host,
            "port": port,
        },
    )
    uvicorn_server(create_app(snapshot), host, port).run()
    return 0


def command_check(arguments: argparse.Namespace) -> int:
    from gate.config.compile import load_snapshot

    try:
        snapshot = load_snapshot(arguments.config)
    except ConfigError as error:
        print(error.render(), file=sys.stderr)
        return 1

    print(
        f"{arguments.config}: OK: {len(snapshot.routes.routes)} routes, {len(snapshot.clients)} clients, "
        f"{len(snapshot.service_accounts)} service accounts, {len(snapshot.keyring.keys)} signing keys"
    )
    return 0


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
    token = generate_app_token()
    print(f"app token (give it to the service account; it is not stored anywhere): {token}")
    print(f"hash (put it in service_accounts[].token_hashes):                      {hash_app_token(token)}")
    return 0
