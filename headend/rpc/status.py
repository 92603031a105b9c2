"""Failures become gRPC status here and nowhere else; clients turn them back into errors here too.

A domain error keeps its category's code and its ``ErrorInfo``/``BadRequest``
details; ``ErrorInfo.reason`` is the error's class in UPPER_SNAKE_CASE
(``ChannelNotFound`` -> ``CHANNEL_NOT_FOUND``) in the domain ``headend``.
Redis or connection failures become UNAVAILABLE with a ``RetryInfo`` (they
pass). Anything else is a bug: UNKNOWN with a fixed message and an error id,
the traceback going to the server's log only, never to the caller. The rich
status is built and read with grpcio-status.

On the client side :func:`domain_error` rebuilds the error the server raised
(the leaf of the service's exception tree its ``ErrorInfo`` names), so every
client raises the same exceptions as the service it calls, and one that cannot
answer at all raises :class:`ServiceUnavailable`.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from headend import errors

log = logging.getLogger(__name__)

DOMAIN = "headend"
_WORD = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
# Long enough for a Redis failover or reconnect, short enough not to stall callers.
RETRY_DELAY_SECONDS = 1.0
# Each error category's gRPC status (the HTTP faces' are in headend.httperrors).
CATEGORY_CODES = (
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.Aborted, grpc.StatusCode.ABORTED),
    (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (errors.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
)


class ServerBusy(errors.ResourceExhausted):
    """Raised when every slot of the server's concurrency cap is in use (it passes: retry)."""


class CallTimedOut(Exception):
    """Raised when a request message, or a whole call, outlasts the server's time bound."""

    def __init__(self, message: str, *, setting: str) -> None:
        super().__init__(message)
        self.message = message
        self.setting = setting


@dataclass(frozen=True, slots=True)
class Failure:
    """How a failed call ends: its status code, message and rich status (grpcio-status's
    ``grpc.Status``, whose trailing metadata carries ``grpc-status-details-bin``)."""

    code: grpc.StatusCode
    message: str
    status: grpc.Status


def status_code(err: errors.HeadendError) -> grpc.StatusCode:
    """The gRPC status for a domain error category."""
    for kind, code in CATEGORY_CODES:
        if isinstance(err, kind):
            return code
    return grpc.StatusCode.UNKNOWN


def reason_code(kind: type[BaseException] | str) -> str:
    """The ``ErrorInfo.reason`` of an error class or its name: ``ServerBusy`` -> ``SERVER_BUSY``."""
    name = kind if isinstance(kind, str) else kind.__name__
    return _WORD.sub("_", name).upper()


def _pack(
    code: grpc.StatusCode,
    message: str,
    reason: str,
    metadata: Mapping[str, str],
    *extra: Message,
    retry: bool = False,
) -> grpc.Status:
    items: list[Message] = [
        error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN, metadata=dict(metadata)),
        *extra,
    ]
    if retry:
        delay = duration_pb2.Duration()
        delay.FromMilliseconds(int(RETRY_DELAY_SECONDS * 1000))
        items.append(error_details_pb2.RetryInfo(retry_delay=delay))
    packed = []
    for item in items:
        wrapper = any_pb2.Any()
        wrapper.Pack(item)
        packed.append(wrapper)
    return rpc_status.to_status(
        status_pb2.Status(code=code.value[0], message=message, details=packed)
    )


def failure(err: Exception, *, method: str, caller: str = "") -> Failure:
    """The status ``err`` ends ``caller``'s call to ``method`` with; logs what it is not told."""
    if isinstance(err, errors.HeadendError):
        code = status_code(err)
        extra: list[Message] = []
        if isinstance(err, errors.InvalidArgument):
            violation = error_details_pb2.BadRequest.FieldViolation(
                field=err.field, description=err.reason
            )
            extra.append(error_details_pb2.BadRequest(field_violations=[violation]))
        reason = reason_code(type(err))
        # Only conditions that pass by themselves say when to come back; a quota
        # such as a subscriber's stream limit does not clear by retrying.
        retry = isinstance(err, errors.Unavailable | ServerBusy)
        packed = _pack(code, err.message, reason, err.details, *extra, retry=retry)
        return Failure(code, err.message, packed)
    if isinstance(err, CallTimedOut):
        code = grpc.StatusCode.DEADLINE_EXCEEDED
        meta = {"setting": err.setting}
        return Failure(code, err.message, _pack(code, err.message, reason_code(CallTimedOut), meta))
    if isinstance(err, RedisError | ConnectionError):
        # A connection drop or timeout is an outage, logged without a traceback
        # so that a Redis restart does not flood the log; any other Redis error
        # may be a bug in a command or script, so it keeps its traceback.
        transient = isinstance(err, RedisConnectionError | RedisTimeoutError | ConnectionError)
        log.log(
            logging.WARNING if transient else logging.ERROR,
            "rpc failed: a dependency is unavailable",
            exc_info=None if transient else err,
            extra={"rpc": method, "caller": caller, "error": f"{type(err).__name__}: {err}"},
        )
        code, message = grpc.StatusCode.UNAVAILABLE, "a dependency is unavailable; retry shortly"
        return Failure(
            code, message, _pack(code, message, "DEPENDENCY_UNAVAILABLE", {}, retry=True)
        )
    error_id = secrets.token_hex(6)
    log.error(
        "rpc failed", exc_info=err, extra={"rpc": method, "caller": caller, "error_id": error_id}
    )
    code, message = grpc.StatusCode.UNKNOWN, f"internal error (error id {error_id})"
    return Failure(code, message, _pack(code, message, "INTERNAL", {"error_id": error_id}))


@dataclass(frozen=True, slots=True)
class ErrorDetails:
    """What a client can read back from a failed call's rich status."""

    reason: str
    metadata: dict[str, str]
    fields: dict[str, str]
    retry_delay_seconds: float | None = None


def error_details(err: grpc.aio.AioRpcError | grpc.RpcError) -> ErrorDetails:
    """Decode the ``ErrorInfo``, ``BadRequest`` and ``RetryInfo`` a server attached to an error."""
    try:
        status = rpc_status.from_call(err)
    except ValueError:  # details that contradict the call's own code or message
        status = None
    if status is None:
        return ErrorDetails("", {}, {})
    reason, metadata, fields, delay = "", {}, {}, None
    for item in status.details:
        info = error_details_pb2.ErrorInfo()
        bad = error_details_pb2.BadRequest()
        retry = error_details_pb2.RetryInfo()
        if item.Unpack(info):
            reason, metadata = info.reason, dict(info.metadata)
        elif item.Unpack(bad):
            fields = {v.field: v.description for v in bad.field_violations}
        elif item.Unpack(retry):
            delay = retry.retry_delay.ToMilliseconds() / 1000
    return ErrorDetails(reason, metadata, fields, delay)


class ServiceUnavailable(errors.Unavailable):
    """Raised by a client when a service cannot answer now: unreachable, overloaded, timed
    out, its store down, or failed internally. It passes: retry after ``retry_delay_seconds``
    (what the server asked for, None when it said nothing)."""

    def __init__(
        self, service: str, message: str, *, reason: str, retry_delay_seconds: float | None
    ) -> None:
        super().__init__(f"{service} unavailable: {message}", details={"reason": reason})
        self.service = service
        self.reason = reason
        self.retry_delay_seconds = retry_delay_seconds


# Codes that mean "the call did not get an answer", whatever the reason the server gave.
_NO_ANSWER = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.DATA_LOSS,
    }
)


def _leaves(root: type[errors.HeadendError]) -> dict[str, type[errors.HeadendError]]:
    found: dict[str, type[errors.HeadendError]] = {}
    pending = [root]
    while pending:
        kind = pending.pop()
        found.setdefault(reason_code(kind), kind)
        pending.extend(kind.__subclasses__())
    return found


def _category(code: grpc.StatusCode) -> type[errors.HeadendError]:
    for kind, known in CATEGORY_CODES:
        if known == code:
            return kind
    return errors.Unavailable


def _build(
    kind: type[errors.HeadendError], message: str, details: ErrorDetails
) -> errors.HeadendError:
    if issubclass(kind, errors.InvalidArgument):
        field, reason = next(iter(details.fields.items()), ("request", message))
        return kind(field, reason, details=details.metadata)
    return kind(message, details=details.metadata)


def domain_error(
    err: grpc.aio.AioRpcError | grpc.RpcError, *, service: str, root: type[errors.HeadendError]
) -> errors.HeadendError:
    """The error ``service`` raised, rebuilt on the client: the leaf of ``root``'s tree
    its ``ErrorInfo`` names (else the category of its status code), or
    :class:`ServiceUnavailable` when the call got no answer or the service is unavailable."""
    code: grpc.StatusCode = err.code()
    message: str = err.details() or code.name
    details = error_details(err)
    kind = _leaves(root).get(details.reason) if details.reason else None
    if kind is None:
        kind = _category(code)
    if (
        code in _NO_ANSWER
        or issubclass(kind, errors.Unavailable)
        or details.reason == reason_code(ServerBusy)
    ):
        return ServiceUnavailable(
            service,
            message,
            reason=details.reason or code.name,
            retry_delay_seconds=details.retry_delay_seconds,
        )
    try:
        return _build(kind, message, details)
    except TypeError:  # a leaf with a constructor of its own: its category carries the same
        return _build(_category(code), message, details)
