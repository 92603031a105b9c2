"""Error categories as HTTP statuses, for every HTTP face (origin, front door, routing).

Each face calls :func:`http_status` from its one error-handling place; a face
may put more specific errors first (the CDN's expired signature is 410).
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from headend import errors

Override = tuple[type[errors.HeadendError], int]
# RFC 9457: the faces that answer problems (the REST API, player links) share this shape.
PROBLEM_TYPE = "application/problem+json"

STATUS: tuple[Override, ...] = (
    (errors.InvalidArgument, 400),
    (errors.Unauthenticated, 401),
    (errors.PermissionDenied, 403),
    (errors.NotFound, 404),
    (errors.AlreadyExists, 409),
    (errors.Aborted, 409),
    (errors.FailedPrecondition, 409),
    (errors.ResourceExhausted, 429),
    (errors.Unavailable, 503),
)


def http_status(err: errors.HeadendError, overrides: Sequence[Override] = ()) -> int:
    """The status for ``err``: the first matching override, else its category's, else 500."""
    for kind, status in (*overrides, *STATUS):
        if isinstance(err, kind):
            return status
    return 500


def error_body(err: errors.HeadendError) -> dict[str, str]:
    """The short machine-readable JSON body: error class, message, and the field if any."""
    body = {"error": type(err).__name__, "message": err.message}
    if isinstance(err, errors.InvalidArgument):
        body["field"] = err.field
    return body


def problem_body(status: int, detail: str) -> dict[str, Any]:
    """RFC 9457's own members for an answer with ``status``; a face adds its ``reason`` and
    whatever else it knows."""
    try:
        title = HTTPStatus(status).phrase
    except ValueError:  # 499, which http.HTTPStatus does not know
        title = "Client Closed Request"
    return {"type": "about:blank", "title": title, "status": status, "detail": detail}
