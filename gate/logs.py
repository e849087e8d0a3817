"""Logging setup: structured fields on every line, and a redaction safety net.

Modules log with ``extra={...}`` fields. The formatter appends those fields
as ``key=value`` pairs (or emits one JSON object per line), and the redaction
filter masks anything shaped like a JWT in case a message carries one by
mistake. The filter is a safety net; code must not log secrets at all.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import Any, Literal

JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
REDACTED = "[redacted]"

# uvicorn adds ``color_message``, a copy of the message with terminal colours.
_STANDARD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


def redact(text: str) -> str:
    return JWT_SHAPE.sub(REDACTED, text)


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """Return the ``extra`` fields of ``record``."""
    return {key: value for key, value in record.__dict__.items() if key not in _STANDARD_ATTRIBUTES}


class RedactionFilter(logging.Filter):
    """Mask JWT-shaped strings in messages, arguments and fields."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in args)
        for key, value in record_fields(record).items():
            if isinstance(value, str):
                setattr(record, key, redact(value))
        return True


class KeyValueFormatter(logging.Formatter):
    """``time level logger message key=value ...``"""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = " ".join(
            f"{key}={_render(value)}" for key, value in record_fields(record).items() if value is not None
        )
        return f"{line} {fields}" if fields else line


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the fields at the top level."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **record_fields(record),
        }
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return json.dumps(body, default=str)


def _render(value: object) -> str:
    text = str(value)
    return json.dumps(text) if not text or any(character in text for character in ' "=') else text


def configure_logging(level: str = "info", log_format: Literal["auto", "text", "json"] = "auto") -> None:
    """Send gate's and uvicorn's logs to stderr in one format.

    ``auto`` is text when stderr is a terminal and JSON lines otherwise, as
    when a container runtime or a log shipper reads them.
    """
    if log_format == "auto":
        log_format = "text" if sys.stderr.isatty() else "json"

    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactionFilter())
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(KeyValueFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))

    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
