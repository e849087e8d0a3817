"""gate: a reverse-proxy gate and machine token endpoint for internal HTTP APIs."""

from gate.app import GateApp, create_app
from gate.errors import (
    BearerError,
    ConfigError,
    ConfigProblem,
    GateError,
    KeySourceError,
    OAuthError,
    UpstreamError,
)
from gate.middleware import BearerAuthMiddleware, TokenAuth, TokenUser
from gate.proxy.authorize import Requirements

__version__ = "0.1.0"

__all__ = [
    "BearerAuthMiddleware",
    "BearerError",
    "ConfigError",
    "ConfigProblem",
    "GateApp",
    "GateError",
    "KeySourceError",
    "OAuthError",
    "Requirements",
    "TokenAuth",
    "TokenUser",
    "UpstreamError",
    "__version__",
    "create_app",
]
