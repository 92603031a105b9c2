"""Structured logging: one JSON object per line on stderr, tagged with the request it serves.

Every RPC and every REST request runs with a request id (:func:`bind_request_id`): the
caller's own when it sent a sane one, so one id follows a request from a billing system
through the REST face into the service that answers it, else a new one. Every line
logged while the request is handled carries it as ``request_id``, which is what ties a
refusal the caller saw to the server's lines about it.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import secrets
import sys
from datetime import UTC, datetime

# The header (HTTP) and metadata key (gRPC) a request id travels in, both ways.
REQUEST_ID_HEADER = "x-request-id"
# What a caller's request id may be; anything else is replaced (it ends up in log lines).
_SANE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
_RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}


def request_id(given: str | bytes | None = None) -> str:
    """The caller's request id if it is a sane token (at most 64 of ``[A-Za-z0-9._-]``),
    else a new random one."""
    text = given.decode("ascii", "replace") if isinstance(given, bytes) else given
    if text is not None and _SANE_ID.fullmatch(text):
        return text
    return secrets.token_hex(8)


def bind_request_id(given: str | bytes | None = None) -> str:
    """Give the current task (the request being handled) its request id (see
    :func:`request_id`) and return it; every line it logs from now on carries it."""
    chosen = request_id(given)
    _REQUEST_ID.set(chosen)
    return chosen


def current_request_id() -> str:
    """The request id bound to the request being handled ("" outside one): what audit
    records keep beside the log lines."""
    return _REQUEST_ID.get()


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line with its ``extra`` fields and the request id."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, str | int | float | bool] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self._service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        # Formatting runs in the logging call, in the task that logged: its request's id.
        rid = _REQUEST_ID.get()
        if rid:
            line["request_id"] = rid
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                line[key] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure(service: str, level: str = "info") -> None:
    """Route the root logger to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
