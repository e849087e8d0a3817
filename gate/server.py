"""Running the gate app under uvicorn."""

from __future__ import annotations

import errno
import gc
import socket

import uvicorn

from gate.app import GateApp
from gate.http_protocol import GateHttpProtocol


class PortInUseError(OSError):
    """The address gate should listen on is taken."""


YOUNG_COLLECTION_THRESHOLD = 10_000
"""Net allocations of tracked objects between two young-generation collections (CPython's default: 700)."""


def check_port_free(host: str, port: int) -> None:
    """Raise ``PortInUseError`` if ``host:port`` cannot be bound now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise PortInUseError(f"{host}:{port} is already in use") from None
            raise


def uvicorn_config(app: GateApp, host: str, port: int, *, shutdown_timeout: float | None = None) -> uvicorn.Config:
    """Return the uvicorn settings gate runs with.

    uvicorn's own proxy-header handling is off: it would trust
    ``X-Forwarded-For`` from 127.0.0.1 and rewrite the client address before
    gate sees it. Access logging is off because gate logs one decision line
    per request. The HTTP protocol is uvicorn's httptools protocol with a
    response's writes joined (``gate.http_protocol``). On ``SIGTERM`` uvicorn
    stops accepting connections and waits up to ``shutdown_timeout`` seconds
    for running requests to finish.
    """
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=GateHttpProtocol,
        proxy_headers=False,
        server_header=False,
        access_log=False,
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=shutdown_timeout,
    )


def uvicorn_server(app: GateApp, host: str, port: int, *, shutdown_timeout: float | None = None) -> uvicorn.Server:
    """Build a uvicorn server for ``app`` with ``uvicorn_config``."""
    return uvicorn.Server(uvicorn_config(app, host, port, shutdown_timeout=shutdown_timeout))


def tune_garbage_collector() -> None:
    """Keep the cycle collector off the request path; call once, after the app is built.

    The config, the keys and the imported modules (about 65,000 objects)
    live as long as the process. Without a freeze, every full collection
    walks them: under load that was 7 collections of about 35 ms in 5 s, 14
    µs per request on average and the main source of the p99 latency. Objects
    made later, a reloaded config's included, are collected as usual.

    A request allocates a few hundred tracked objects and frees almost all of
    them by reference counting, but 64 requests in flight cross the default
    threshold of 700 allocations all the time: about 2,700 young collections
    (0.4 s) in a 15 s benchmark. At 10,000 there were 10, and cyclic garbage
    still goes within 10,000 allocations.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, older, oldest)


def free_port(host: str = "127.0.0.1") -> int:
    """Return a port on ``host`` that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
