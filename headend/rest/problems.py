"""Every failure of the REST face as an RFC 9457 ``application/problem+json`` answer.

Two kinds of failure end here, and only here:

- A service refused the call: its gRPC status becomes the HTTP status its error category
  has on every face of the platform (``headend.httperrors``: FAILED_PRECONDITION and
  ABORTED are 409), the codes no category has taking ``google/rpc/code.proto``'s, and
  the status details become the problem's members: ``reason``, ``domain`` and
  ``metadata`` from its ``ErrorInfo``, ``invalid_params`` from its ``BadRequest``, and a
  ``Retry-After`` header from its ``RetryInfo``. The reason is the one a gRPC caller
  reads, so a billing system and a gRPC client branch on the same words.
- The face refused the request before any service saw it (no such route, a body that
  is not JSON, too large, or names an unknown field): one of :class:`RestError`'s leaves,
  whose status is its category's (``headend.httperrors``) unless it has its own below,
  and whose reason is its class name in UPPER_SNAKE_CASE, as the services' are.

    HTTP/1.1 404 Not Found
    Content-Type: application/problem+json

    {"type": "about:blank", "title": "Not Found", "status": 404,
     "detail": "no subscriber carriers/acme/subscribers/s9", "reason": "SUBSCRIBER_NOT_FOUND",
     "domain": "headend", "metadata": {"subscriber_id": "s9"}}
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc
from aiohttp import web

from headend import errors
from headend.httperrors import PROBLEM_TYPE, STATUS, http_status, problem_body
from headend.rpc.status import CATEGORY_CODES, DOMAIN, error_details, reason_code

NO_STORE = {"Cache-Control": "no-store"}

# A category keeps the HTTP status it has on every face; the other codes take
# google/rpc/code.proto's mapping.
_CATEGORY_HTTP = dict(STATUS)
GRPC_TO_HTTP: Mapping[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.DATA_LOSS: 500,
    **{code: _CATEGORY_HTTP[kind] for kind, code in CATEGORY_CODES},
}


class RestError(errors.HeadendError):
    """Raised when the REST face refuses a request itself, before calling a service."""


class RouteNotFound(RestError, errors.NotFound):
    """Raised when no annotated method has the request's path."""


class MethodNotAllowed(RestError, errors.FailedPrecondition):
    """Raised when the path is a method's, but not with the request's HTTP method."""

    def __init__(self, message: str, *, allow: tuple[str, ...]) -> None:
        super().__init__(message, details={"allow": ", ".join(allow)})
        self.allow = allow


class InvalidJson(RestError, errors.InvalidArgument):
    """Raised when a request body is not UTF-8 JSON of the expected shape (or nests too deep)."""


class InvalidRequest(RestError, errors.InvalidArgument):
    """Raised when the body, a query parameter or a path variable names an unknown field, has a
    value of the wrong type, or where the method takes none."""


class UnsupportedMediaType(RestError, errors.InvalidArgument):
    """Raised when a request body is sent as anything but ``application/json``."""


class BodyTooLarge(RestError, errors.ResourceExhausted):
    """Raised when a request body is longer than ``API_MAX_BODY_BYTES``."""


class UriTooLong(RestError, errors.InvalidArgument):
    """Raised when a request's path and query are longer than the face reads."""


class BadAuthorization(RestError, errors.Unauthenticated):
    """Raised when the ``Authorization`` header cannot be passed on (not printable ASCII)."""


# The face's own statuses, ahead of the categories' (headend.httperrors).
_OVERRIDES = (
    (MethodNotAllowed, 405),
    (UnsupportedMediaType, 415),
    (BodyTooLarge, 413),
    (UriTooLong, 414),
)


@dataclass(frozen=True, slots=True)
class Problem:
    """One RFC 9457 problem: the members, and the headers that go with it."""

    status: int
    detail: str
    reason: str
    metadata: dict[str, str] = field(default_factory=dict)
    invalid_params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        """The JSON members: RFC 9457's, then the platform's ``reason``, ``domain``, ..."""
        body = problem_body(self.status, self.detail)
        if self.reason:
            body["reason"] = self.reason
            body["domain"] = DOMAIN
        if self.metadata:
            body["metadata"] = self.metadata
        if self.invalid_params:
            body["invalid_params"] = [
                {"name": name, "reason": why} for name, why in self.invalid_params.items()
            ]
        return body

    def response(self) -> web.Response:
        """The answer: the body as ``application/problem+json``, never cached."""
        return web.json_response(
            self.body(),
            status=self.status,
            headers={**NO_STORE, **self.headers},
            content_type=PROBLEM_TYPE,
        )


def _auth_headers(status: int) -> dict[str, str]:
    return {"WWW-Authenticate": 'Bearer realm="headend"'} if status == 401 else {}


def from_rpc_error(err: grpc.aio.AioRpcError) -> Problem:
    """The problem a service's refusal becomes: the standard status, and its details."""
    code: grpc.StatusCode = err.code()
    status = GRPC_TO_HTTP.get(code, 500)
    details = error_details(err)
    headers = _auth_headers(status)
    if details.retry_delay_seconds is not None:
        headers["Retry-After"] = str(max(1, math.ceil(details.retry_delay_seconds)))
    return Problem(
        status,
        err.details() or code.name,
        details.reason or code.name,
        details.metadata,
        details.fields,
        headers,
    )


def from_error(err: RestError) -> Problem:
    """The problem a refusal of the face itself becomes."""
    status = http_status(err, _OVERRIDES)
    headers = _auth_headers(status)
    if isinstance(err, MethodNotAllowed):
        headers["Allow"] = ", ".join(err.allow)
    metadata = {k: v for k, v in err.details.items() if k != "allow"}
    fields = {err.field: err.reason} if isinstance(err, errors.InvalidArgument) else {}
    return Problem(status, err.message, reason_code(type(err)), metadata, fields, headers)
