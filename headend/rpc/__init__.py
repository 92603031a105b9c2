"""The gRPC harness every service runs on, and the one way callers dial it.

It adds, in one place: standard health checking (NOT_SERVING before
shutdown) and reflection; bearer API-key authentication, checked when a
call's headers arrive; a cap on concurrent calls taken only after that
(``interceptor``); time bounds on waiting for requests and on whole calls;
per-connection stream limits; the mapping of failures to status codes with
rich details (``status``); Prometheus metrics under go-grpc-prometheus's names; a
request id per call, on its log lines and back to the caller (``x-request-id``); TLS
and mTLS on both sides (``client``); graceful shutdown (``server``).

Servicers are plain ``grpc.aio`` servicers: they read the caller with
:func:`principal` (and, to ask another service on its behalf, its
key with :func:`caller_key`), raise ``headend.errors`` exceptions, and write
server-streaming methods as async generators.
"""

from __future__ import annotations

from headend.rpc.client import TARGETS, ClientTls, ServiceClient, bearer, client_channel
from headend.rpc.interceptor import caller_key, principal
from headend.rpc.server import (
    RpcServer,
    ServiceSettings,
    ServiceSpec,
    StartupError,
    run_service,
    serve,
    start_server,
)
from headend.rpc.settings import RpcSettings
from headend.rpc.status import (
    RETRY_DELAY_SECONDS,
    CallTimedOut,
    ErrorDetails,
    ServiceUnavailable,
    domain_error,
    error_details,
    status_code,
)
from headend.rpc.wire import HasFields, from_timestamp, optional_timestamp, to_timestamp

__all__ = [
    "RETRY_DELAY_SECONDS",
    "TARGETS",
    "CallTimedOut",
    "ClientTls",
    "ErrorDetails",
    "HasFields",
    "RpcServer",
    "RpcSettings",
    "ServiceClient",
    "ServiceSettings",
    "ServiceSpec",
    "ServiceUnavailable",
    "StartupError",
    "bearer",
    "caller_key",
    "client_channel",
    "domain_error",
    "error_details",
    "from_timestamp",
    "optional_timestamp",
    "principal",
    "run_service",
    "serve",
    "start_server",
    "status_code",
    "to_timestamp",
]
