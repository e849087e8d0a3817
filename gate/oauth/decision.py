"""The one decision log line of each request to an OAuth endpoint.

The line carries the client id, the credential form, the subject, the outcome
and its ``reason_id``, and never a credential or a token. The client id is
logged only for a known client, because an unknown one is whatever the caller
typed.
"""

from __future__ import annotations

import logging
import os
import time

from starlette.requests import Request

from gate.errors import OAuthError

logger = logging.getLogger(__name__)


class Decision:
    """The fields of the decision log line of one request."""

    def __init__(self, event: str, request: Request) -> None:
        self.event = event
        self.request_id = request.headers.get("x-request-id") or os.urandom(8).hex()
        self.started = time.perf_counter()
        self.client_id: str | None = None
        self.form: str | None = None
        self.subject: str | None = None
        self.granted = False
        self.reason_id = "unknown"
        self.status = 500

    def deny(self, error: OAuthError) -> None:
        self.granted = False
        self.reason_id = error.reason_id
        self.status = error.status

    def grant(self, reason_id: str) -> None:
        self.granted = True
        self.reason_id = reason_id
        self.status = 200

    def log(self) -> None:
        level = logging.INFO if self.granted else logging.WARNING
        if not logger.isEnabledFor(level):  # the fields below cost more than the check
            return
        logger.log(
            level,
            "%s %s",
            self.event.removesuffix("_decision"),
            "granted" if self.granted else "denied",
            extra={
                "event": self.event,
                "request_id": self.request_id,
                "client_id": self.client_id,
                "credential_form": self.form,
                "subject": self.subject,
                "granted": self.granted,
                "reason_id": self.reason_id,
                "status": self.status,
                "duration_ms": round((time.perf_counter() - self.started) * 1000, 3),
            },
        )


def require_post(request: Request) -> None:
    """Raise 405 ``invalid_request`` unless ``request`` is a POST (RFC 6749 section 3.2)."""
    if request.method != "POST":
        raise OAuthError(
            "invalid_request", "This endpoint accepts POST only.", reason_id="method_not_allowed", status=405
        )
